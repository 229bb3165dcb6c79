"""Manifests on this machine, one JSON file per image id: an image's content never changes, so it is read once.

Kept next to the test records (`~/.cache/stacks/manifests`); `stacks sbom`
and `stacks diff` find a local image's manifest here by its id, and the test
stage asks here before it reads an image again. The SBOM made from a manifest
is kept too (`sboms/`), by the reading it was made from and the code that made
it: making one takes the CycloneDX library a third of a second per image, which
`stacks test` with nothing to test would otherwise pay for every image, every run.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from builder.files import atomic_write
from builder.inventory.manifest import FORMAT, Manifest


class ManifestStore:
    def __init__(self, folder: Path):
        self.folder = folder

    def _path(self, image_id: str) -> Path:
        return self.folder / f"{image_id.removeprefix('sha256:')}.json"

    def get(self, image_id: str) -> Manifest | None:
        """The manifest of that very image, or None (not read yet, or unreadable)."""
        try:
            manifest = Manifest.from_dict(json.loads(self._path(image_id).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None
        return manifest if manifest.image_id == image_id else None

    def put(self, manifest: Manifest) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self._path(manifest.image_id), manifest.to_json())

    def sbom(self, manifest: Manifest) -> str:
        """The CycloneDX JSON of `manifest`: made once per reading of an image (its id, when and in which format it
        was read) and per version of the code that makes it."""
        reading = f"{manifest.image_id}\0{manifest.read}\0{FORMAT}"
        key = hashlib.sha256(f"{_sbom_maker()}\0{reading}".encode()).hexdigest()[:32]
        path = self.folder / "sboms" / f"{key}.cdx.json"
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            pass
        from builder.inventory.sbom import to_cyclonedx  # the library loads only when an SBOM must be made

        text = to_cyclonedx(manifest)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
        return text


@lru_cache(maxsize=1)
def _sbom_maker() -> str:
    """What makes an SBOM: our module's source and the CycloneDX library's version."""
    source = (Path(__file__).resolve().parent / "sbom.py").read_bytes()
    try:
        library = metadata.version("cyclonedx-python-lib")
    except metadata.PackageNotFoundError:
        library = "?"
    return hashlib.sha256(source).hexdigest()[:16] + "+" + library
