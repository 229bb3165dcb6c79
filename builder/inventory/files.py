"""The manifests folder of a run (`<out>/manifests/`): per image its manifest as JSON and Markdown and its SBOM,
and an index page the build report links to."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from builder.files import atomic_write
from builder.inventory.manifest import ECOSYSTEMS, TITLES, Manifest, markdown

FOLDER = "manifests"
INDEX = "index.md"


def write_manifests(out_dir: Path, manifests: dict[str, Manifest], sbom: Callable[[Manifest], str]) -> Path | None:
    """Write every manifest (name.json, name.md, name.cdx.json: `sbom` makes it, `ManifestStore.sbom` keeps it)
    and the index; the index's path, None if none."""
    if not manifests:
        return None
    folder = out_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for name, written in manifests.items():
        atomic_write(folder / f"{name}.json", written.to_json())
        atomic_write(folder / f"{name}.md", markdown(written) + "\n")
        atomic_write(folder / f"{name}.cdx.json", sbom(written))
    present = sorted(p.name.removesuffix(".json") for p in folder.glob("*.json") if not p.name.endswith(".cdx.json"))
    lines = ["# Image manifests", "", "| image | " + " | ".join(TITLES[e] for e in ECOSYSTEMS) + " | kernels | SBOM |",
             "|---|" + "---:|" * (len(ECOSYSTEMS) + 1) + "---|"]
    for name in present:
        shown = manifests.get(name) or _load(folder / f"{name}.json")
        if shown is None:
            continue
        manifest = shown
        counts = " | ".join(str(len(manifest.of(e))) for e in ECOSYSTEMS)
        lines.append(f"| [{name}]({name}.md) | {counts} | {len(manifest.kernels)} | [CycloneDX]({name}.cdx.json) |")
    index = folder / INDEX
    atomic_write(index, "\n".join(lines) + "\n")
    return index


def _load(path: Path) -> Manifest | None:
    import json

    try:
        return Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None
