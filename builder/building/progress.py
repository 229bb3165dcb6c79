"""Progress lines on the terminal: which images start, finish, fail or are skipped.

Plain lines work everywhere (CI logs included); a heartbeat names the
images still building every 30 seconds so a long build never looks hung.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from builder.building.results import ImageResult
from builder.plan.plan import Node
from builder.plan.sizes import human_size


class Progress:
    def __init__(self, total: int, stream: TextIO = sys.stderr, heartbeat: float = 30.0):
        self.total = total
        self.stream = stream
        self.finished = 0
        self.running: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, args=(heartbeat,), daemon=True)
        self._heartbeat.start()

    def _say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def started(self, node: Node) -> None:
        with self._lock:
            self.running[node.name] = time.monotonic()

    def building(self, node: Node, reasons: list[str]) -> None:
        verb = "pulling" if node.kind == "pull" else "bootstrapping" if node.kind == "bootstrap" else "building"
        self._say(f"[{self.finished}/{self.total}] {verb} {node.name} ({'; '.join(reasons)})")

    def done(self, result: ImageResult) -> None:
        with self._lock:
            self.running.pop(result.name, None)
            self.finished += 1
            count = f"[{self.finished}/{self.total}]"
        if result.status in ("built", "cached"):
            self._say(f"{count} {result.status} {result.name} in {result.seconds:.1f}s ({human_size(result.size)})")
        elif result.status == "failed":
            where = f" at {result.step}" if result.step else ""
            self._say(f"{count} FAILED {result.name}{where}: {result.error} (log: {result.log})")
        else:
            self._say(f"{count} {result.status} {result.name}: {result.error}")

    def close(self) -> None:
        self._stop.set()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            with self._lock:
                now = time.monotonic()
                busy = ", ".join(f"{n} ({now - t:.0f}s)" for n, t in sorted(self.running.items()))
            if busy:
                self._say(f"... still working: {busy}")
