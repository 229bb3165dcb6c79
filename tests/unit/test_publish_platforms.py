"""One tag for every platform: grouping, what blocks an image, the OCI index, and the push order against an
in-memory registry (each platform's manifest first, then an index per tag; unchanged tags left alone)."""
from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import pytest

from builder.adapters.engine import ImageInfo
from builder.adapters.registry import INDEX_TYPES, RemoteManifest
from builder.plan.tags import Tag
from builder.publish.platforms import (INDEX_TYPE, ImageSet, PlatformManifest, blocked, describe_platforms, disagreements, group,
                                       index_document,
                                       platform_fields, platform_tag)
from builder.publish.push import PublishFailed, Pusher, manifest_document, steps
from builder.publish.release import READY, UNTESTED, Release

from .fakes import FakeEngine

DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
TAGS = (Tag("a-sha", "", False), Tag("bookworm", "", True), Tag("latest", "latest", True))
PLATFORMS = ("linux/amd64", "linux/arm64")


def _sha(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


class MemoryRegistry:
    """Manifests by repository and reference (tag or digest), as a registry stores them."""

    host = "reg:5000"

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.puts: list[str] = []  # tags (and digests) PUT, in order

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        digest = _sha(body)
        self.stored[(repository, reference)] = self.stored[(repository, digest)] = (body, media_type)
        self.puts.append(reference)
        return digest

    def raw_manifest(self, repository: str, reference: str):
        found = self.stored.get((repository, reference))
        return (found[0], found[1], _sha(found[0])) if found else None

    def head(self, repository: str, reference: str) -> str | None:
        found = self.stored.get((repository, reference))
        return _sha(found[0]) if found else None

    def manifest(self, repository: str, reference: str, platform=("linux", "amd64")) -> RemoteManifest | None:
        found = self.stored.get((repository, reference))
        if found is None:
            return None
        body = json.loads(found[0])
        if found[1] in INDEX_TYPES:
            child = next((m for m in body["manifests"]
                          if (m["platform"]["os"], m["platform"]["architecture"]) == platform), None)
            inner = self.manifest(repository, child["digest"]) if child else None
            return RemoteManifest(_sha(found[0]), inner.config if inner else None, 0)
        return RemoteManifest(_sha(found[0]), body["config"]["digest"], 10)


def image_manifest(image_id: str) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": DOCKER, "config": {"digest": image_id, "size": 7},
                       "layers": [{"digest": "sha256:layer-" + image_id[-5:], "size": 100}]}).encode()


def engine_for(registry: MemoryRegistry, fail_on: str = "") -> FakeEngine:
    """An engine holding each platform's image; a push stores its manifest in `registry` under the tag."""
    def serve(repository: str, tag: str, image_id: str) -> str:
        return registry.put_manifest(repository.split("/", 1)[1], tag, image_manifest(image_id), DOCKER)

    engine = FakeEngine(on_push=serve, fail_push_on=fail_on)
    for platform in PLATFORMS:
        engine.add(local_ref(platform), image_id=image_id(platform), size=1000)
    return engine


def local_ref(platform: str) -> str:
    return f"stacks/a:{platform.replace('/', '-')}-0123456789ab"


def image_id(platform: str) -> str:
    return f"sha256:a-{platform.split('/')[1]}"


def release(platform: str, state: str = READY, tags: tuple[Tag, ...] = TAGS) -> Release:
    arch = platform.split("/")[1]
    content = hashlib.sha256(platform.encode()).hexdigest()
    node = SimpleNamespace(name="a", short_hash=content[:12], hash=content, local_ref=local_ref(platform))
    image = ImageInfo(image_id(platform), (local_ref(platform),), {}, 1000, os="linux", architecture=arch)
    return Release(node, "reg:5000/ns/a", "ns/a", state, image, None, None, list(tags), [], [])  # type: ignore[arg-type]


def image_set(**states: str) -> list[ImageSet]:
    return group({p: [release(p, states.get(p.split("/")[1], READY))] for p in PLATFORMS})


def pusher(registry: MemoryRegistry, engine: FakeEngine, **kwargs) -> Pusher:
    return Pusher(engine, registry, None, lambda line: None, attempts=1, backoff=0, **kwargs)  # type: ignore[arg-type]


def test_releases_are_grouped_by_image_in_the_order_of_the_platforms() -> None:
    [image] = image_set()
    assert image.name == "a" and list(image.releases) == list(PLATFORMS)
    assert image.primary is image.releases["linux/amd64"]


def test_a_platform_not_tested_blocks_the_image_and_is_named() -> None:
    assert blocked(image_set()) == []
    [problem] = blocked(image_set(arm64=UNTESTED))
    assert problem.startswith("a for linux/arm64: untested; run `stacks build --platform linux/arm64 a`")


def test_a_dry_run_says_what_each_platform_would_put_in_the_index() -> None:
    [image] = image_set(arm64=UNTESTED)
    amd64, arm64 = describe_platforms(image)
    assert amd64.startswith("  linux/amd64: ready, hash ") and "image sha256:a-amd64" in amd64
    assert amd64.endswith(f"first pushed as :linux-amd64-{image.releases['linux/amd64'].node.short_hash}")
    assert arm64.startswith("  linux/arm64: untested, hash ") and ":linux-arm64-" in arm64


def test_platforms_that_resolve_other_tags_block_the_image() -> None:
    sets = group({"linux/amd64": [release("linux/amd64")], "linux/arm64": [release("linux/arm64", tags=TAGS[:1])]})
    [problem] = blocked(sets)
    assert "a for linux/arm64: its tags (a-sha) differ from the other platform's (a-sha, bookworm, latest)" in problem
    assert disagreements(sets[0]) == [problem] and disagreements(image_set(arm64=UNTESTED)[0]) == []


def test_the_index_names_each_platform_manifest_and_is_stable() -> None:
    manifests = [PlatformManifest("linux/amd64", "sha256:1", 500, DOCKER),
                 PlatformManifest("linux/arm/v7", "sha256:2", 501, DOCKER)]
    document = json.loads(index_document(manifests))
    assert document["mediaType"] == INDEX_TYPE and document["schemaVersion"] == 2
    assert document["manifests"] == [
        {"mediaType": DOCKER, "digest": "sha256:1", "size": 500, "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": DOCKER, "digest": "sha256:2", "size": 501,
         "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
    ]
    assert index_document(manifests) == index_document(list(manifests))
    assert platform_fields("linux/arm64") == {"os": "linux", "architecture": "arm64"}
    assert platform_tag("linux/arm64", "f" * 64) == "linux-arm64-ffffffffffff"


def test_each_platform_is_pushed_first_then_every_tag_serves_the_index_in_push_order() -> None:
    registry = MemoryRegistry()
    engine = engine_for(registry)
    sets = image_set()
    plan = steps([s.primary for s in sets], sets)
    pusher(registry, engine).run(plan)
    arm_tag = platform_tag("linux/arm64", sets[0].releases["linux/arm64"].node.hash)
    assert registry.puts[:2] == [platform_tag("linux/amd64", sets[0].primary.node.hash), arm_tag]
    assert registry.puts[2:] == ["a-sha", "bookworm", "latest"]
    assert [s.status for s in plan] == ["pushed"] * 3
    for platform in PLATFORMS:
        served = registry.manifest("ns/a", "latest", ("linux", platform.split("/")[1]))
        assert served is not None and served.config == image_id(platform)
    body, media_type, digest = registry.raw_manifest("ns/a", "bookworm")  # type: ignore[misc]
    assert media_type == INDEX_TYPE and plan[1].digest == digest and len(json.loads(body)["manifests"]) == 2
    document = manifest_document([sets[0].primary], plan, "reg:5000", complete=True)
    assert {p: v["image_id"] for p, v in document["images"][0]["platforms"].items()} == {
        p: image_id(p) for p in PLATFORMS}
    assert document["images"][0]["platforms"]["linux/arm64"]["digest"] == _sha(image_manifest(image_id("linux/arm64")))

    again_sets = image_set()
    again = steps([s.primary for s in again_sets], again_sets)
    pushed_before = list(engine.pushed)
    pusher(registry, engine).run(again)
    assert engine.pushed == pushed_before and [s.status for s in again] == ["unchanged"] * 3


def test_an_immutable_tag_serving_another_build_of_one_platform_is_refused_before_any_push() -> None:
    registry = MemoryRegistry()
    engine = engine_for(registry)
    other = registry.put_manifest("ns/a", "sha256:x", image_manifest("sha256:other-arm"), DOCKER)
    amd = registry.put_manifest("ns/a", "sha256:y", image_manifest(image_id("linux/amd64")), DOCKER)
    registry.put_manifest("ns/a", "a-sha", index_document([
        PlatformManifest("linux/amd64", amd, 1, DOCKER), PlatformManifest("linux/arm64", other, 1, DOCKER)]), INDEX_TYPE)
    sets = image_set()
    plan = steps([s.primary for s in sets], sets)
    with pytest.raises(PublishFailed, match=r"reg:5000/ns/a:a-sha for linux/arm64 \(serves image sha256:other-arm"):
        pusher(registry, engine).run(plan)
    assert engine.pushed == [] and [s.status for s in plan] == ["not attempted"] * 3


def test_a_platform_that_fails_to_push_leaves_every_tag_alone() -> None:
    registry = MemoryRegistry()
    sets = image_set()
    arm_tag = platform_tag("linux/arm64", sets[0].releases["linux/arm64"].node.hash)
    engine = engine_for(registry, fail_on=arm_tag)
    plan = steps([s.primary for s in sets], sets)
    with pytest.raises(PublishFailed, match="connection reset"):
        pusher(registry, engine).run(plan)
    assert not any(tag in registry.puts for tag in ("a-sha", "bookworm", "latest"))
    assert [s.status for s in plan] == ["failed", "not attempted", "not attempted"]


class SameRegistryCache:
    """The cache on the target registry: each platform's image is copied registry-side, not pushed."""

    host, path = "reg:5000", "ns/cache"

    def __init__(self, registry: MemoryRegistry):
        self.registry = registry
        for platform in PLATFORMS:
            registry.put_manifest(self.path, platform, image_manifest(image_id(platform)), DOCKER)

    def lookup(self, node):
        platform = "linux/arm64" if node.local_ref == local_ref("linux/arm64") else "linux/amd64"
        digest = self.registry.head(self.path, platform)
        return SimpleNamespace(ref=f"{self.path}:{platform}", digest=digest, image_id=image_id(platform))


def test_platforms_in_the_cache_on_the_same_registry_are_copied_not_pushed() -> None:
    registry = MemoryRegistry()
    registry.mount_blob = lambda repository, digest, source: True  # type: ignore[attr-defined]
    engine = engine_for(registry)
    sets = image_set()
    plan = steps([s.primary for s in sets], sets)
    pusher(registry, engine, cache=SameRegistryCache(registry)).run(plan)
    assert engine.pushed == [] and [s.status for s in plan] == ["pushed"] * 3
    served = registry.manifest("ns/a", "a-sha", ("linux", "arm64"))
    assert served is not None and served.config == image_id("linux/arm64")
