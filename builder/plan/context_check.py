"""Plan-time checks of a fragment's rendered body against its build context.

A `COPY` of a file the context does not hold fails the build minutes in; a
`FROM` inside a fragment body silently starts a new image and drops every
layer before it. Both are errors at the template line, found by `stacks
plan` before anything runs.
"""
from __future__ import annotations

import fnmatch
import functools
import re
from pathlib import Path

from builder.errors import Location, Problem, SpecError
from builder.plan.dockerfile import copy_sources, instructions
from builder.specification.sources import read_text

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def body_problems(body_path: Path, body: str, context: frozenset[str]) -> list[Problem]:
    """Problems of one rendered fragment body; `context` holds the image's context paths."""
    return list(_body_problems(body_path, body, context))


@functools.lru_cache(maxsize=4096)
def _body_problems(body_path: Path, body: str, context: frozenset[str]) -> tuple[Problem, ...]:
    problems = []
    for ins in instructions(body):
        keyword = ins.keyword
        if keyword not in ("FROM", "COPY", "ADD"):
            continue
        if keyword == "FROM":
            problems.append(Problem(
                "a fragment body may not contain FROM: it would start a new image and drop the layers before it",
                Location(body_path, _template_line(body_path, "FROM", "")),
                "put build stages in stage.Dockerfile.j2 and COPY --from them",
            ))
            continue
        flags, sources = copy_sources(ins)
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


def _in_context(source: str, context: frozenset[str]) -> bool:
    source = source.rstrip("/")
    if source in ("", ".") or source in context:
        return True
    if any(path.startswith(source + "/") for path in context):
        return True  # a folder
    return any(c in source for c in "*?[") and any(fnmatch.fnmatchcase(path, source) for path in context)


def _template_line(path: Path, keyword: str, hint: str) -> int | None:
    """The template line of an instruction: the first line of the first one with the keyword and the hint text.

    The template is read with the same reader as the rendered body, so a
    continuation line that happens to start with the keyword is not taken
    for an instruction.
    """
    try:
        template = read_text(path)
    except SpecError:
        return None
    candidates = [ins for ins in instructions(template) if ins.keyword == keyword]
    for ins in candidates:
        if hint and hint in ins.text:
            return ins.first + 1
    return candidates[0].first + 1 if candidates else None
