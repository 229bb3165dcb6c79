"""Progress of `stacks test`: what runs on which image, and a heartbeat while nothing is said.

A server check can take minutes (a JupyterLab start, a browser, a slow
kernel); without a line the run looks hung in a CI log. Each suite that
starts says so with a counter, as `stacks build` does; after `heartbeat`
seconds without any line, one line names what is still running and for how
long.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

Say = Callable[[str], None]


class TestProgress:
    """`[done/total] testing IMAGE: WHAT` lines and a heartbeat of silence, for images tested side by side."""

    __test__ = False

    def __init__(self, say: Say, total: int = 0, heartbeat: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.finished = total, 0
        self._say, self._clock, self._every = say, clock, heartbeat
        self._running: dict[str, tuple[str, float]] = {}  # image -> (what, since)
        self._last = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()

    def say(self, line: str) -> None:
        """Any line of the run: it counts as a sign of life."""
        with self._lock:
            self._last = self._clock()
            self._say(line)

    def step(self, image: str, what: str) -> None:
        """`image` starts `what` (a suite of checks)."""
        with self._lock:
            self._running[image] = (what, self._clock())
            count = f"[{self.finished}/{self.total}]"
        self.say(f"{count} testing {image}: {what}")

    def done(self, image: str) -> str:
        """`image` has run all its suites; the counter to print with its verdict, e.g. "[2/5]"."""
        with self._lock:
            self._running.pop(image, None)
            self.finished += 1
            return f"[{self.finished}/{self.total}]"

    def close(self) -> None:
        self._stop.set()
        self._beat.join(timeout=1)

    def __enter__(self) -> TestProgress:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def beat(self) -> bool:
        """Say what still runs if nothing was said for `heartbeat` seconds; True when it said so."""
        with self._lock:
            now = self._clock()
            if now - self._last < self._every or not self._running:
                return False
            busy = "; ".join(f"{image}: {what} ({now - since:.0f} s)" for image, (what, since) in sorted(self._running.items()))
        self.say(f"... still testing {busy}")
        return True

    def _heartbeat(self) -> None:
        while not self._stop.wait(min(1.0, self._every)):
            self.beat()
