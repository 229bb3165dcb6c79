"""`stacks test` says what it runs: a counted line per suite an image starts, a heartbeat after a silence."""
from __future__ import annotations

import time

from builder.check.progress import TestProgress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_suite_is_a_counted_line_and_a_silence_gets_a_heartbeat() -> None:
    lines: list[str] = []
    clock = Clock()
    with TestProgress(lines.append, total=2, heartbeat=30, clock=clock) as progress:
        progress.step("lab-bookworm", "declared checks, kernel python3")
        clock.now += 10
        assert not progress.beat()  # 10 s of silence: too early
        clock.now += 30
        assert progress.beat()
        assert not progress.beat()  # the heartbeat itself broke the silence
        assert progress.done("lab-bookworm") == "[1/2]"
        clock.now += 60
        assert not progress.beat()  # nothing runs: nothing to say
    assert lines == ["[0/2] testing lab-bookworm: declared checks, kernel python3",
                     "... still testing lab-bookworm: declared checks, kernel python3 (40 s)"]


def test_any_line_of_the_run_counts_as_a_sign_of_life() -> None:
    lines: list[str] = []
    clock = Clock()
    with TestProgress(lines.append, total=1, heartbeat=30, clock=clock) as progress:
        progress.step("lab", "server and browser")
        clock.now += 25
        progress.say("passed base: passed earlier")
        clock.now += 25
        assert not progress.beat()
        clock.now += 5
        assert progress.beat() and lines[-1] == "... still testing lab: server and browser (55 s)"


def test_the_heartbeat_runs_by_itself() -> None:
    lines: list[str] = []
    with TestProgress(lines.append, total=1, heartbeat=0.05) as progress:
        progress.step("lab", "server")
        deadline = time.monotonic() + 5
        while not any(line.startswith("... still testing lab: server") for line in lines) and time.monotonic() < deadline:
            time.sleep(0.02)
    assert any(line.startswith("... still testing lab: server (") for line in lines), lines


def test_the_test_stage_says_each_suite_and_counts_the_images(stack, tmp_path, monkeypatch) -> None:
    from builder.cache.records import RecordStore
    from builder.check import run as stage_module
    from builder.check.options import CheckOptions
    from builder.check.result import CheckResult
    from builder.check.run import TestStage

    from .fakes import FakeEngine
    from .helpers import plan_of

    plan = plan_of(stack("""
    bases:
      debian: {pull: "debian:12"}
    images:
      a: {base: debian, push: false, fragments: [os]}
      b: {parent: a, push: false, fragments: [tool]}
    """))
    engine = FakeEngine()
    for node in plan.images():
        engine.add(node.local_ref, node.hash)

    def smoke(runner, node, options, on_suite=None):
        on_suite("declared checks")
        on_suite("server")
        return [CheckResult(node.name, "c", "os", "run", status="passed")]

    monkeypatch.setattr(stage_module, "smoke_image", smoke)
    monkeypatch.setattr(stage_module, "size_check", lambda engine, node: None)
    lines: list[str] = []
    stage = TestStage(engine, CheckOptions(), RecordStore(tmp_path / "records"), jobs=1)  # type: ignore[arg-type]
    stage.run(plan, plan.images(), lines.append)
    assert lines == ["[0/2] testing a: declared checks", "[0/2] testing a: server", "[1/2] passed a: 1/1 checks",
                     "[1/2] testing b: declared checks", "[1/2] testing b: server", "[2/2] passed b: 1/1 checks"]
