"""One smoke-test result: what was checked in which image, what was expected, what came back."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

CheckStatus = Literal["passed", "failed", "not run"]
STATUSES: tuple[CheckStatus, ...] = ("passed", "failed", "not run")


@dataclass
class CheckResult:
    image: str
    name: str
    fragment: str  # the fragment that declares (or causes) the check
    kind: str  # run | file | account | package | env | label | kernel | server | start | browser
    status: CheckStatus = "failed"
    seconds: float = 0.0
    expected: str = ""
    got: str = ""
    artifact: str | None = None  # a file the check produced (a screenshot), relative to the report folder

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def verdict(self, ok: bool, got: str) -> CheckResult:
        self.status, self.got = ("passed" if ok else "failed"), got
        return self

    @contextmanager
    def timed(self) -> Iterator[CheckResult]:
        """Times the block; an exception inside fails the check with its message instead of ending the run."""
        started = time.monotonic()
        try:
            yield self
        except Exception as exc:  # noqa: BLE001 - a crashed check is a failed check, reported with why
            self.status, self.got = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            self.seconds = round(time.monotonic() - started, 2)
