"""The key of a smoke-test result: what was tested, with which checks, by which tool.

A passing result stays valid while all three are unchanged:
- the image's content hash (what is in the image);
- the checks that apply to it: every declared check of its chain with the
  params the image applies, every kernel snippet, the capabilities that call
  for behaviour suites (start-scripts, jupyter-server, ...) and the size budget;
- the tool's version: the package version plus a digest of the check code
  itself, so an edited check in a development install re-runs every image.
Pure: no Docker, no file other than the tool's own check sources.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from builder.plan.plan import Node

KEY_VERSION = 1  # bump when the key's recipe changes
DISTRIBUTION = "jupyter-stacks"
CHECK_SOURCES = Path(__file__).resolve().parent.parent / "check"


def applicable_checks(node: Node) -> dict[str, Any]:
    """Everything that decides which checks run on `node` and how, as plain JSON-able data."""
    chain = []
    for applied in node.chain:
        meta = applied.fragment.meta
        chain.append({
            "fragment": applied.name,
            "params": applied.params,
            "provides": sorted(str(p) for p in applied.provides),
            "checks": [c.model_dump(mode="json", exclude_none=True) for c in meta.checks],
            "kernel": meta.kernel.model_dump(mode="json", exclude_none=True) if meta.kernel is not None else None,
        })
    return {"chain": chain, "size_budget": node.size_budget}


def checks_digest(node: Node) -> str:
    return _digest(applicable_checks(node))


def record_key(content_hash: str, checks: str, tool: str) -> str:
    """The record key: sha256 over (recipe version, content hash, checks digest, tool version)."""
    return _digest({"v": KEY_VERSION, "hash": content_hash, "checks": checks, "tool": tool})


def node_key(node: Node, tool: str | None = None) -> str:
    """The key of `node`'s smoke test with this tool."""
    return record_key(node.hash, checks_digest(node), tool or tool_version())


@lru_cache(maxsize=1)
def tool_version() -> str:
    """`<package version>+checks.<digest of builder/check/**/*.py>`."""
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    sources = hashlib.sha256()
    for path in sorted(CHECK_SOURCES.rglob("*.py")):
        sources.update(path.relative_to(CHECK_SOURCES).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{version}+checks.{sources.hexdigest()[:12]}"


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
