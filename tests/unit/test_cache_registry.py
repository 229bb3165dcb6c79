"""The registry cache's decisions, against an in-memory registry: what is a hit, which record counts, failures."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pytest

from builder.adapters.registry import RegistryError, RemoteManifest
from builder.cache.records import TestRecord
from builder.cache.registry_cache import CacheHit, RegistryCache, cache_tag, node_tag, parse_location, record_tag


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class FakeRegistry:
    """Tags -> manifest bodies, digests -> blobs; `down` makes every call fail like a refused connection."""

    manifests: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    down: bool = False
    read_only: bool = False
    credentials: None = None

    def _check(self, write: bool = False) -> None:
        if self.down:
            raise RegistryError("cannot reach registry: Connection refused", retryable=True)
        if write and self.read_only:
            raise RegistryError("registry refused anonymous access: HTTP 401", auth=True)

    def head(self, repository, reference):
        self._check()
        body = self.manifests.get(reference)
        return digest(body) if body is not None else None

    def manifest(self, repository, reference):
        self._check()
        body = json.loads(self.manifests[reference])
        return RemoteManifest(digest(self.manifests[reference]), body["config"]["digest"], 0)

    def raw_manifest(self, repository, reference, accept=()):
        self._check()
        body = self.manifests.get(reference)
        return None if body is None else (body, "application/vnd.oci.image.manifest.v1+json", digest(body))

    def blob(self, repository, blob_digest, limit=1 << 20):
        self._check()
        return self.blobs[blob_digest]

    def put_blob(self, repository, data):
        self._check(write=True)
        self.blobs[digest(data)] = data
        return digest(data)

    def put_manifest(self, repository, reference, body, media_type):
        self._check(write=True)
        self.manifests[reference] = body
        return digest(body)

    def add_image(self, name: str, content_hash: str, labels: dict[str, str], platform: str = "linux/amd64") -> CacheHit:
        config = json.dumps({"config": {"Labels": labels}}).encode()
        self.blobs[digest(config)] = config
        body = json.dumps({"config": {"digest": digest(config)}, "layers": []}).encode()
        tag = cache_tag(f"{name}-{platform.replace('/', '-')}", content_hash)
        self.manifests[tag] = body
        return CacheHit(f"127.0.0.1:5000/cache:{tag}", digest(body), digest(config))


@dataclass
class Node:
    name: str
    hash: str
    kind: str = "image"
    local_ref: str = ""
    platform: str = "linux/amd64"


H = "ab" * 32
NODE = Node("lab", H)


@pytest.fixture
def setup():
    registry, warnings = FakeRegistry(), []
    return registry, warnings, RegistryCache("127.0.0.1:5000/cache", engine=None, warn=warnings.append, registry=registry)


def labels(name=NODE.name, content_hash=H):
    return {"io.stacks.hash": content_hash, "io.stacks.name": name}


def test_locations() -> None:
    def parts(text):
        location = parse_location(text)
        return location.registry, location.repository

    assert parts("127.0.0.1:5000/cache") == ("127.0.0.1:5000", "cache")
    assert parts("ghcr.io/org/stacks-cache") == ("ghcr.io", "org/stacks-cache")
    assert parts("someone/cache") == ("docker.io", "someone/cache")
    assert parts("cache") == ("docker.io", "library/cache")  # the path Docker Hub's API knows a one-part name by
    for bad, reason in (("127.0.0.1:5000", "no tag"), ("https://ghcr.io/x", "without a scheme"), ("ghcr.io/x:tag", "no tag"),
                        ("ghcr.io/Org/cache", "lowercase"), ("ghcr.io/x@sha256:" + "a" * 64, "no tag")):
        with pytest.raises(ValueError, match=f"is not a valid cache location: .*{reason}"):
            parse_location(bad)
    assert len(cache_tag("n" * 200, H)) == 128 and cache_tag("n" * 200, H).endswith("-" + H)
    assert record_tag("sha256:" + "c" * 64) == "sha256-" + "c" * 64 + ".stacks-test"


def test_a_hit_is_the_nodes_own_build(setup) -> None:
    registry, _, cache = setup
    assert cache.lookup(NODE) is None
    hit = registry.add_image("lab", H, labels())
    cache._hits.clear()
    assert cache.lookup(NODE) == hit


def test_the_cache_tags_carry_the_platform(setup) -> None:
    _, _, cache = setup
    arm = Node("lab", H, platform="linux/arm64")
    assert node_tag(arm) == f"lab-linux-arm64-{H}" and node_tag(NODE) == f"lab-linux-amd64-{H}"
    assert cache.ref(arm).endswith(f":lab-linux-arm64-{H}") and cache.latest_ref(arm).endswith(":lab-linux-arm64-latest")


def test_an_image_with_other_labels_under_the_tag_is_no_hit(setup) -> None:
    registry, warnings, cache = setup
    registry.add_image("lab", H, labels(content_hash="cd" * 32))  # a child or an intermediate carrying another hash
    assert cache.lookup(NODE) is None and "labels differ" in warnings[0]
    cache._hits.clear()
    registry.add_image("lab", H, labels(name="base"))  # the parent's labels, inherited
    assert cache.lookup(NODE) is None


def test_records_count_only_for_the_image_they_name(setup) -> None:
    registry, _, cache = setup
    hit = registry.add_image("lab", H, labels())
    record = TestRecord("k", "lab", H, hit.image_id, True, "t")
    assert cache.record(NODE, hit) is None
    assert cache.push_record(hit, record)
    assert cache.record(NODE, hit) == record
    other = CacheHit(hit.ref, hit.digest, "sha256:" + "e" * 64)  # the tag now serves another build
    assert cache.record(NODE, other) is None
    cache.push_record(hit, TestRecord("k", "lab", "f" * 64, hit.image_id, True, "t"))  # a record of another hash
    assert cache.record(NODE, hit) is None


def test_an_unreachable_cache_warns_once_and_turns_off(setup) -> None:
    registry, warnings, cache = setup
    registry.down = True
    assert cache.lookup(NODE) is None and cache.lookup(Node("other", H)) is None
    assert len(warnings) == 1 and "unavailable" in warnings[0] and not cache.enabled


def test_a_read_only_cache_is_still_read(setup) -> None:
    registry, warnings, cache = setup
    hit = registry.add_image("lab", H, labels())
    registry.read_only = True
    assert not cache.push_record(hit, TestRecord("k", "lab", H, hit.image_id, True, "t"))
    assert not cache.write and cache.enabled and "refused a write" in warnings[0]
    assert cache.lookup(NODE) == hit


def test_a_cache_that_may_not_write_never_tries(setup) -> None:
    registry, warnings, _ = setup
    cache = RegistryCache("127.0.0.1:5000/cache", engine=None, write=False, warn=warnings.append, registry=registry)
    hit = registry.add_image("lab", H, labels())
    assert not cache.push_record(hit, TestRecord("k", "lab", H, hit.image_id, True, "t")) and not warnings
    assert not any(t.endswith(".stacks-test") for t in registry.manifests)
