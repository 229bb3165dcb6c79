"""`stacks cache prune`: the keep/remove decision (pure), reading a cache and deleting it, against fakes."""
from __future__ import annotations

import pytest

from builder.cache.prune import (CachedImage, CachedRecord, Inventory, Removal, decide, delete, is_stacks_tag,
                                 read_inventory, released)
from builder.reference import ImageRef

from .fakes import FakeRegistry

H = [f"{i:x}" * 64 for i in range(1, 10)]  # content hashes
CACHE = "cache"


def image(tag: str, created: str, name: str | None = "lab", blobs: dict[str, int] | None = None,
          platform: str = "linux/amd64", more: tuple[str, ...] = (), parent: str = "") -> CachedImage:
    digest = f"sha256:m-{tag}"
    return CachedImage(digest, (tag, *more), name, platform, created, f"sha256:c-{tag}",
                       {digest: 1, **(blobs or {f"sha256:l-{tag}": 100})}, tag[-64:], parent)


def record(subject: CachedImage | str, present: bool = False) -> CachedRecord:
    subject = subject if isinstance(subject, str) else subject.digest
    return CachedRecord(f"sha256:r-{subject}", (), subject, {f"sha256:r-{subject}": 10, "sha256:empty": 2}, present)


def names(removals: tuple[Removal, ...]) -> list[str]:
    return [r.image.tags[0] if r.image else f"record of {r.records[0].subject}" for r in removals]


def test_the_plan_the_last_n_builds_and_released_images_stay_the_rest_goes_with_its_records() -> None:
    lab = [image(f"lab-bookworm-linux-amd64-{H[i]}", f"2026-11-0{i + 1}T00:00:00Z") for i in range(6)]
    records = tuple(record(i) for i in lab)
    inventory = Inventory(tuple(lab), records)
    needed = {lab[0].tags[0]}  # the plan went back to the oldest build
    releases = {lab[1].config: ["docker.io/me/lab:2026-11-02"]}  # released: served by its image id
    decision = decide(inventory, needed, releases, keep=2)
    reasons = {k.image.tags[0]: k.reasons for k in decision.kept}
    assert reasons == {
        lab[0].tags[0]: ("in the current plan",),
        lab[1].tags[0]: ("released as docker.io/me/lab:2026-11-02",),
        lab[5].tags[0]: ("one of the last 2 builds of lab (linux/amd64)",),
        lab[4].tags[0]: ("one of the last 2 builds of lab (linux/amd64)",),
    }
    assert names(decision.removals) == [lab[2].tags[0], lab[3].tags[0]]
    assert [r.records for r in decision.removals] == [(records[2],), (records[3],)]


def test_each_name_and_platform_keeps_its_own_last_builds_by_creation_time_not_by_tag() -> None:
    arm = [image(f"lab-arm-{H[i]}", f"2026-10-0{i + 1}", platform="linux/arm64") for i in range(3)]
    amd = [image(f"lab-amd-{H[i]}", f"2026-10-0{3 - i}") for i in range(3)]  # hash order opposite to age
    other = [image(f"leaf-{H[i]}", f"2026-10-0{i + 1}", name="leaf") for i in range(2)]
    decision = decide(Inventory((*arm, *amd, *other), ()), set(), {}, keep=1)
    assert {k.image.tags[0] for k in decision.kept} == {arm[2].tags[0], amd[0].tags[0], other[1].tags[0]}
    assert len(decision.removals) == 5


def test_what_the_last_builds_were_built_on_stays_with_them_up_the_chain() -> None:
    base = [image(f"debian-{H[i]}", f"2026-01-0{i + 1}", name="debian") for i in range(2)]
    roots = [image(f"root-{H[2 + i]}", f"2026-02-0{i + 1}", name="root", parent=base[0].hash) for i in range(3)]
    leaf = image(f"leaf-{H[5]}", "2026-03-01", name="leaf", parent=roots[0].hash)  # built on the oldest root
    arm_root = image(f"root-arm-{H[2]}", "2026-02-01", name="root", platform="linux/arm64")  # same hash, other platform
    decision = decide(Inventory((*base, *roots, leaf, arm_root), ()), set(), {}, keep=1)
    reasons = {k.image.digest: k.reasons for k in decision.kept}
    assert reasons[roots[0].digest] == (f"built on by {leaf.tags[0]}, one of the last builds kept",)
    assert reasons[base[0].digest] == (f"built on by {roots[2].tags[0]}, one of the last builds kept",)
    assert names(decision.removals) == [roots[1].tags[0]]  # base[1] is the newest debian; arm_root its own last


def test_layer_cache_tags_and_manifests_stacks_did_not_write_are_never_removed() -> None:
    latest = image(f"lab-{H[0]}", "2026-01-01", more=("lab-latest",))
    foreign = image(f"lab-{H[1]}", "2026-01-02", more=("v1.0",))
    unlabelled = image(f"thing-{H[2]}", "2026-01-03", name=None)
    decision = decide(Inventory((latest, foreign, unlabelled), ()), set(), {}, keep=0)
    assert not decision.removals
    assert {k.image.digest: k.reasons for k in decision.kept} == {
        latest.digest: ("layer cache (lab-latest)",),
        foreign.digest: ("not only a stacks cache image (also tagged v1.0)",),
        unlabelled.digest: ("not only a stacks cache image",),
    }


def test_a_record_whose_image_is_gone_goes_one_whose_image_is_there_untagged_stays() -> None:
    gone, untagged = record("sha256:gone"), record("sha256:untagged", present=True)
    decision = decide(Inventory((), (gone, untagged)), set(), {}, keep=3)
    assert [r.records for r in decision.removals] == [(gone,)] and decision.removals[0].image is None


def test_freed_bytes_count_unique_blobs_only_removed_manifests_use_shared_ones_apart() -> None:
    base = {"sha256:base": 1000}
    old = image(f"lab-{H[0]}", "2026-01-01", blobs={**base, "sha256:old": 300, "sha256:both-old": 50})
    older = image(f"lab-{H[1]}", "2026-01-00", blobs={**base, "sha256:both-old": 50})
    new = image(f"lab-{H[2]}", "2026-01-02", blobs={**base, "sha256:new": 70})
    decision = decide(Inventory((old, older, new), (record(old), record(new))), set(), {}, keep=1)
    assert names(decision.removals) == [old.tags[0], older.tags[0]]
    # old: manifest 1 + 300 + 50 + its record 10 (the empty config is shared with new's record); older: manifest 1
    assert decision.freed == 1 + 300 + 50 + 10 + 1
    assert decision.shared == 1000 + 2  # the base layer and the empty config stay for the kept image
    assert decision.size(decision.removals[0]) == 1 + 1000 + 300 + 50 + 10 + 2


def test_keep_zero_keeps_only_what_the_plan_and_releases_need() -> None:
    builds = [image(f"lab-{H[i]}", f"2026-01-0{i + 1}") for i in range(3)]
    decision = decide(Inventory(tuple(builds), ()), {builds[1].tags[0]}, {}, keep=0)
    assert names(decision.removals) == [builds[0].tags[0], builds[2].tags[0]]


def test_cache_tags_are_recognised_by_their_trailing_hash_whatever_comes_before() -> None:
    assert is_stacks_tag(f"lab-{H[0]}") and is_stacks_tag(f"lab-bookworm-linux-amd64-{H[0]}")
    assert is_stacks_tag("lab-bookworm-latest") and is_stacks_tag(f"sha256-{H[0]}.stacks-test")
    assert not is_stacks_tag("v1.0") and not is_stacks_tag(f"lab-{H[0][:63]}") and not is_stacks_tag(f"{H[0]}x")


# --- against a fake registry -------------------------------------------------------


def cache_with_builds(registry: FakeRegistry, count: int = 3) -> list[tuple[str, str]]:
    """`count` builds of lab (oldest first) under cache tags, the newest also lab-latest, each with a tagged record."""
    builds = []
    for i in range(count):
        tags = (f"lab-linux-amd64-{H[i]}", *(("lab-latest",) if i == count - 1 else ()))
        digest, config = registry.image(CACHE, tags, "lab", f"2026-11-0{i + 1}T00:00:00Z",
                                        {"sha256:base": 5000, f"sha256:own{i}": 100 * (i + 1)},
                                        labels={"io.stacks.hash": H[i], "io.stacks.inputs": f'{{"parent": "{H[8]}"}}'})
        registry.record(CACHE, digest)
        builds.append((digest, config))
    return builds


def test_an_inventory_groups_tags_by_manifest_and_reads_names_times_and_records() -> None:
    registry = FakeRegistry()
    builds = cache_with_builds(registry)
    registry.record(CACHE, "sha256:" + "0" * 64)  # a record whose image was deleted
    inventory = read_inventory(registry, CACHE)  # type: ignore[arg-type]
    newest = next(i for i in inventory.images if i.digest == builds[2][0])
    assert newest.tags == ("lab-latest", f"lab-linux-amd64-{H[2]}") and newest.name == "lab"
    assert (newest.platform, newest.created, newest.config) == ("linux/amd64", "2026-11-03T00:00:00Z", builds[2][1])
    assert newest.blobs["sha256:own2"] == 300 and newest.blobs["sha256:base"] == 5000
    assert (newest.hash, newest.parent) == (H[2], H[8])
    assert {r.subject for r in inventory.records} == {d for d, _ in builds} | {"sha256:" + "0" * 64}


def test_records_only_the_referrers_api_knows_are_found_and_removed_with_their_image() -> None:
    registry = FakeRegistry(referrers_api=True)
    builds = cache_with_builds(registry, 2)
    hidden = registry.record(CACHE, builds[0][0], tagged=False)
    inventory = read_inventory(registry, CACHE)  # type: ignore[arg-type]
    decision = decide(inventory, set(), {}, keep=1)
    assert {r.digest for r in decision.removals[0].records} >= {hidden}


def test_delete_removes_records_before_their_image_and_the_kept_images_stay_whole() -> None:
    registry = FakeRegistry()
    builds = cache_with_builds(registry)
    inventory = read_inventory(registry, CACHE)  # type: ignore[arg-type]
    record_of = {r.subject: r.digest for r in inventory.records}
    decision = decide(inventory, set(), {}, keep=1)
    outcome = delete(registry, CACHE, decision.removals)  # type: ignore[arg-type]
    assert outcome.complete and len(outcome.removed) == 2
    assert registry.deleted == [record_of[builds[0][0]], builds[0][0], record_of[builds[1][0]], builds[1][0]]
    assert set(registry.tags(CACHE)) == {f"lab-linux-amd64-{H[2]}", "lab-latest", builds[2][0].replace(":", "-") + ".stacks-test"}


def test_a_registry_that_refuses_deletes_keeps_everything() -> None:
    registry = FakeRegistry(refuse_deletes=True)
    cache_with_builds(registry)
    before = dict(registry.tags_of[CACHE])
    decision = decide(read_inventory(registry, CACHE), set(), {}, keep=1)  # type: ignore[arg-type]
    outcome = delete(registry, CACHE, decision.removals)  # type: ignore[arg-type]
    assert outcome.refused and "405 UNSUPPORTED" in outcome.refused and outcome.deleted == []
    assert registry.tags_of[CACHE] == before


def test_a_failure_after_the_records_leaves_the_image_without_records_never_a_record_without_its_image() -> None:
    registry = FakeRegistry()
    builds = cache_with_builds(registry)
    registry.fail_delete = builds[1][0]  # the second removal's image
    decision = decide(read_inventory(registry, CACHE), set(), {}, keep=1)  # type: ignore[arg-type]
    outcome = delete(registry, CACHE, decision.removals)  # type: ignore[arg-type]
    assert outcome.failed and outcome.stopped is decision.removals[1] and outcome.records_gone == 1
    assert len(outcome.removed) == 1 and builds[0][0] in registry.deleted
    assert registry.head(CACHE, f"lab-linux-amd64-{H[1]}") == builds[1][0]  # the image is still served
    remaining = read_inventory(registry, CACHE)  # type: ignore[arg-type]
    assert {r.subject for r in remaining.records} <= {i.digest for i in remaining.images}  # no record without its image
    assert len(remaining.records) == 1 and len(remaining.images) == 2


@pytest.mark.parametrize("by", ["digest", "config"])
def test_release_tags_name_the_manifest_and_image_id_they_serve(by: str) -> None:
    registry = FakeRegistry()
    builds = cache_with_builds(registry)
    digest, config = registry.image("me/lab", ("2026-11-01", "latest"), "lab", "2026-11-01T00:00:00Z", {"sha256:x": 1})
    found = released(lambda host: registry, [ImageRef.parse("127.0.0.1:5000/me/lab")])  # type: ignore[arg-type,return-value]
    assert found[digest] == found[config] == ["127.0.0.1:5000/me/lab:2026-11-01", "127.0.0.1:5000/me/lab:latest"]
    releases = {(builds[0][0] if by == "digest" else builds[0][1]): ["127.0.0.1:5000/me/lab:1.0"]}
    decision = decide(read_inventory(registry, CACHE), set(), releases, keep=1)  # type: ignore[arg-type]
    assert builds[0][0] in {k.image.digest for k in decision.kept} and len(decision.removals) == 1
