"""The `stacks test` stage: which images run, the run itself, its records and their sharing.

An image whose test key already has a passing record (here, or in the
registry cache) is not tested again; the others run their suites side by
side in `jobs` threads, each outcome is recorded, and a pass is shared with
the cache together with the image. The stage prints nothing: `say` gets one
line per image, the command decides what else the user sees.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from builder.adapters.containers import ContainerRunner
from builder.adapters.engine import Engine
from builder.cache.keys import node_key, tool_version
from builder.cache.records import RecordStore, TestRecord
from builder.cache.registry_cache import RegistryCache
from builder.cache.skipping import passing
from builder.check.emulation import emulation_limits
from builder.check.gate import apply_gate
from builder.check.options import CheckOptions
from builder.check.progress import TestProgress
from builder.check.result import CheckResult
from builder.check.smoke import size_check, smoke_image
from builder.check.versions import read_versions
from builder.inventory.manifest import Manifest
from builder.inventory.store import ManifestStore
from builder.inventory import taking
from builder.plan.plan import Node, Plan
from builder.plan.versions import commands, probes

Say = Callable[[str], None]
#: (node, image id, its record if any, the image is in the engine) -> its manifest, or None
ManifestOf = Callable[[Node, str, "TestRecord | None", bool], "Manifest | None"]


@dataclass
class TestRun:
    """What one `stacks test` did: results of the images it ran, records of those it skipped."""

    ran: list[Node] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)  # of the images that ran
    earlier: dict[str, TestRecord] = field(default_factory=dict)  # image name -> the passing record used
    unavailable: list[str] = field(default_factory=list)  # neither here nor obtainable from the cache
    manifests: dict[str, Manifest] = field(default_factory=dict)  # image name -> what is inside it

    __test__ = False

    def earlier_summaries(self) -> dict[str, dict[str, Any]]:
        return {name: record.summary() for name, record in self.earlier.items()}

    @property
    def failed(self) -> bool:
        return bool(self.unavailable) or any(r.status == "failed" for r in self.results)


@dataclass(frozen=True)
class RecordedVersions:
    """The version commands that ran (name -> command) and what they answered."""

    commands: dict[str, str]
    versions: dict[str, str]
    failures: dict[str, str]


@dataclass(frozen=True)
class TestStage:
    """Everything a `stacks test` run needs, handed in by the composition root."""

    engine: Engine
    options: CheckOptions
    store: RecordStore
    cache: RegistryCache | None = None
    jobs: int = 1
    force: bool = False
    waived: frozenset[str] = frozenset()  # checks `--allow-not-run` accepted unrun
    heartbeat: float = 30.0  # seconds of silence before a line says what is still running
    manifests: ManifestStore | None = None  # where package manifests are kept; None: none are taken
    #: the containers of the images under test: the engine's, or for another platform an emulated runner
    containers: ContainerRunner | None = None
    emulated: bool = False  # the images are of another platform than the engine's, run under QEMU
    setuid_works: bool = True  # setuid programs (sudo) work in the containers (under QEMU: only with binfmt flag C)

    __test__ = False

    @property
    def runner(self) -> ContainerRunner:
        return self.containers if self.containers is not None else self.engine.containers

    def missing(self, nodes: list[Node]) -> list[str]:
        """The images that are neither built here nor in the cache: nothing can test them."""
        return [n.name for n in nodes if self.engine.image(n.local_ref) is None
                and (self.cache is None or self.cache.lookup(n) is None)]

    def run(self, plan: Plan, nodes: list[Node], say: Say) -> TestRun:
        """Smoke-test `nodes` (passed earlier: skipped unless `force`): to `say`, a line per suite an image
        starts ("[1/3] testing lab: server and browser"), one per image done, and a heartbeat in silences."""
        image_ids = {n.name: image.id for n in nodes if (image := self.engine.image(n.local_ref)) is not None}
        progress = TestProgress(say, heartbeat=self.heartbeat)
        say = progress.say

        def one(node: Node) -> list[CheckResult]:
            try:
                results = smoke_image(self.runner, node, self.options,
                                      on_suite=lambda what: progress.step(node.name, what))
            finally:
                count = progress.done(node.name)
            budget = size_check(self.engine, node)
            unrunnable: frozenset[tuple[str, str]] = frozenset()
            if self.emulated:
                results, unrunnable = emulation_limits(results, self.setuid_works)
            results = apply_gate(node, results + ([budget] if budget else []), self.waived, unrunnable)
            failed = [r for r in results if r.status == "failed"]
            say(f"{count} {'FAILED' if failed else 'passed'} {node.name}: "
                f"{len(results) - len(failed)}/{len(results)} checks")
            for r in failed:
                say(f"    {r.name} ({r.fragment}): expected {r.expected}; got {r.got[-300:]}")
            return results

        def versions(node: Node) -> RecordedVersions | None:
            """Read once here, kept in the record: `stacks push` then pulls no image that is only in the cache."""
            if not node.push:
                return None
            wanted = probes(node.chain, plan[node.root].base)
            report = read_versions(self.runner, node.local_ref, node.name, wanted)
            return RecordedVersions(commands(wanted), report.versions, report.failures)

        def manifest(node: Node, image_id: str, record: TestRecord | None, local: bool) -> Manifest | None:
            """Taken once per image: known from the store or the record, else read out of the local image."""
            if self.manifests is None:
                return None
            found = taking.known(self.manifests, image_id, record)
            if found is not None or not local:
                return found
            # the stage's runner: under emulation the reader runs as the image's platform, with its timeouts;
            # the platform is the node's (its build checked the image's architecture against it)
            return taking.take(self.runner, self.manifests, node, image_id, node.platform,
                               probes(node.chain, plan[node.root].base))

        with progress:
            return run_tests_by_record(nodes, image_ids, one, say, self.jobs, self.store, self.force, self.cache,
                                       self.waived, versions, progress, manifest, self.emulated)


def plan_tests(nodes: list[Node], image_ids: dict[str, str], store: RecordStore, force: bool,
               tool: str | None = None, cache: RegistryCache | None = None,
               ) -> tuple[list[tuple[Node, str]], dict[str, TestRecord]]:
    """([(node, key) to test], {name: passing record}) — `force` tests everything.

    A record proves a pass for the image it names: the local one when the
    node is here, the cache's when it is only there.
    """
    tool = tool or tool_version()
    to_run, earlier = [], {}
    for node in nodes:
        key = node_key(node, tool)
        record = None if force else passing(node, key, image_ids.get(node.name), store, cache)
        if record is None:
            to_run.append((node, key))
        else:
            earlier[node.name] = record
    return to_run, earlier


def record_of(node: Node, key: str, image_id: str | None, results: list[CheckResult], tool: str) -> TestRecord:
    mine = [r for r in results if r.image == node.name]
    counts: dict[str, int] = {}
    for result in mine:
        counts[result.status] = counts.get(result.status, 0) + 1
    return TestRecord(key=key, image=node.name, hash=node.hash, image_id=image_id or "", tool=tool,
                      passed=not any(r.status == "failed" for r in mine), checks=counts,
                      seconds=round(sum(r.seconds for r in mine), 1))


def run_tests_by_record(nodes: list[Node], image_ids: dict[str, str], run_one: Callable[[Node], list[CheckResult]],
                        echo: Say, jobs: int, store: RecordStore, force: bool = False,
                        cache: RegistryCache | None = None, waived: frozenset[str] = frozenset(),
                        versions_of: Callable[[Node], RecordedVersions | None] | None = None,
                        progress: TestProgress | None = None,
                        manifest_of: ManifestOf | None = None, emulated: bool = False) -> TestRun:
    """Test the nodes without a passing record (all with `force`), in `jobs` threads; record each outcome.

    `image_ids`: the local image of each node that is here. A node that is
    only in the cache is pulled when it must run; a passing run is stored
    locally and, with its image, in the cache. `waived` checks are part of
    the key, so a pass with waivers never stands in for a run without them.
    `versions_of`: what a passed image's version commands answer, kept in its
    record (`stacks push` then needs no pull of an image that is only in the cache). `manifest_of`: the
    image's package manifest, kept in its record too; an image that passed earlier is read only when its
    record has none and the image is here. `emulated` runs are
    keyed apart too: a pass under QEMU, with the checks emulation cannot run left out, never stands in for a
    run on a native host of that platform.
    """
    tool = tool_version() + (f"+allow-not-run:{','.join(sorted(waived))}" if waived else "") \
        + ("+emulated" if emulated else "")
    to_run, earlier = plan_tests(nodes, image_ids, store, force, tool, cache)
    if progress is not None:
        progress.total = len(to_run)
    run = TestRun(earlier=earlier)

    def inventory(node: Node, image_id: str, record: TestRecord, local: bool) -> TestRecord:
        """The record with the image's manifest (kept in run.manifests); a manifest that cannot be read is a warning."""
        if manifest_of is None or not image_id:
            return record
        try:
            found = manifest_of(node, image_id, record, local)
        except Exception as exc:  # the manifest describes the image; it never fails its test
            echo(f"warning: no manifest of {node.name}: {exc}")
            return record
        if found is None:
            return record
        run.manifests[node.name] = found
        return record if record.manifest is not None else replace(record, manifest=found.to_dict())

    by_name = {n.name: n for n in nodes}
    for name, record in list(earlier.items()):
        echo(f"passed {name}: passed earlier, {_when(record.date)}, cached")
        updated = inventory(by_name[name], image_ids.get(name) or record.image_id, record, name in image_ids)
        if updated is not record:
            store.put(updated)
            earlier[name] = updated
    if cache is not None and cache.write:
        for node in nodes:
            known = earlier.get(node.name)
            if known is not None and image_ids.get(node.name) and not store.is_shared(known.key, cache.location):
                _share(node, known, cache, store)  # a pass recorded here only: give it to the cache too

    def one(item: tuple[Node, str]) -> list[CheckResult] | None:
        node, key = item
        image_id = image_ids.get(node.name) or _pulled(node, cache)
        if image_id is None:
            echo(f"FAILED {node.name}: not here, and the cache could not give it; run `stacks build {node.name}`")
            return None
        results = run_one(node)
        record = record_of(node, key, image_id, results, tool)
        if record.passed and versions_of is not None:
            record = _with_versions(record, node, versions_of)
        record = inventory(node, image_id, record, True)
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


def _with_versions(record: TestRecord, node: Node, versions_of: Callable[[Node], RecordedVersions | None]) -> TestRecord:
    try:
        read = versions_of(node)
    except Exception:  # the versions are a convenience for publishing: a push reads them itself without them
        return record
    if read is None:
        return record
    return replace(record, versions=dict(read.versions), version_failures=dict(read.failures),
                   version_commands=dict(read.commands))


def _pulled(node: Node, cache: RegistryCache | None) -> str | None:
    hit = cache.lookup(node) if cache is not None else None
    return hit.image_id if hit is not None and cache is not None and cache.pull(node, hit) else None


def _share(node: Node, record: TestRecord, cache: RegistryCache, store: RecordStore) -> None:
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
