"""Problems with user input, each tied to a file, line and column.

Every stage collects `Problem`s instead of stopping at the first one, so a
user fixing a spec sees all of its mistakes in one run. `SpecError` carries
them to the CLI, which prints them and exits with status 2 instead of a
traceback.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable


@dataclass(frozen=True)
class Location:
    """A place in a source file; line and column are 1-based."""

    file: Path
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        text = str(_display_path(self.file))
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        return text


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, and where."""

    message: str
    location: Location | None = None
    hint: str | None = None
    #: "error" fails the run; "warning" is printed and the run goes on (a rule that does nothing, say)
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        text = f"{where}{self.severity}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class SpecError(Exception):
    """Raised with every problem found in one pass over the input."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(set(problems), key=_problem_order)
        super().__init__("\n".join(str(p) for p in self.problems))


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest known word, or None when nothing is close."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def raise_if_any(problems: list[Problem]) -> None:
    """Raise the errors among `problems` (warnings alone never fail a run)."""
    if any(p.severity == "error" for p in problems):
        raise SpecError(problems)


def warning(message: str, location: Location | None = None, hint: str | None = None) -> Problem:
    return Problem(message, location, hint, severity="warning")


def _problem_order(problem: Problem) -> tuple:
    loc = problem.location
    if loc is None:
        return ("", 0, 0, problem.message)
    return (str(loc.file), loc.line or 0, loc.column or 0, problem.message)


def _display_path(path: Path) -> Path:
    """Paths relative to the working directory read better in terminals and CI logs."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except (ValueError, OSError, RuntimeError):  # outside the working directory, or a symlink loop
        return path
