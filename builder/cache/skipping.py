"""`stacks test` by record: an image whose test key already has a passing record is not tested again.

The smoke runner is passed in (this layer sits below `check/`), so the
decision is testable without Docker: split the nodes into those to run and
those passed earlier, run the first, record every outcome.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any
from collections.abc import Callable

from builder.cache.keys import node_key, tool_version
from builder.cache.records import RecordStore, TestRecord
from builder.plan.plan import Node


@dataclass
class TestRun:
    """What one `stacks test` did: results of the images it ran, records of those it skipped."""

    ran: list[Node] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)  # CheckResult of the images that ran
    earlier: dict[str, TestRecord] = field(default_factory=dict)  # image name -> the passing record used
    unavailable: list[str] = field(default_factory=list)  # neither here nor obtainable from the cache

    __test__ = False

    def earlier_summaries(self) -> dict[str, dict[str, Any]]:
        return {name: record.summary() for name, record in self.earlier.items()}


def plan_tests(nodes: list[Node], image_ids: dict[str, str | None], store: RecordStore, force: bool,
               tool: str | None = None, cache: Any = None) -> tuple[list[tuple[Node, str]], dict[str, TestRecord]]:
    """([(node, key) to test], {name: passing record}) — `force` tests everything.

    A record proves a pass for the image it names: the local one when the
    node is here, the cache's when it is only there. A record found in the
    cache is kept locally too, so the next run does not ask again.
    """
    tool = tool or tool_version()
    to_run, earlier = [], {}
    for node in nodes:
        key = node_key(node, tool)
        record = None if force else _passing(node, key, image_ids.get(node.name), store, cache)
        if record is None:
            to_run.append((node, key))
        else:
            earlier[node.name] = record
    return to_run, earlier


def _passing(node: Node, key: str, image_id: str | None, store: RecordStore, cache: Any) -> TestRecord | None:
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


def record_of(node: Node, key: str, image_id: str | None, results: list[Any], tool: str) -> TestRecord:
    mine = [r for r in results if r.image == node.name]
    counts: dict[str, int] = {}
    for result in mine:
        counts[result.status] = counts.get(result.status, 0) + 1
    return TestRecord(key=key, image=node.name, hash=node.hash, image_id=image_id or "", tool=tool,
                      passed=not any(r.status == "failed" for r in mine), checks=counts,
                      seconds=round(sum(r.seconds for r in mine), 1))


def run_tests_by_record(nodes: list[Node], image_ids: dict[str, str | None], run_one: Callable[[Node], list[Any]],
                        echo: Callable[[str], None], jobs: int, store: RecordStore, force: bool = False,
                        cache: Any = None,
                        waived: frozenset[str] = frozenset(),
                        versions_of: Callable[[Node], RecordedVersions | None] | None = None) -> TestRun:
    """Test the nodes without a passing record (all with `force`), in `jobs` threads; record each outcome.

    `image_ids`: the local image of each node that is here. A node that is
    only in the cache (`cache`, a RegistryCache) is pulled when it must run;
    a passing run is stored locally and, with its image, in the cache.
    `waived`: checks `--allow-not-run` accepted unrun; they are part of the key, so a
    pass with waivers never stands in for a run without them.
    `versions_of`: what a passed image's version commands answer, kept in its
    record (`stacks push` then needs no pull of an image that is only in the cache).
    """
    tool = tool_version() + (f"+allow-not-run:{','.join(sorted(waived))}" if waived else "")
    to_run, earlier = plan_tests(nodes, image_ids, store, force, tool, cache)
    for name, record in earlier.items():
        echo(f"passed {name}: passed earlier, {_when(record.date)}, cached")
    if cache is not None and cache.write:
        for node in nodes:
            known = earlier.get(node.name)
            if known is not None and image_ids.get(node.name) and not store.is_shared(known.key, cache.location):
                _share(node, known, cache, store)  # a pass recorded here only: give it to the cache too
    run = TestRun(earlier=earlier)

    def one(item: tuple[Node, str]) -> list[Any] | None:
        node, key = item
        image_id = image_ids.get(node.name) or _pulled(node, cache)
        if image_id is None:
            echo(f"FAILED {node.name}: not here, and the cache could not give it; run `stacks build {node.name}`")
            return None
        results = run_one(node)
        record = record_of(node, key, image_id, results, tool)
        if record.passed and versions_of is not None:
            record = _with_versions(record, node, versions_of)
        store.put(record)
        if record.passed and cache is not None:
            _share(node, record, cache, store)
        return results

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        groups = list(pool.map(one, to_run))
    for (node, _), group in zip(to_run, groups):
        if group is None:
            run.unavailable.append(node.name)
        else:
            run.ran.append(node)
            run.results += group
    return run


@dataclass(frozen=True)
class RecordedVersions:
    """The version commands that ran (name -> command) and what they answered."""

    commands: dict[str, str]
    versions: dict[str, str]
    failures: dict[str, str]


def _with_versions(record: TestRecord, node: Node, versions_of: Callable[[Node], RecordedVersions | None]) -> TestRecord:
    try:
        read = versions_of(node)
    except Exception:  # the versions are a convenience for publishing: a push reads them itself without them
        return record
    if read is None:
        return record
    return replace(record, versions=dict(read.versions), version_failures=dict(read.failures),
                   version_commands=dict(read.commands))


def _pulled(node: Node, cache: Any) -> str | None:
    hit = cache.lookup(node) if cache is not None else None
    return hit.image_id if hit is not None and cache.pull(node, hit) else None


def _share(node: Node, record: TestRecord, cache: Any, store: RecordStore) -> None:
    """Put the tested image (unless the cache has this very image) and its record into the cache."""
    hit = cache.lookup(node)
    if hit is None or hit.image_id != record.image_id:
        hit = cache.push_image(node)
    if hit is None or hit.image_id != record.image_id:
        return
    if cache.record(node, hit) is not None or cache.push_record(hit, record):
        store.mark_shared(record.key, cache.location)


def _when(date: str) -> str:
    return date.replace("T", " ").replace("+00:00", " UTC")


def passed_by_record(node: Node, image_id: str | None, store: RecordStore, cache: Any = None) -> dict[str, str]:
    """{name: hash} when a passing record (here, or in the cache) covers this node and image: the push gate's view."""
    return {node.name: node.hash} if passing_record(node, image_id, store, cache) is not None else {}


def passing_record(node: Node, image_id: str | None, store: RecordStore, cache: Any = None) -> TestRecord | None:
    """The passing record (here, or in the cache) of this node's current checks and this very image."""
    return None if image_id is None else _passing(node, node_key(node), image_id, store, cache)
