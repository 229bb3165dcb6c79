"""The DAG scheduler on its own: order, parallelism, weights, failures and stop."""
from __future__ import annotations

import threading
import time

from builder.building.scheduler import Outcome, Task, run_dag


def _recorder(fail: set[str] = frozenset(), delay: float = 0.05):
    lock = threading.Lock()
    log: list[tuple[str, str, float]] = []
    running: list[int] = [0, 0]  # current, peak

    def work(task: Task) -> Outcome:
        with lock:
            running[0] += task.weight
            running[1] = max(running[1], running[0])
            log.append(("start", task.name, time.monotonic()))
        time.sleep(delay)
        with lock:
            running[0] -= task.weight
            log.append(("end", task.name, time.monotonic()))
        return Outcome(task.name, "failed" if task.name in fail else "built")

    return work, log, running


def test_children_start_only_after_their_parent_finished() -> None:
    work, log, _ = _recorder()
    tasks = [Task("base", None), Task("a", "base"), Task("b", "base"), Task("a1", "a")]
    outcomes = run_dag(tasks, work, jobs=4)
    assert {n: o.status for n, o in outcomes.items()} == dict.fromkeys(["base", "a", "b", "a1"], "built")
    when = {(kind, name): t for kind, name, t in log}
    assert when[("start", "a")] >= when[("end", "base")]
    assert when[("start", "a1")] >= when[("end", "a")]


def test_independent_branches_run_at_the_same_time_up_to_jobs() -> None:
    work, _, running = _recorder(delay=0.2)
    tasks = [Task(f"t{i}", None) for i in range(6)]
    started = time.monotonic()
    run_dag(tasks, work, jobs=3)
    assert running[1] == 3
    assert time.monotonic() - started < 0.2 * 6 * 0.75  # clearly not one after another


def test_a_heavy_task_takes_its_weight_in_slots_and_still_runs_when_heavier_than_jobs() -> None:
    work, log, _ = _recorder(delay=0.1)
    tasks = [Task("heavy", None, weight=5), Task("light1", None), Task("light2", None)]
    outcomes = run_dag(tasks, work, jobs=2)
    assert all(o.status == "built" for o in outcomes.values())
    # the heavy task (capped at 2 slots) never overlaps another task
    events = [(k, n) for k, n, _ in log]
    between = events[events.index(("start", "heavy")) + 1: events.index(("end", "heavy"))]
    assert between == []


def test_failure_skips_descendants_but_not_other_branches() -> None:
    work, _, _ = _recorder(fail={"a"})
    tasks = [Task("base", None), Task("a", "base"), Task("a1", "a"), Task("a11", "a1"), Task("b", "base")]
    outcomes = run_dag(tasks, work, jobs=2)
    assert outcomes["a"].status == "failed"
    assert outcomes["a1"].status == "skipped" and "parent a failed" in outcomes["a1"].reason
    assert outcomes["a11"].status == "skipped"
    assert outcomes["b"].status == "built"


def test_an_exception_in_work_fails_that_task_only() -> None:
    def work(task: Task) -> Outcome:
        if task.name == "boom":
            raise RuntimeError("engine went away")
        return Outcome(task.name, "built")

    outcomes = run_dag([Task("boom", None), Task("child", "boom"), Task("ok", None)], work, jobs=2)
    assert outcomes["boom"].status == "failed" and "engine went away" in outcomes["boom"].reason
    assert outcomes["child"].status == "skipped"
    assert outcomes["ok"].status == "built"


def test_stop_cancels_what_has_not_started() -> None:
    stop = threading.Event()

    def work(task: Task) -> Outcome:
        stop.set()
        return Outcome(task.name, "built")

    outcomes = run_dag([Task("first", None), Task("second", "first"), Task("other", "first")], work, jobs=1, stop=stop)
    assert outcomes["first"].status == "built"
    assert outcomes["second"].status == "cancelled" and outcomes["other"].status == "cancelled"
