"""`stacks.lock`: the resolved versions of the Python and npm packages no fragment pins, per image.

Fragments pin what they install on purpose (`jupyterlab=={{ version }}`);
everything those packages pull in floats, so a rebuild next month would be a
different image. `stacks lock` reads what a built image holds and writes it
here, next to `stacks.yaml`; builds then install with it as constraints
(builder/plan/lock.py), and an image's entry is part of its content hash.

The file is YAML a person can read and review in a pull request:

    version: 1
    images:
      lab-bookworm:
        resolved: "2026-12-03T05:00:00Z"   # when the image was built; npm installs only what was out then
        pip: {anyio: "4.11.0", ...}
        npm: {}

Versions are strings (YAML would read an unquoted 1.10 as the number 1.1).
A file edited into nonsense is refused with `file:line:column` problems, as
stacks.yaml is.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from builder.errors import Location, Problem, SpecError
from builder.specification.yamlsrc import MarkedDict, load_mapping, locate

LOCK_NAME = "stacks.lock"
FORMAT = 1
#: PEP 508 project names, and npm package names (scoped or not)
PIP_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
NPM_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9_][a-z0-9._~-]*$")
NPM_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?$")
MOMENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
_ENTRY_KEYS = ("resolved", "pip", "npm")
_FIX = "fix it, or remove the entry (or the file) and run `stacks lock` to write it again"
_HEADER = ("# stacks.lock: the resolved versions of the Python and npm packages no fragment pins, per image.\n"
           "# Written by `stacks lock`; refreshed by `stacks lock --update [IMAGE]`. Builds install with it as\n"
           "# constraints, and an image's entry is part of its content hash (docs/lock.md).\n")


@dataclass(frozen=True)
class LockEntry:
    """One image's resolved packages: pip project -> version, npm package -> version, and when they were resolved."""

    pip: Mapping[str, str] = field(default_factory=dict)
    npm: Mapping[str, str] = field(default_factory=dict)
    resolved: str = ""  # RFC 3339 UTC: the build time of the image the versions were read from

    def document(self) -> dict[str, Any]:
        return {"resolved": self.resolved, "pip": dict(sorted(self.pip.items())), "npm": dict(sorted(self.npm.items()))}


@dataclass(frozen=True)
class Lock:
    """The lock of one stacks file; `images` is empty when there is no lock file."""

    path: Path
    images: Mapping[str, LockEntry] = field(default_factory=dict)
    source: MarkedDict | None = None

    def where(self, *path: Any) -> Location:
        return locate(self.source, path, self.path) if self.source is not None else Location(self.path)


def lock_path(spec_path: Path) -> Path:
    """The lock of a stacks file: `stacks.lock` in the same folder."""
    return Path(spec_path).parent / LOCK_NAME


def load_lock(path: Path) -> tuple[Lock, list[Problem]]:
    """The lock at `path` (empty when the file does not exist) and its problems; entries with problems are left out."""
    if not path.is_file():
        return Lock(path), []
    try:
        source = load_mapping(path)
    except SpecError as exc:
        return Lock(path), list(exc.problems)
    problems: list[Problem] = []
    where = _Where(source, path)
    unknown = [key for key in source if key not in ("version", "images")]
    problems += [Problem(f"unknown key '{key}' in the lock", where.key(key), "a lock has 'version' and 'images'")
                 for key in unknown]
    if source.get("version") != FORMAT:
        problems.append(Problem(f"lock format version must be {FORMAT}, not {source.get('version')!r}", where("version"),
                                "write the lock again with `stacks lock --update`"))
    images = source.get("images", {})
    if images is None:
        images = {}
    if not isinstance(images, dict):
        problems.append(Problem("'images' must map image names to their resolved packages", where("images")))
        images = {}
    entries = {}
    for name, raw in images.items():
        entry, found = _entry(str(name), raw, where)
        problems += found
        if entry is not None and not found:
            entries[str(name)] = entry
    return Lock(path, entries, source), [replace(p, hint=p.hint or _FIX) for p in problems]


def lock_text(entries: Mapping[str, LockEntry]) -> str:
    """The lock file for `entries`: images and packages sorted, versions quoted, one package a line."""
    lines = [_HEADER, f"version: {FORMAT}", "images:" if entries else "images: {}"]
    for name in sorted(entries):
        entry = entries[name]
        lines.append(f"  {_quote(name)}:")
        lines.append(f"    resolved: {_quote(entry.resolved)}")
        for manager in ("pip", "npm"):
            packages: Mapping[str, str] = getattr(entry, manager)
            lines.append(f"    {manager}:" if packages else f"    {manager}: {{}}")
            lines += [f"      {_quote(package)}: {json.dumps(version)}" for package, version in sorted(packages.items())]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """A key or value as YAML reads it back unchanged: plain when it is safe, else JSON-quoted."""
    return text if re.fullmatch(r"[A-Za-z_][A-Za-z0-9._-]*", text) and text.lower() not in _YAML_WORDS else json.dumps(text)


_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


@dataclass(frozen=True)
class _Where:
    source: MarkedDict
    path: Path

    def __call__(self, *keys: Any) -> Location:
        return locate(self.source, keys, self.path)

    def key(self, *keys: Any) -> Location:
        return locate(self.source, keys, self.path, key=True)


def _entry(name: str, raw: Any, where: _Where) -> tuple[LockEntry | None, list[Problem]]:
    at = ("images", name)
    if not isinstance(raw, dict):
        return None, [Problem(f"image '{name}': expected a mapping of resolved, pip and npm", where(*at))]
    problems = [Problem(f"image '{name}': unknown key '{key}'", where.key(*at, key), "an entry has resolved, pip and npm")
                for key in raw if key not in _ENTRY_KEYS]
    resolved = raw.get("resolved", "")
    if not isinstance(resolved, str) or not MOMENT.match(resolved):
        problems.append(Problem(f"image '{name}': resolved must be a UTC time such as \"2026-12-03T05:00:00Z\", "
                                f"not {resolved!r}", where(*at, "resolved")))
    pip = _packages(name, "pip", raw.get("pip"), where, _pip_problem)
    npm = _packages(name, "npm", raw.get("npm"), where, _npm_problem)
    problems += pip[1] + npm[1]
    return LockEntry(pip[0], npm[0], resolved if isinstance(resolved, str) else ""), problems


def _packages(image: str, manager: str, raw: Any, where: _Where, check) -> tuple[dict[str, str], list[Problem]]:
    at = ("images", image, manager)
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [Problem(f"image '{image}': {manager} must map package names to versions", where(*at))]
    packages, problems = {}, []
    for package, version in raw.items():
        why = check(str(package), version)
        if why:
            problems.append(Problem(f"image '{image}': {manager} package '{package}': {why}", where(*at, package)))
        else:
            packages[str(package)] = version
    return packages, problems


def _pip_problem(name: str, version: Any) -> str | None:
    if not PIP_NAME.match(name):
        return "not a Python project name"
    if not isinstance(version, str):
        return f"the version must be a quoted string; YAML read this one as the {type(version).__name__} {version!r}"
    try:
        Version(version)
    except InvalidVersion:
        return f"'{version}' is not a Python version (PEP 440)"
    return None


def _npm_problem(name: str, version: Any) -> str | None:
    if not NPM_NAME.match(name):
        return "not an npm package name"
    if not isinstance(version, str):
        return f"the version must be a quoted string; YAML read this one as the {type(version).__name__} {version!r}"
    if not NPM_VERSION.match(version):
        return f"'{version}' is not an exact npm version (major.minor.patch)"
    return None

