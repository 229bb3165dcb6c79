"""A registry as a content-addressed cache of built images and their test records.

Layout (docs/cache.md): a cache location `HOST[:PORT]/PATH` is one repository.
- The image of node N for platform P (slug `linux-arm64`) with content hash H
  is tagged `<N>-<P>-<H>` there (the name part cut so the tag fits Docker's
  128 characters; the hash, which covers the platform, is always whole), and
  the newest build of N for P also `<N>-<P>-latest` (BuildKit's layer cache).
  stacks writes that tag only after N was built: it is the proof a hit is the
  node's own build, and the image config's labels (`io.stacks.hash` = H,
  `io.stacks.name` = N) are checked on every hit, so nothing else is taken.
- The test record of the image with manifest digest `sha256:D` is an OCI
  artifact manifest tagged `sha256-D.stacks-test` (the cosign convention; no
  referrers API needed): config the empty descriptor, one layer holding the
  record JSON, `subject` naming the image manifest for registries that
  index referrers. A record whose image id or hash does not match is ignored.

Every registry problem is a warning: a network failure turns the cache off
for the rest of the run (one warning, not one timeout per image); a refused
write turns writing off (a read-only token, a fork's pull request).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from builder.adapters.engine import Engine, PushFailed
from builder.adapters.credentials import CredentialError, Credentials, Keychain
from builder.adapters.registry import Registry, RegistryError, classify
from builder.cache.records import MEDIA_TYPE, TestRecord
from builder.plan.labels import NAME_LABEL
from builder.plan.plan import HASH_LABEL, Node
from builder.reference import ImageRef, InvalidReference, platform_slug

TAG_LIMIT = 128
RECORD_LIMIT = 16 << 20  # bytes: a record carries its image's package manifest
RECORD_SUFFIX = ".stacks-test"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"


@dataclass(frozen=True)
class CacheHit:
    ref: str  # host/path:tag
    digest: str  # manifest digest
    image_id: str  # config digest: the engine's image id once pulled
    config: dict[str, Any] = field(default_factory=dict, compare=False)  # the image config (labels, os, created)


def parse_location(text: str) -> ImageRef:
    """`HOST[:PORT]/PATH` -> the cache's repository; Docker Hub when the first part is no host (`user/cache`)."""
    text = text.strip().strip("/")
    if "://" in text:
        raise InvalidReference(text, "give HOST[:PORT]/PATH without a scheme", "cache location")
    try:
        location = ImageRef.parse(text)
    except InvalidReference as exc:
        raise InvalidReference(text, exc.reason, "cache location") from None
    if location.tag is not None or location.digest is not None:
        raise InvalidReference(text, "expected HOST[:PORT]/REPOSITORY (a repository, no tag)", "cache location")
    return location


def cache_tag(name: str, content_hash: str) -> str:
    return f"{name[:TAG_LIMIT - len(content_hash) - 1]}-{content_hash}"


def cache_name(node: Node) -> str:
    """The name part of a node's cache tags: its name and platform (foundation-bookworm-linux-arm64)."""
    return f"{node.name}-{platform_slug(node.platform)}"


def node_tag(node: Node) -> str:
    """The tag of a node's own build in the cache repository (what a run looks up and pushes)."""
    return cache_tag(cache_name(node), node.hash)


def record_tag(manifest_digest: str) -> str:
    return manifest_digest.replace(":", "-") + RECORD_SUFFIX


class RegistryCache:
    """One cache location: lookups (HEAD, then the small config), pulls on need, pushes after build and test."""

    def __init__(self, location: str, engine: Engine, write: bool = True, warn: Callable[[str], None] = print,
                 registry: Registry | None = None, credentials: Credentials | None = None):
        self.repository = parse_location(location)
        self.host, self.path, self.location = self.repository.registry, self.repository.repository, self.repository.name
        self.engine, self.write, self._warn = engine, write, warn
        self.registry = registry or Registry(self.host, credentials, timeout=15.0)
        self.enabled = True
        self._lock = threading.Lock()
        self._hits: dict[str, CacheHit | None] = {}

    def ref(self, node: Node) -> str:
        return self._tagged(node_tag(node))

    def latest_ref(self, node: Node) -> str:
        """The newest cached build of this name (any hash): where BuildKit imports unchanged layers from."""
        return self._tagged(cache_tag(cache_name(node), "latest"))

    def _tagged(self, tag: str) -> str:
        return str(self.repository.with_tag(tag))

    # --- reading -------------------------------------------------------------

    def lookup(self, node: Node) -> CacheHit | None:
        """The node's own image in the cache, or None (absent, not provably the node's, or the cache is off)."""
        if node.kind == "pull" or not self.enabled:
            return None
        if node.hash in self._hits:
            return self._hits[node.hash]
        hit = self._guard(lambda: self._lookup(node), f"looking up {node.name}")
        with self._lock:
            self._hits[node.hash] = hit
        return hit

    def _lookup(self, node: Node) -> CacheHit | None:
        tag = node_tag(node)
        if self.registry.head(self.path, tag) is None:
            return None
        found = self.registry.manifest(self.path, tag)
        if found is None or found.config is None:
            return None
        config = json.loads(self.registry.blob(self.path, found.config))
        labels = (config.get("config") or {}).get("Labels") or {}
        if labels.get(HASH_LABEL) != node.hash or labels.get(NAME_LABEL) != node.name:
            self._warn(f"cache: {self._tagged(tag)} is not a build of {node.name} at this hash (labels differ); ignored")
            return None
        return CacheHit(self._tagged(tag), found.digest, found.config, config)

    def record(self, node: Node, hit: CacheHit) -> TestRecord | None:
        """The test record stored with the hit, if it is about this very image and hash."""
        if not self.enabled:
            return None
        return self._guard(lambda: self._record(node, hit), f"reading the test record of {node.name}")

    def _record(self, node: Node, hit: CacheHit) -> TestRecord | None:
        found = self.registry.raw_manifest(self.path, record_tag(hit.digest), (OCI_MANIFEST,))
        if found is None:
            return None
        manifest = json.loads(found[0])
        layers = [layer for layer in manifest.get("layers", []) if layer.get("mediaType") == MEDIA_TYPE]
        if not layers or (manifest.get("subject") or {}).get("digest", hit.digest) != hit.digest:
            return None
        record = TestRecord.from_json(self.registry.blob(self.path, layers[0]["digest"], limit=RECORD_LIMIT))
        if record is None or record.hash != node.hash or record.image_id != hit.image_id:
            return None
        return record

    def pull(self, node: Node, hit: CacheHit) -> bool:
        """Bring the hit into the engine under the node's local reference; False (warned) when that fails."""
        try:
            image = self.engine.pull(str(self.repository.with_digest(hit.digest)), self._auth())  # by digest: a re-push cannot swap it
            if image is None or image.id != hit.image_id:
                self._warn(f"cache: the pulled {hit.ref} is not the image the cache announced; building {node.name}")
                return False
            self.engine.tag(image.id, hit.ref)
            self.engine.tag(image.id, node.local_ref)
            return True
        except Exception as exc:  # engine or registry errors: a local build follows
            self._warn(f"cache: pulling {node.name} failed ({_short(exc)}); building it here")
            return False

    # --- writing -------------------------------------------------------------

    def push_image(self, node: Node) -> CacheHit | None:
        """Push the node's local image under its cache tag (the registry writes the tag last: all or nothing)."""
        if not (self.enabled and self.write) or node.kind == "pull":
            return None
        image = self.engine.image(node.local_ref)
        if image is None:
            return None
        tag = node_tag(node)
        ref = self._tagged(tag)
        self.engine.tag(image.id, ref)
        try:
            digest = self.engine.push(self.location, tag, self._auth())
        except PushFailed as exc:
            self._untag(ref)
            retryable, _ = classify(str(exc))
            (self._off if retryable else self._write_failed)(f"pushing {node.name}", str(exc))
            return None
        hit = CacheHit(ref, digest, image.id)
        with self._lock:
            self._hits[node.hash] = hit
        self._guard(lambda: self._move_latest(node, hit), f"moving {node.name}'s layer-cache tag", writing=True)
        return hit

    def _move_latest(self, node: Node, hit: CacheHit) -> None:
        """`<name>-<platform>-latest` serves the newest build (registry-side: the same manifest under a second tag)."""
        found = self.registry.raw_manifest(self.path, hit.digest)
        if found is not None:
            self.registry.put_manifest(self.path, cache_tag(cache_name(node), "latest"), found[0], found[1])

    def push_record(self, hit: CacheHit, record: TestRecord) -> bool:
        """Store `record` as an artifact bound to the image's manifest digest; False (warned) on failure."""
        if not (self.enabled and self.write):
            return False
        return bool(self._guard(lambda: self._push_record(hit, record), f"storing the test record of {record.image}",
                                writing=True))

    def _push_record(self, hit: CacheHit, record: TestRecord) -> bool:
        data = record.to_json().encode()
        config = self.registry.put_blob(self.path, EMPTY)
        layer = self.registry.put_blob(self.path, data)
        manifest = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": MEDIA_TYPE,
            "config": {"mediaType": EMPTY_CONFIG, "digest": config, "size": len(EMPTY)},
            "layers": [{"mediaType": MEDIA_TYPE, "digest": layer, "size": len(data)}],
            "subject": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": hit.digest},
            "annotations": {"io.stacks.hash": record.hash, "io.stacks.name": record.image},
        }
        body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        self.registry.put_manifest(self.path, record_tag(hit.digest), body, OCI_MANIFEST)
        return True

    def _auth(self) -> dict[str, str] | None:
        credentials = self.registry.credentials
        return credentials.engine_auth(self.host) if credentials else None

    # --- failure behaviour ---------------------------------------------------

    def _guard(self, action: Callable, what: str, writing: bool = False):
        try:
            return action()
        except RegistryError as exc:
            if writing and exc.auth:
                self._write_failed(what, str(exc))
            else:
                self._off(what, str(exc))
            return None
        except (ValueError, KeyError) as exc:  # unreadable JSON from the registry: a miss
            self._warn(f"cache: {what}: unreadable answer from {self.location} ({type(exc).__name__}); ignored")
            return None

    def _off(self, what: str, reason: str) -> None:
        with self._lock:
            if not self.enabled:
                return
            self.enabled = False
        self._warn(f"warning: cache {self.location} unavailable while {what} ({reason}); building and testing locally")

    def _write_failed(self, what: str, reason: str) -> None:
        with self._lock:
            if not self.write:
                return
            self.write = False
        self._warn(f"warning: cache {self.location} refused a write while {what} ({reason}); "
                   "reading it still, writing no more in this run")

    def _untag(self, ref: str) -> None:
        try:
            self.engine.untag(ref)
        except Exception:  # the tag is ours; if it cannot go, the image itself is still fine
            pass


def open_cache(location: str | None, engine: Engine, write: bool, warn: Callable[[str], None],
               keychain: Keychain | None = None) -> RegistryCache | None:
    """The cache at `location` (None: no cache), with the keychain's credentials for its host; a location that
    cannot be parsed or credentials that cannot be read are a warning and no cache, never a failed run."""
    if not location:
        return None
    try:
        host = parse_location(location).registry
        credentials = keychain.lookup(host) if keychain is not None else None
        return RegistryCache(location, engine, write, warn, credentials=credentials)
    except (ValueError, RegistryError, CredentialError) as exc:
        warn(f"warning: no cache this run: {exc}")
        return None


def _short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
