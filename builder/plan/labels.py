"""The labels every built image carries: stacks' own and the OCI annotations.

stacks' labels (`io.stacks.*`) make caching and `--explain` work: the content
hash, the variant name, the inputs behind the hash, the parent and the
fragments with their versions. The OCI labels (`org.opencontainers.image.*`)
tell registries and people what an image is and where it comes from. Labels
never enter the content hash: a rebuild of the same inputs at another commit
is the same image.
"""
from __future__ import annotations

import functools
import json
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from builder.plan.plan import HASH_LABEL

if TYPE_CHECKING:
    from builder.plan.plan import Node, Plan

NAME_LABEL = "io.stacks.name"
INPUTS_LABEL = "io.stacks.inputs"
PARENT_LABEL = "io.stacks.parent"
FRAGMENTS_LABEL = "io.stacks.fragments"
OCI = "org.opencontainers.image."
REVISION_LABEL = OCI + "revision"
CREATED_LABEL = OCI + "created"


def image_labels(plan: "Plan", node: "Node", now: datetime | None = None) -> dict[str, str]:
    """All labels of `node`'s image; OCI labels with no value (no git checkout, no license set) are left out."""
    settings = plan.spec.model.settings.labels
    folder = plan.spec.path.parent
    description = (plan.spec.images[node.image].description if node.image else "") or node.name
    oci = {
        "title": node.name,
        "description": description,
        "version": node.short_hash,
        "created": rfc3339(now or datetime.now(timezone.utc)),
        "revision": git_revision(folder),
        "source": settings.source or git_source(folder),
        "url": settings.url,
        "documentation": settings.documentation,
        "licenses": settings.licenses,
        "vendor": settings.vendor,
        "authors": settings.authors,
    }
    return {
        HASH_LABEL: node.hash,
        NAME_LABEL: node.name,
        INPUTS_LABEL: json.dumps(node.inputs, sort_keys=True, separators=(",", ":")),
        PARENT_LABEL: node.parent or "",
        FRAGMENTS_LABEL: ",".join(f"{a.name}={a.fragment.meta.version or '-'}" for a in node.fragments),
        **{OCI + key: value for key, value in oci.items() if value},
    }


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=16)
def git_revision(folder: Path) -> str | None:
    """The full commit id of HEAD of the checkout holding `folder`; None outside git."""
    return _git(folder, "rev-parse", "--verify", "HEAD")


@functools.lru_cache(maxsize=16)
def git_source(folder: Path) -> str | None:
    """The remote 'origin' as a browsable URL (git@host:org/repo.git -> https://host/org/repo); None without one."""
    url = _git(folder, "remote", "get-url", "origin")
    if not url:
        return None
    match = re.match(r"^(?:ssh://)?git@([^:/]+)[:/](.+?)(?:\.git)?/?$", url)
    if match:
        return f"https://{match[1]}/{match[2]}"
    url = re.sub(r"^(https?://)[^@/]+@", r"\1", url)  # never publish credentials embedded in a remote URL
    return re.sub(r"\.git/?$", "", url) if url.startswith(("https://", "http://")) else None


def _git(folder: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None
