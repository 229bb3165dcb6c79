"""Plan-time checks of a fragment's rendered body against its build context.

A `COPY` of a file the context does not hold fails the build minutes in; a
`FROM` inside a fragment body silently starts a new image and drops every
layer before it. Both are errors at the template line, found by `stacks
plan` before anything runs.
"""
from __future__ import annotations

import fnmatch
import functools
import json
import re
import shlex
from pathlib import Path

from builder.errors import Location, Problem, SpecError
from builder.spec.sources import read_text

_INSTRUCTION = re.compile(r"^\s*(FROM|COPY|ADD)\s+(.*)$", re.IGNORECASE)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def body_problems(body_path: Path, body: str, context: frozenset[str]) -> list[Problem]:
    """Problems of one rendered fragment body; `context` holds the image's context paths."""
    return list(_body_problems(body_path, body, context))


@functools.lru_cache(maxsize=4096)
def _body_problems(body_path: Path, body: str, context: frozenset[str]) -> tuple[Problem, ...]:
    problems = []
    for keyword, arguments in _instructions(body):
        if keyword == "FROM":
            problems.append(Problem(
                "a fragment body may not contain FROM: it would start a new image and drop the layers before it",
                Location(body_path, _template_line(body_path, "FROM", "")),
                "put build stages in stage.Dockerfile.j2 and COPY --from them",
            ))
            continue
        flags, sources = _copy_sources(arguments)
        if any(flag.startswith("--from") for flag in flags):
            continue
        for source in sources:
            if (keyword == "ADD" and _URL.match(source)) or "$" in source:
                continue
            if not _in_context(source, context):
                problems.append(Problem(
                    f"{keyword} of '{source}', which is not in the build context",
                    Location(body_path, _template_line(body_path, keyword, source.rsplit("/", 1)[-1])),
                    "the context holds the files of the image's fragments: {{ here }}/FILE names one of this fragment's",
                ))
    return tuple(problems)


def _instructions(body: str) -> list[tuple[str, str]]:
    """(keyword, arguments) of each FROM/COPY/ADD, continuation lines joined."""
    found = []
    lines = body.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if line.lstrip().startswith("#"):
            continue
        parts = [line.rstrip().removesuffix("\\")]
        while line.rstrip().endswith("\\") and index < len(lines):
            line = lines[index]
            index += 1
            if line.strip() and not line.lstrip().startswith("#"):
                parts.append(line.rstrip().removesuffix("\\"))
        match = _INSTRUCTION.match(" ".join(parts))
        if match:
            found.append((match[1].upper(), match[2].strip()))
    return found


def _copy_sources(arguments: str) -> tuple[list[str], list[str]]:
    """Flags and source paths of COPY/ADD (shell or JSON form); the last path is the destination."""
    try:
        words = shlex.split(arguments, posix=True)
    except ValueError:
        words = arguments.split()
    flags = [w for w in words if w.startswith("--")]
    rest = [w for w in words if not w.startswith("--")]
    if rest and rest[0].startswith("["):
        try:
            rest = json.loads(arguments[arguments.index("["):])
        except (ValueError, TypeError):
            return flags, []
        if not isinstance(rest, list) or not all(isinstance(r, str) for r in rest):
            return flags, []
    return flags, [r.lstrip("./") or "." for r in rest[:-1]]


def _in_context(source: str, context: frozenset[str]) -> bool:
    source = source.rstrip("/")
    if source in ("", ".") or source in context:
        return True
    if any(path.startswith(source + "/") for path in context):
        return True  # a folder
    return any(c in source for c in "*?[") and any(fnmatch.fnmatchcase(path, source) for path in context)


def _template_line(path: Path, keyword: str, hint: str) -> int | None:
    """The template line of an instruction: the first with the keyword and the hint text."""
    try:
        lines = read_text(path).split("\n")
    except SpecError:
        return None
    candidates = [i for i, line in enumerate(lines, 1) if re.match(rf"\s*{keyword}\b", line, re.IGNORECASE)]
    for number in candidates:
        if hint and hint in lines[number - 1]:
            return number
    return candidates[0] if candidates else None
