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
