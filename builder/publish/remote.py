"""Publishing from the registry cache: a registry-side copy, no pull and no re-upload.

When the image to publish is already in the cache (docs/cache.md) on the
same registry host, each of its blobs (config and layers) is mounted from
the cache repository into the release repository (a cross-repository blob
mount: the registry links the blob, nothing is transferred), and the cache's
manifest bytes are PUT under the release tag. The manifest is byte for byte
the cache's, so its digest is too, and `push.py` verifies it like any push.
"""
from __future__ import annotations

import json

from builder.adapters.registry import Registry, RegistryError


def copy_manifest(registry: Registry, source: str, digest: str, target: str, tag: str) -> str:
    """Make `target:tag` serve manifest `source@digest` of the same registry; returns the digest it serves.

    Blobs are mounted before the manifest is PUT: a registry accepts a
    manifest only when every blob it names is in the repository, so the tag
    moves last, all or nothing.
    """
    found = registry.raw_manifest(source, digest)
    if found is None:
        raise RegistryError(f"registry {registry.host}: {source}@{digest} is gone from the cache")
    body, media_type, _ = found
    manifest = json.loads(body)
    if "manifests" in manifest:
        raise RegistryError(f"registry {registry.host}: {source}@{digest} is an index; only single images are copied")
    blobs = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest.get("layers", []))]
    for blob in blobs:
        if not registry.mount_blob(target, blob, source):
            raise RegistryError(f"registry {registry.host} did not mount {blob[:19]} from {source} into {target}")
    return registry.put_manifest(target, tag, body, media_type or "application/vnd.docker.distribution.manifest.v2+json")
