"""Whether a passing test record covers a node's current checks and this very image: here, or in the cache.

`stacks test` (builder/check/run.py) asks it to skip what passed earlier;
`stacks push` asks it before publishing. A record found in the cache is
kept locally too, so the next question is answered without the registry.
"""
from __future__ import annotations

from builder.cache.keys import node_key
from builder.cache.records import RecordStore, TestRecord
from builder.cache.registry_cache import RegistryCache
from builder.plan.plan import Node


def passing(node: Node, key: str, image_id: str | None, store: RecordStore,
            cache: RegistryCache | None) -> TestRecord | None:
    """The passing record of `key` for this node's hash and image: the local store first, then the cache."""
    record = store.passing(key, node.hash, image_id)
    if record is not None or cache is None:
        return record
    hit = cache.lookup(node)
    if hit is None or (image_id is not None and hit.image_id != image_id):
        return None
    record = cache.record(node, hit)
    if record is None or not record.proves(key, node.hash, hit.image_id):
        return None
    store.put(record)
    store.mark_shared(record.key, cache.location)
    return record


def passed_by_record(node: Node, image_id: str | None, store: RecordStore,
                     cache: RegistryCache | None = None) -> dict[str, str]:
    """{name: hash} when a passing record (here, or in the cache) covers this node and image: the push gate's view."""
    return {node.name: node.hash} if passing_record(node, image_id, store, cache) is not None else {}


def passing_record(node: Node, image_id: str | None, store: RecordStore,
                   cache: RegistryCache | None = None) -> TestRecord | None:
    """The passing record (here, or in the cache) of this node's current checks and this very image."""
    return None if image_id is None else passing(node, node_key(node), image_id, store, cache)
