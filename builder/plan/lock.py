"""What a lock does to a build: the pins fragments write, the lock entry of an image, and its constraints.

A fragment pins what it installs (`pip install "jupyterlab=={{ version }}"`,
`npm install -g "tslab@{{ version }}"`); those pins are read back out of the
rendered Dockerfiles (`pins`), so the lock never holds a package a fragment
pins: bumping a pin then never collides with the lock. Everything else the
image's Python environment and global npm tree hold is locked.

A locked image's Dockerfile gets, right after its `FROM`, the constraints
file (COPY into the image, where it also documents what was locked) and two
build arguments: `PIP_CONSTRAINT` makes every `pip install` of the build
obey the constraints, `NPM_CONFIG_BEFORE` makes npm pick only versions
published before the entry was resolved. Build arguments end with the build:
a user's `pip install` in the running container is not constrained, and a
child image is constrained only by its own entry.
"""
from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Iterable

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from builder.plan.dockerfile import instructions
from builder.plan.hashing import digest
from builder.plan.render import Rendered
from builder.specification.lock import LockEntry, NPM_NAME, NPM_VERSION, PIP_NAME

CONSTRAINTS_FILE = "stacks-lock/constraints.txt"
CONSTRAINTS_TARGET = "/usr/local/share/stacks/constraints.txt"
#: npm packages that come with npm itself (the node fragment installs npm from a checked tarball)
NPM_OWN = frozenset({"npm", "corepack"})
_PIP_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s,;=]+)$")
_NPM_PIN = re.compile(r"^((?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9_][a-z0-9._~-]*)@(\d[0-9A-Za-z.+-]*)$")
_COMMANDS = re.compile(r"&&|\|\||;|\|")


@dataclass(frozen=True)
class Pins:
    """Packages a Dockerfile installs at an exact version: pip (canonical name -> version) and npm."""

    pip: dict[str, str]
    npm: dict[str, str]

    def __or__(self, other: "Pins") -> "Pins":
        return Pins({**self.pip, **other.pip}, {**self.npm, **other.npm})


@functools.lru_cache(maxsize=4096)
def pins(dockerfile: str) -> Pins:
    """The exact versions `pip install` and `npm install` commands of a Dockerfile name."""
    pip: dict[str, str] = {}
    npm: dict[str, str] = {}
    for ins in instructions(dockerfile):
        if ins.keyword != "RUN":
            continue
        for command in _COMMANDS.split(ins.text):
            words = _words(command)
            if _runs(words, "pip", "install"):
                for word in words:
                    match = _PIP_PIN.match(word)
                    if match:
                        pip[canonicalize_name(match[1])] = match[2]
            elif _runs(words, "npm", "install") or _runs(words, "npm", "i"):
                for word in words:
                    match = _NPM_PIN.match(word)
                    if match:
                        npm[match[1]] = match[2]
    return Pins(pip, npm)


def chain_pins(dockerfiles: Iterable[str]) -> Pins:
    """The pins of an image and its ancestors (the environment a child inherits was pinned up the chain)."""
    found = Pins({}, {})
    for text in dockerfiles:
        found = found | pins(text)
    return found


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # an unbalanced quote in a continued command: plain words still name the packages
        return [w.strip("'\"") for w in command.split()]


def _runs(words: list[str], tool: str, action: str) -> bool:
    """Whether `words` run `tool action` (pip, pip3, python -m pip, /opt/venv/bin/pip; npm)."""
    for index, word in enumerate(words[:-1]):
        name = word.rsplit("/", 1)[-1]
        if (name == tool or (tool == "pip" and re.fullmatch(r"pip3(\.\d+)?", name))) and action in words[index + 1:]:
            return True
    return False


def entry_from(pip_list: list[dict[str, Any]], npm_tree: dict[str, Any], pinned: Pins, built: str) -> LockEntry:
    """A lock entry from what an image holds (`pip list --format=json`, `npm ls -g --json --all`), without
    what the chain pins; `built` is the image's creation time (ISO 8601)."""
    pip: dict[str, str] = {}
    for row in pip_list:
        name, version = str(row.get("name", "")), str(row.get("version", ""))
        if PIP_NAME.match(name) and _python_version(version) and canonicalize_name(name) not in pinned.pip:
            pip[canonicalize_name(name)] = version
    npm: dict[str, str] = {}
    for name, version in _npm_packages(npm_tree):
        if name in pinned.npm or not NPM_NAME.match(name) or not NPM_VERSION.match(version):
            continue
        if name not in npm or _npm_key(version) > _npm_key(npm[name]):
            npm[name] = version  # one name at several places of the tree: the newest
    return LockEntry(pip, npm, _utc(built))


def _python_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def _npm_packages(tree: dict[str, Any]) -> Iterable[tuple[str, str]]:
    """(name, version) of every package below the global root, npm's own packages left out."""
    stack = [(name, node) for name, node in (tree.get("dependencies") or {}).items() if name not in NPM_OWN]
    while stack:
        name, node = stack.pop()
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("version"), str):
            yield name, node["version"]
        stack += list((node.get("dependencies") or {}).items())


def _npm_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("-")[0])[:3])


def _utc(moment: str) -> str:
    """An engine's creation time (2026-12-03T05:00:00.123456789Z) as the lock writes it: UTC to the second."""
    try:
        parsed = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", moment).replace("Z", "+00:00"))
    except ValueError:
        parsed = datetime.now(timezone.utc)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def constraints(entry: LockEntry, pinned: Pins) -> str:
    """The pip constraints file of an entry: `name==version` a line, without what the chain pins now
    (a pin added to a fragment after locking wins over the lock)."""
    lines = [f"{name}=={version}" for name, version in sorted(entry.pip.items())
             if canonicalize_name(name) not in pinned.pip]
    return "".join(line + "\n" for line in lines)


def apply_lock(rendered: Rendered, entry: LockEntry, pinned: Pins) -> tuple[Rendered, str]:
    """The rendered image installing with `entry` as constraints, and the digest of what the lock adds (hashed)."""
    text = constraints(entry, pinned)
    npm_before = entry.resolved if entry.npm else ""
    lines = [f"# --- {CONSTRAINTS_FILE.split('/')[0]}: stacks.lock pins what the fragments leave open ---"]
    if text:
        lines += [f"COPY {CONSTRAINTS_FILE} {CONSTRAINTS_TARGET}", f"ARG PIP_CONSTRAINT={CONSTRAINTS_TARGET}"]
    if npm_before:
        lines.append(f"ARG NPM_CONFIG_BEFORE={npm_before}")
    if len(lines) == 1:
        return rendered, ""
    dockerfile = _after_main_from(rendered.dockerfile, lines)
    files = dict(rendered.files)
    if text:
        files[CONSTRAINTS_FILE] = (text.encode(), 0o644)
    return replace(rendered, dockerfile=dockerfile, files=dict(sorted(files.items()))), digest(text + npm_before)


def _after_main_from(dockerfile: str, added: list[str]) -> str:
    """`added` after the last FROM (the image's own stage) and the build arguments declared right after it."""
    found = [ins for ins in instructions(dockerfile) if ins.keyword == "FROM"]
    lines = dockerfile.split("\n")
    at = found[-1].last + 1 if found else 0
    while at < len(lines) and lines[at].startswith("ARG "):
        at += 1
    return "\n".join(lines[:at] + added + lines[at:])
