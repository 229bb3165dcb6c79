"""Taking an image's manifest once per image: from the local store, from its test record, else read out of it."""
from __future__ import annotations

from builder.adapters.containers import ContainerRunner
from builder.cache.records import TestRecord
from builder.inventory.manifest import Manifest
from builder.inventory.read import identity, read_manifest
from builder.inventory.store import ManifestStore
from builder.plan.plan import Node
from builder.plan.versions import Probe


def known(store: ManifestStore, image_id: str, record: TestRecord | None = None) -> Manifest | None:
    """The manifest already taken of this image: in the store, or carried by its record (then stored)."""
    found = store.get(image_id) if image_id else None
    if found is not None:
        return found
    if record is not None and record.manifest is not None:
        try:
            carried = Manifest.from_dict(record.manifest)
        except ValueError:
            return None
        if carried.image_id == image_id:
            store.put(carried)
            return carried
    return None


def take(runner: ContainerRunner, store: ManifestStore, node: Node, image_id: str, platform: str,
         probes: dict[str, Probe]) -> Manifest:
    """The image's manifest, read out of the local image `node.local_ref` only when no earlier one exists."""
    found = known(store, image_id)
    if found is None:
        found = read_manifest(runner, node.local_ref, identity(node, image_id, platform), probes)
        store.put(found)
    return found
