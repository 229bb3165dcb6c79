"""The one Dockerfile reader: instructions with continuation lines joined, as Docker parses them.

Rendering (ARGs after each FROM, the CA secret mounted into each RUN), the
plan-time context check (a fragment's FROM, COPY/ADD sources and the template
line they came from), lint (downloads, the inherited SHELL, hadolint's view)
and bake (the FROM graph) all read Dockerfiles through this module, so a
continued line or a comment inside one is understood the same way everywhere.
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

_KEYWORD = re.compile(r"^\s*([A-Za-z]+)\b")
_FROM = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case; "" for a line Docker would reject
    first: int  # 0-based index of its first line
    last: int  # 0-based index of its last line
    text: str  # continuation lines joined, comment lines inside dropped (as Docker does)
    comments: tuple[str, ...] = ()  # the comment lines right above it

    @property
    def arguments(self) -> str:
        """What follows the keyword (flags included), without the surrounding white space."""
        parts = self.text.strip().split(None, 1)
        return parts[1].strip() if len(parts) > 1 else ""


def _is_comment_or_blank(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("#")


def instructions(text: str) -> list[Instruction]:
    """Every instruction of a Dockerfile, in order."""
    found: list[Instruction] = []
    lines = text.split("\n")
    comments: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if _is_comment_or_blank(line):
            comments = comments + [line] if line.strip() else []
            index += 1
            continue
        first, parts = index, []
        while index < len(lines):
            current = lines[index]
            index += 1
            if index - 1 > first and _is_comment_or_blank(current):
                continue  # comment and empty lines inside a continued instruction are dropped
            parts.append(current.rstrip().removesuffix("\\"))
            if not current.rstrip().endswith("\\"):
                break
        match = _KEYWORD.match(line)
        found.append(Instruction(match[1].upper() if match else "", first, index - 1, " ".join(parts), tuple(comments)))
        comments = []
    return found


def froms(text: str) -> list[tuple[str, str | None]]:
    """(reference, stage name) of each FROM, in order."""
    found = []
    for ins in instructions(text):
        match = _FROM.match(" ".join(ins.text.split())) if ins.keyword == "FROM" else None
        if match:
            found.append((match[1], match[2]))
    return found


def copy_sources(ins: Instruction) -> tuple[list[str], list[str]]:
    """Flags and source paths of a COPY or ADD (shell or JSON form), without the destination.

    Sources are relative to the build context: leading `.` and `/` characters are
    dropped (the context holds only `fragments/...`), and the context itself is `.`.
    """
    arguments = ins.arguments
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
