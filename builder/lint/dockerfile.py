"""Reading rendered Dockerfiles for `stacks lint`: instructions, where each line came from, what hadolint sees.

A rendered Dockerfile is the concatenation of fragment templates, so a
finding on its line 115 helps nobody; `SourceMap` maps it back to the
template line a contributor edits. `lint_view` is the copy hadolint reads:
an image inherits its parent's SHELL, and hadolint would otherwise assume
/bin/sh for every image whose parent set bash (it also forgets a SHELL after
an ARG or ENV), so the copy states the effective SHELL before each RUN.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from collections.abc import Iterable

from builder.errors import Location
from builder.plan.dockerfile import Instruction, instructions
from builder.specification.fragments import BODY_FILE, Fragment
from builder.plan.plan import Node, Plan

PRAGMA = re.compile(r"#\s*stacks-lint\s+ignore=([\w,-]+)")
_HEADER = re.compile(r"^# --- fragment: (\S+)")
_DOWNLOAD = re.compile(r"\b(curl|wget)\b|urllib\.request|urlopen\(|Invoke-WebRequest")
_PIPE_TO_SHELL = re.compile(
    r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+(-\S+\s+)*)?(env\s+\S+\s+)*((ba|da|z|k)?sh|python\d*(\.\d+)?|perl|ruby|node)\b")
_CHECKSUM = re.compile(r"\bsha(1|224|256|384|512)sum\b[^;&]*\s(-c|--check)\b|\bgpg\b[^;&]*--verify|\bcosign\s+verify|--checksum=")
_EXECUTES = re.compile(
    r"(^|[;&|(]\s*|\bthen\s+|\bdo\s+)(ba|da|z)?sh\s+(?!-c\b)[\w./${}\"'-]+"
    r"|\bchmod\s+(\S+\s+)*[ugoa]*\+x\b|\bchmod\s+(\S+\s+)*[0-7]*[1357]\b"
    r"|\bpython\d*(\.\d+)?\s+(?!-)[\w./${}\"'-]+\.py\b"
    r"|(^|[;&|]\s*)\./\S+")


def pragmas(ins: Instruction) -> frozenset[str]:
    """Rules a `# stacks-lint ignore=` comment right above an instruction turns off."""
    return frozenset(rule for c in ins.comments for m in PRAGMA.finditer(c) for rule in m[1].split(","))


def download_findings(text: str) -> list[tuple[int, str, str]]:
    """(line index, message, hint) for downloads that run unchecked code."""
    found = []
    for ins in instructions(text):
        if ins.keyword != "RUN" or "download" in pragmas(ins) or not _DOWNLOAD.search(ins.text):
            continue
        if _PIPE_TO_SHELL.search(ins.text):
            found.append((ins.first, "a download is piped into an interpreter: nothing checks what runs",
                          "download to a file, check it (echo \"<sha256>  FILE\" | sha256sum -c -), then run it"))
        elif _EXECUTES.search(ins.text) and not _CHECKSUM.search(ins.text):
            found.append((ins.first, "this RUN downloads a file and runs code without checking a checksum",
                          "check the download (echo \"<sha256>  FILE\" | sha256sum -c -) in the same RUN, "
                          "or say why not with '# stacks-lint ignore=download' above it"))
    return found


class SourceMap:
    """Rendered Dockerfile line -> the fragment template line that produced it.

    Each fragment's section starts with a `# --- fragment: NAME` header; inside
    it, rendered lines are aligned with the template's lines (Jinja
    expressions and mount flags ignored), so a finding points at the line a
    contributor edits. Lines outside any section belong to the image's
    definition in stacks.yaml.
    """

    def __init__(self, plan: Plan, node: Node):
        assert node.rendered is not None
        self.image_location = plan.spec.where("images", node.image or "")
        self.lines = node.rendered.dockerfile.split("\n")
        self.targets: list[tuple[str | None, Location]] = [(None, self.image_location)] * len(self.lines)
        library = plan.spec.library
        starts = [(i, m[1]) for i, line in enumerate(self.lines) if (m := _HEADER.match(line))]
        for number, (start, name) in enumerate(starts):
            end = starts[number + 1][0] if number + 1 < len(starts) else len(self.lines)
            if name in library:
                self._map_section(library[name], start, end)

    def _map_section(self, fragment: Fragment, start: int, end: int) -> None:
        path = fragment.folder / BODY_FILE
        template = path.read_text(encoding="utf-8").split("\n")
        self.targets[start] = (fragment.name, Location(path, 1))
        for offset, line in enumerate(align(template, self.lines[start + 1:end])):
            self.targets[start + 1 + offset] = (fragment.name, Location(path, line + 1 if line is not None else 1))

    def __getitem__(self, index: int) -> tuple[str | None, Location]:
        return self.targets[index] if 0 <= index < len(self.targets) else (None, self.image_location)


def align(template: list[str], rendered: list[str]) -> list[int | None]:
    """For each rendered line, the index of the template line it most likely came from."""
    norm_t, norm_r = [_normalise(line) for line in template], [_normalise(line) for line in rendered]
    mapped: list[int | None] = [None] * len(rendered)
    matcher = difflib.SequenceMatcher(None, norm_t, norm_r, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for j in range(j1, j2):
            if tag == "equal":
                mapped[j] = i1 + (j - j1)
            elif tag == "replace":
                mapped[j] = _closest(norm_r[j], norm_t, range(i1, i2), i1 + (j - j1))
            elif tag == "insert":
                mapped[j] = _closest(norm_r[j], norm_t, range(len(norm_t)), i1)
    return mapped


def _closest(line: str, candidates: list[str], indices: Iterable[int], near: int) -> int | None:
    scored = [(difflib.SequenceMatcher(None, candidates[i], line).ratio(), -abs(i - near), i) for i in indices]
    return max(scored)[2] if scored else None


def _normalise(line: str) -> str:
    line = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}|--mount=\S+", " ", line)
    return " ".join(line.split())


def lint_view(plan: Plan, node: Node) -> tuple[str, list[int]]:
    """The Dockerfile hadolint reads, and for each of its lines the rendered line it stands for.

    A `SHELL` line naming the effective shell goes before every RUN that runs
    under a shell other than /bin/sh, including one inherited from a parent.
    """
    assert node.rendered is not None
    lines = node.rendered.dockerfile.split("\n")
    starts = {ins.first: ins for ins in instructions(node.rendered.dockerfile)}
    final_from = max((i for i, ins in starts.items() if ins.keyword == "FROM"), default=-1)
    shell = None
    out: list[str] = []
    origin: list[int] = []
    for index, line in enumerate(lines):
        ins = starts.get(index)
        if ins is not None:
            if ins.keyword == "FROM":
                shell = inherited_shell(plan, node) if index == final_from else None
            elif ins.keyword == "SHELL":
                shell = ins.arguments or None
            elif ins.keyword == "RUN" and shell is not None:
                out.append(f"SHELL {shell}")
                origin.append(index)
        out.append(line)
        origin.append(index)
    return "\n".join(out), origin


def inherited_shell(plan: Plan, node: Node) -> str | None:
    """The SHELL in force when the image starts: the last one an ancestor's Dockerfile set."""
    parent = plan[node.parent] if node.parent else None
    while parent is not None:
        if parent.rendered is not None:
            shells = [ins.arguments for ins in instructions(parent.rendered.dockerfile) if ins.keyword == "SHELL"]
            if shells:
                return shells[-1] or None
        parent = plan[parent.parent] if parent.parent else None
    return None


def find_hadolint(explicit: str | None = None) -> str | None:
    """hadolint on PATH, or beside this Python (a virtualenv's bin/ is often not on PATH)."""
    if explicit:
        return explicit if Path(explicit).is_file() or shutil.which(explicit) else None
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hadolint")


def run_hadolint(exe: str, dockerfile: str, config: Path | None) -> list[dict[str, Any]]:
    """hadolint's JSON findings for one Dockerfile given on stdin."""
    command = [exe, "--no-color", "--format", "json"] + (["--config", str(config)] if config else []) + ["-"]
    try:
        proc = subprocess.run(command, input=dockerfile, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [{"message": f"hadolint did not run: {exc}"}]
    try:
        items = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        return [{"message": f"hadolint failed: {(proc.stderr or proc.stdout).strip()[:500]}"}]
    return items if isinstance(items, list) else []
