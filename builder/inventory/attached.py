"""The SBOM in the registry: an OCI artifact whose `subject` is the image manifest it describes.

Attaching: the SBOM is one layer of an artifact manifest (artifactType
application/vnd.cyclonedx+json, empty config) that names the image manifest
as its `subject`, pushed by its own digest, as the test records are
(builder/cache/registry_cache.py). A registry with the OCI referrers API
indexes it by subject; one without (docker-registry 2.x answers 404) gets the
referrers tag schema of the distribution spec instead: an image index tagged
`sha256-<hex of the subject>` listing the artifacts that refer to it.
Finding asks the referrers API first and falls back to that tag.
"""
from __future__ import annotations

import json
from typing import Any

from builder.adapters.registry import Registry
from builder.inventory.sbom import MEDIA_TYPE

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
SBOM_LIMIT = 64 << 20  # bytes: an SBOM of a large image is a few MB at most


class NoSbom(LookupError):
    """The registry holds no SBOM for that image."""


def fallback_tag(digest: str) -> str:
    """The referrers tag schema: `sha256-<hex>` names the index of what refers to `sha256:<hex>`."""
    return digest.replace(":", "-")


def attach_sbom(registry: Registry, repository: str, subject: str, subject_type: str, sbom: bytes) -> str:
    """Push `sbom` as an artifact referring to the manifest `subject`; the artifact's digest. Pushing the same
    SBOM again changes nothing."""
    config = registry.put_blob(repository, EMPTY)
    layer = registry.put_blob(repository, sbom)
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": MEDIA_TYPE,
        "config": {"mediaType": EMPTY_CONFIG, "digest": config, "size": len(EMPTY)},
        "layers": [{"mediaType": MEDIA_TYPE, "digest": layer, "size": len(sbom)}],
        "subject": {"mediaType": subject_type, "digest": subject},
    }
    body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    digest = registry.put_manifest(repository, _digest(body), body, OCI_MANIFEST)
    if registry.referrers(repository, subject) is None:
        _add_to_fallback(registry, repository, subject, {"mediaType": OCI_MANIFEST, "digest": digest,
                                                          "size": len(body), "artifactType": MEDIA_TYPE})
    return digest


def find_sbom(registry: Registry, repository: str, subject: str) -> bytes:
    """The newest SBOM attached to the manifest `subject`; NoSbom when there is none."""
    descriptors = registry.referrers(repository, subject)
    if descriptors is None:
        found = registry.raw_manifest(repository, fallback_tag(subject), (OCI_INDEX,))
        descriptors = list(json.loads(found[0]).get("manifests") or []) if found is not None else []
    sboms = [d for d in descriptors if d.get("artifactType") == MEDIA_TYPE]
    if not sboms:
        raise NoSbom(f"{registry.host}/{repository}@{subject} has no SBOM attached (no referrer of type {MEDIA_TYPE})")
    found = registry.raw_manifest(repository, sboms[-1]["digest"], (OCI_MANIFEST,))
    if found is None:
        raise NoSbom(f"{registry.host}/{repository}: the SBOM artifact {sboms[-1]['digest']} is listed but gone")
    layers = [layer for layer in json.loads(found[0]).get("layers") or [] if layer.get("mediaType") == MEDIA_TYPE]
    if not layers:
        raise NoSbom(f"{registry.host}/{repository}: the SBOM artifact {sboms[-1]['digest']} holds no SBOM layer")
    return registry.blob(repository, layers[0]["digest"], limit=SBOM_LIMIT)


def _add_to_fallback(registry: Registry, repository: str, subject: str, descriptor: dict[str, Any]) -> None:
    tag = fallback_tag(subject)
    found = registry.raw_manifest(repository, tag, (OCI_INDEX,))
    index: dict[str, Any] = (json.loads(found[0]) if found is not None
                             else {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    listed: list[dict[str, Any]] = list(index.get("manifests") or [])
    if any(m.get("digest") == descriptor["digest"] for m in listed):
        return
    index["manifests"] = [*listed, descriptor]
    registry.put_manifest(repository, tag, json.dumps(index, sort_keys=True, separators=(",", ":")).encode(), OCI_INDEX)


def _digest(body: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(body).hexdigest()
