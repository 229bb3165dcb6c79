"""`stacks outdated`: every version a stack pins, against the newest release on its package index.

Pins come from two places: the `pip install name==version` and `npm install
name@version` commands of each image's rendered fragments (so a fragment's
`version` param, its default or an image's override, is checked as built),
and the entries of stacks.lock. Each package is asked once, whatever number
of images pins it. Asking is someone else's job (`Latest`, the
adapter builder/adapters/indexes.py in the CLI); an index that cannot be
reached is reported once and its packages are shown as unknown.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from builder.plan.lock import pins
from builder.plan.plan import Plan

#: (manager, package) -> newest release (None: the index has no such package); raises when the index is unreachable
Latest = Callable[[str, str], "str | None"]


@dataclass
class Pin:
    """One package at one pinned version, and who pins it there."""

    manager: str  # "pip" | "npm"
    package: str
    version: str
    sources: set[str] = field(default_factory=set)  # "fragment 'jupyterlab'", "stacks.lock (lab-bookworm)"
    latest: str | None = None
    state: str = "unknown"  # current | outdated | newer (a pre-release beyond the newest final) | missing | unknown

    def row(self) -> dict[str, Any]:
        return {"manager": self.manager, "package": self.package, "pinned": self.version, "latest": self.latest,
                "state": self.state, "sources": sorted(self.sources)}


@dataclass
class Outdated:
    pins: list[Pin]
    unreachable: dict[str, str]  # index name -> why

    @property
    def outdated(self) -> list[Pin]:
        return [p for p in self.pins if p.state == "outdated"]


def collect(plan: Plan, with_lock: bool = True) -> list[Pin]:
    """Every pin of the plan's fragments and (with `with_lock`) of its lock, one per manager, package and version."""
    found: dict[tuple[str, str, str], Pin] = {}

    def add(manager: str, package: str, version: str, source: str) -> None:
        key = (manager, package, version)
        found.setdefault(key, Pin(manager, package, version)).sources.add(source)

    for node in plan.images():
        for fragment, text in (node.rendered.sections.items() if node.rendered else ()):
            pinned = pins(text)
            for package, version in pinned.pip.items():
                add("pip", package, version, f"fragment '{fragment}'")
            for package, version in pinned.npm.items():
                add("npm", package, version, f"fragment '{fragment}'")
    if with_lock:
        for image, entry in plan.spec.lock.images.items():
            for package, version in entry.pip.items():
                add("pip", str(canonicalize_name(package)), version, f"stacks.lock ({image})")
            for package, version in entry.npm.items():
                add("npm", package, version, f"stacks.lock ({image})")
    return sorted(found.values(), key=lambda p: (p.manager, p.package, p.version))


def check(found: list[Pin], latest: Latest, unreachable_error: type[Exception], workers: int = 8) -> Outdated:
    """Ask `latest` once per package (in parallel) and fill each pin's state; an index that raises
    `unreachable_error` is asked no more, and its message is kept once."""
    unreachable: dict[str, str] = {}
    packages = sorted({(p.manager, p.package) for p in found})

    def ask(key: tuple[str, str]) -> tuple[tuple[str, str], str | None, bool]:
        manager, package = key
        if manager in unreachable:
            return key, None, False
        try:
            return key, latest(manager, package), True
        except unreachable_error as exc:
            unreachable.setdefault(manager, str(exc))
            return key, None, False

    with ThreadPoolExecutor(max_workers=workers) as pool:
        answers = {key: (version, answered) for key, version, answered in pool.map(ask, packages)}
    for pin in found:
        version, answered = answers.get((pin.manager, pin.package), (None, False))
        pin.latest = version
        pin.state = _state(pin.manager, pin.version, version) if answered else "unknown"
    return Outdated(found, unreachable)


def _state(manager: str, pinned: str, latest: str | None) -> str:
    if latest is None:
        return "missing"
    if pinned == latest:
        return "current"
    order = _order(manager, pinned, latest)
    if order is None:
        return "outdated"  # versions that do not compare: differing is what a maintainer needs to know
    return "outdated" if order < 0 else "current" if order == 0 else "newer"


def _order(manager: str, a: str, b: str) -> int | None:
    """-1, 0, 1 as `a` is older, equal or newer than `b`; None when they do not compare."""
    try:
        left: Any
        right: Any
        if manager == "pip":
            left, right = Version(a), Version(b)
        else:
            left, right = _semver(a), _semver(b)
    except (InvalidVersion, ValueError):
        return None
    return (left > right) - (left < right)


def _semver(text: str) -> tuple:
    """npm versions in order: 1.2.3 after 1.2.3-rc.1 (a pre-release sorts before its release)."""
    match = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+.*)?", text)
    if match is None:
        raise ValueError(text)
    return (int(match[1]), int(match[2]), int(match[3]), 0 if match[4] else 1, match[4] or "")
