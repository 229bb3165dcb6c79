"""Manifests on this machine, one JSON file per image id: an image's content never changes, so it is read once.

Kept next to the test records (`~/.cache/stacks/manifests`); `stacks sbom`
and `stacks diff` find a local image's manifest here by its id, and the test
stage asks here before it reads an image again.
"""
from __future__ import annotations

import json
from pathlib import Path

from builder.files import atomic_write
from builder.inventory.manifest import Manifest


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
