"""Walk a DAG doing work on each node as soon as its parent is done.

Independent branches run at the same time, limited by `jobs` slots; a node
with weight w takes w slots (capped at `jobs`, so a heavy node still runs,
alone). A failed node's descendants are skipped while other branches go on.
The scheduler knows nothing about Docker: `work` is any callable, which
keeps this logic testable on its own.
"""
from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar
from collections.abc import Callable

Result = TypeVar("Result")

#: An image's build state: pending until its work ends; the report and the JSON carry the string itself.
BuildStatus = Literal["pending", "built", "cached", "failed", "skipped", "cancelled"]
OK_STATES: frozenset[BuildStatus] = frozenset({"built", "cached"})


@dataclass(frozen=True)
class Task:
    name: str
    parent: str | None  # None, or a parent outside the selection, means ready at once
    weight: int = 1


@dataclass
class Outcome(Generic[Result]):
    name: str
    status: BuildStatus  # never pending: an outcome is the end of a node's work
    result: Result | None = None
    reason: str = ""


def run_dag(
    tasks: list[Task],
    work: Callable[[Task], Outcome],
    jobs: int,
    on_start: Callable[[Task], None] = lambda task: None,
    on_done: Callable[[Outcome], None] = lambda outcome: None,
    stop: threading.Event | None = None,
) -> dict[str, Outcome]:
    """Run `work` over `tasks` (given parents first); return each task's outcome."""
    jobs = max(1, jobs)
    stop = stop or threading.Event()
    names = {t.name for t in tasks}
    children: dict[str, list[str]] = {}
    for task in tasks:
        if task.parent in names:
            children.setdefault(task.parent, []).append(task.name)
    outcomes: dict[str, Outcome] = {}
    pending = list(tasks)
    running: dict[Future, Task] = {}
    used = 0

    def finish(outcome: Outcome) -> None:
        outcomes[outcome.name] = outcome
        on_done(outcome)
        if outcome.status not in OK_STATES:
            for child in _descendants(outcome.name, children):
                if child not in outcomes:
                    status: BuildStatus = "cancelled" if outcome.status == "cancelled" else "skipped"
                    finish_skip(Outcome(child, status, reason=f"parent {outcome.name} {outcome.status}"))

    def finish_skip(outcome: Outcome) -> None:
        outcomes[outcome.name] = outcome
        on_done(outcome)

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="stacks-build") as pool:
        while pending or running:
            pending = [t for t in pending if t.name not in outcomes]
            for task in list(pending):
                if stop.is_set():
                    break
                parent_done = task.parent not in names or task.parent in outcomes
                weight = min(task.weight, jobs)
                if parent_done and used + weight <= jobs:
                    pending.remove(task)
                    used += weight
                    on_start(task)
                    running[pool.submit(_guarded, work, task)] = task
            if stop.is_set():
                for task in pending:
                    if task.name not in outcomes:
                        finish_skip(Outcome(task.name, "cancelled", reason="run interrupted"))
                pending = []
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                task = running.pop(future)
                used -= min(task.weight, jobs)
                finish(future.result())
    return outcomes


def _guarded(work: Callable[[Task], Outcome], task: Task) -> Outcome:
    try:
        return work(task)
    except Exception as exc:  # a bug in one build must not take the other branches down
        return Outcome(task.name, "failed", reason=f"{type(exc).__name__}: {exc}")


def _descendants(name: str, children: dict[str, list[str]]) -> list[str]:
    found, stack = [], list(children.get(name, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack += children.get(child, [])
    return found
