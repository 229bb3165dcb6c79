"""What changed between two images, package by package: added, removed, upgraded, downgraded.

Versions are compared the way each ecosystem orders them: Debian's rules
(python-debian) for Debian packages, PEP 440 (packaging) for Python ones, and
for the rest (npm, conda, R) PEP 440 where the version parses, else a
numeric-aware comparison of its parts. A version that changed but compares
equal (1.0 and 1.0.0) counts as upgraded: it is a change all the same.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from debian.debian_support import Version as DebianVersion
from packaging.version import InvalidVersion, Version

from builder.inventory.manifest import ECOSYSTEMS, TITLES, Package

CHANGES = ("added", "removed", "upgraded", "downgraded")


@dataclass(frozen=True)
class Change:
    ecosystem: str
    name: str
    environment: str
    before: str | None
    after: str | None


@dataclass
class Diff:
    """Changes per ecosystem (`ECOSYSTEMS` plus "version": the fragments' version answers)."""

    before: str
    after: str
    changes: dict[str, dict[str, list[Change]]] = field(default_factory=dict)  # ecosystem -> kind -> changes

    @property
    def empty(self) -> bool:
        return not any(kinds[k] for kinds in self.changes.values() for k in CHANGES)

    def to_dict(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after,
                "ecosystems": {eco: {kind: [{"name": c.name, "environment": c.environment, "before": c.before,
                                             "after": c.after} for c in changes] for kind, changes in kinds.items()}
                               for eco, kinds in self.changes.items()}}


def compare(ecosystem: str, a: str, b: str) -> int:
    """-1, 0 or 1 as version `a` is older, equal or newer than `b` in `ecosystem`."""
    if ecosystem == "deb":
        return _sign(DebianVersion(a), DebianVersion(b))
    try:
        return _sign(Version(a), Version(b))
    except InvalidVersion:
        return _sign(_parts(a), _parts(b))


def diff(before: str, after: str, old: list[Package], new: list[Package],
         old_versions: dict[str, str] | None = None, new_versions: dict[str, str] | None = None) -> Diff:
    result = Diff(before, after)
    olds, news = {p.key: p for p in old}, {p.key: p for p in new}
    for key in sorted(olds.keys() | news.keys(), key=lambda k: (_rank(k[0]), k[1], k[2])):
        a, b = olds.get(key), news.get(key)
        kind = _kind(key[0], a.version if a else None, b.version if b else None)
        if kind is not None:
            shown = (b or a)
            assert shown is not None
            _add(result, key[0], kind, Change(key[0], shown.name, key[1], a.version if a else None, b.version if b else None))
    old_v, new_v = old_versions or {}, new_versions or {}
    for name in sorted(old_v.keys() | new_v.keys()):
        kind = _kind("version", old_v.get(name), new_v.get(name))
        if kind is not None:
            _add(result, "version", kind, Change("version", name, "", old_v.get(name), new_v.get(name)))
    return result


def markdown(result: Diff) -> str:
    """Release notes: a section per ecosystem, a table per kind of change."""
    lines = [f"# Changes from {result.before} to {result.after}", ""]
    if result.empty:
        return "\n".join([*lines, "No package changed.", ""])
    totals = ", ".join(f"{sum(len(k[c]) for k in result.changes.values())} {c}" for c in CHANGES)
    lines += [totals, ""]
    for ecosystem, kinds in result.changes.items():
        lines += [f"## {TITLES.get(ecosystem, 'Versions')}", ""]
        for kind in CHANGES:
            if not kinds[kind]:
                continue
            lines += [f"### {kind.capitalize()} ({len(kinds[kind])})", "", "| name | before | after |", "|---|---|---|"]
            for change in kinds[kind]:
                where = f" ({change.environment})" if change.environment else ""
                lines.append(f"| {change.name}{where} | {change.before or '-'} | {change.after or '-'} |")
            lines.append("")
    return "\n".join(lines)


def _kind(ecosystem: str, a: str | None, b: str | None) -> str | None:
    if a is None:
        return "added" if b is not None else None
    if b is None:
        return "removed"
    if a == b:
        return None
    return "downgraded" if compare(ecosystem, a, b) > 0 else "upgraded"


def _add(result: Diff, ecosystem: str, kind: str, change: Change) -> None:
    result.changes.setdefault(ecosystem, {k: [] for k in CHANGES})[kind].append(change)


def _rank(ecosystem: str) -> int:
    return ECOSYSTEMS.index(ecosystem) if ecosystem in ECOSYSTEMS else len(ECOSYSTEMS)


def _parts(version: str) -> list[tuple[int, int | str]]:
    """'1.10-2a' -> comparable parts: numbers as numbers (10 > 9), letters as text."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|[A-Za-z]+", version)]


def _sign(a: Any, b: Any) -> int:
    return (a > b) - (a < b)
