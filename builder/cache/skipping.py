"""`stacks test` by record: an image whose test key already has a passing record is not tested again.

The smoke runner is passed in (this layer sits below `check/`), so the
decision is testable without Docker: split the nodes into those to run and
those passed earlier, run the first, record every outcome.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from builder.cache.keys import node_key, tool_version
from builder.cache.records import RecordStore, TestRecord
from builder.plan.plan import Node


@dataclass
class TestRun:
    """What one `stacks test` did: results of the images it ran, records of those it skipped."""

    ran: list[Node] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)  # CheckResult of the images that ran
    earlier: dict[str, TestRecord] = field(default_factory=dict)  # image name -> the passing record used

    __test__ = False

    def earlier_summaries(self) -> dict[str, dict[str, Any]]:
        return {name: record.summary() for name, record in self.earlier.items()}


def plan_tests(nodes: list[Node], image_ids: dict[str, str | None], store: RecordStore, force: bool,
               tool: str | None = None) -> tuple[list[tuple[Node, str]], dict[str, TestRecord]]:
    """([(node, key) to test], {name: passing record}) — `force` tests everything."""
    tool = tool or tool_version()
    to_run, earlier = [], {}
    for node in nodes:
        key = node_key(node, tool)
        record = None if force else store.passing(key, node.hash, image_ids.get(node.name))
        if record is None:
            to_run.append((node, key))
        else:
            earlier[node.name] = record
    return to_run, earlier


def record_of(node: Node, key: str, image_id: str | None, results: list[Any], tool: str) -> TestRecord:
    mine = [r for r in results if r.image == node.name]
    counts: dict[str, int] = {}
    for result in mine:
        counts[result.status] = counts.get(result.status, 0) + 1
    return TestRecord(key=key, image=node.name, hash=node.hash, image_id=image_id or "", tool=tool,
                      passed=not any(r.status == "failed" for r in mine), checks=counts,
                      seconds=round(sum(r.seconds for r in mine), 1))


def run_tests_by_record(nodes: list[Node], image_ids: dict[str, str | None], run_one: Callable[[Node], list[Any]],
                        echo: Callable[[str], None], jobs: int, force: bool = False,
                        store: RecordStore | None = None) -> TestRun:
    """Test the nodes without a passing record (all with `force`), in `jobs` threads; record each outcome."""
    store = store or RecordStore()
    tool = tool_version()
    to_run, earlier = plan_tests(nodes, image_ids, store, force, tool)
    for name, record in earlier.items():
        echo(f"passed {name}: passed earlier, {_when(record.date)}, cached")
    run = TestRun(ran=[n for n, _ in to_run], earlier=earlier)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        groups = list(pool.map(lambda item: run_one(item[0]), to_run))
    for (node, key), group in zip(to_run, groups):
        store.put(record_of(node, key, image_ids.get(node.name), group, tool))
        run.results += group
    return run


def _when(date: str) -> str:
    return date.replace("T", " ").replace("+00:00", " UTC")


def passed_by_record(node: Node, image_id: str | None, store: RecordStore | None = None) -> dict[str, str]:
    """{name: hash} when a passing record covers this node and image (the push gate's view), else {}."""
    if image_id is None:
        return {}
    record = (store or RecordStore()).passing(node_key(node), node.hash, image_id)
    return {node.name: node.hash} if record is not None else {}
