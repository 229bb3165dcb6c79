"""Helpers that write small stacks (stacks.yaml + fragment folders) into tmp_path.

`make_stack(root, spec, fragments)` (and the `stack` fixture) take the stacks.yaml text (dedented) or a dict, and
fragments as {name: {"meta": dict|str, "body": str, "files": {path: str|bytes}}};
missing pieces get sensible defaults. It returns the path of stacks.yaml.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import yaml

from builder.plan.matrix import expand
from builder.plan.plan import make_plan
from builder.plan.resolve import resolve
from builder.specification.load import load_spec

#: a small library good for most tests
BASIC_FRAGMENTS: dict[str, dict[str, Any]] = {
    "os": {"meta": {"provides": ["shell"]}, "body": "RUN echo os > /os.txt\n"},
    "py": {
        "meta": {
            "provides": ["python={{ version }}"],
            "requires": ["shell"],
            "params": {"version": {"type": "string", "description": "Python version"}},
        },
        "body": "RUN echo python {{ version }} > /py.txt\n",
    },
    "lab": {"meta": {"requires": ["python>=3.10"], "provides": ["jupyter-server"]}, "body": "RUN echo lab\n"},
    "tool": {"meta": {"params": {"level": {"type": "integer", "default": 3}}}, "body": "RUN echo level {{ level }}\n"},
}


def write_fragment(root: Path, name: str, meta: dict | str | None = None, body: str | None = None,
                   files: dict[str, str | bytes] | None = None, executable: tuple[str, ...] = ()) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    if meta is None or isinstance(meta, dict):
        data = {"name": name, "description": f"fragment {name}", **(meta or {})}
        text = yaml.safe_dump(data, sort_keys=False)
    else:
        text = textwrap.dedent(meta).lstrip("\n")
    (folder / "fragment.yaml").write_text(text)
    (folder / "Dockerfile.j2").write_text(textwrap.dedent(body if body is not None else f"RUN echo {name}\n"))
    for path, content in (files or {}).items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        if path in executable:
            os.chmod(target, 0o755)
    return folder


def plan_of(path: Path, mode: str = "buildkit"):
    return make_plan(load_spec(path), mode)  # type: ignore[arg-type]


def variants_of(path: Path):
    return expand(load_spec(path))


def resolved_of(path: Path):
    spec = load_spec(path)
    return resolve(spec, expand(spec))


def problems_of(excinfo) -> list:
    return excinfo.value.problems


def make_stack(root: Path, spec: str | dict, fragments: dict[str, dict[str, Any]] | None = None, *, basic: bool = True) -> Path:
    """Write stacks.yaml and a fragments/ folder (BASIC_FRAGMENTS plus `fragments`) into `root`."""
    frag_dir = root / "fragments"
    frag_dir.mkdir(parents=True)
    library = {**(BASIC_FRAGMENTS if basic else {}), **(fragments or {})}
    for name, parts in library.items():
        write_fragment(frag_dir, name, **parts)
    text = textwrap.dedent(spec).lstrip("\n") if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False)
    path = root / "stacks.yaml"
    path.write_text(text)
    return path
