"""The labels every built image carries: stacks' own and the OCI annotations.

stacks' labels (`io.stacks.*`) make caching and `--explain` work: the content
hash, the variant name, the inputs behind the hash, the parent and the
fragments with their versions. The OCI labels (`org.opencontainers.image.*`)
tell registries and people what an image is and where it comes from, as the
image-spec annotations define them: `version` is the version of the image's
main software (`main_version`), `base.name`/`base.digest` name the parent
image exactly, `revision` ends in `-dirty` when the work tree had uncommitted
changes. A built image inherits its parent's labels, so every OCI label is
set on every image, empty where it does not apply. Labels never enter the
content hash: a rebuild of the same inputs at another commit is the same image.
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
VERSION_LABEL = OCI + "version"
BASE_NAME_LABEL = OCI + "base.name"
BASE_DIGEST_LABEL = OCI + "base.digest"
DIRTY = "-dirty"


def image_labels(plan: "Plan", node: "Node", now: datetime | None = None, base_digest: str = "") -> dict[str, str]:
    """All labels of `node`'s image. `base_digest` is the parent image's digest (the builder knows it once the
    parent is present). OCI labels with no value (no git checkout, no license set) are empty, never left out:
    a left-out label would be the parent's."""
    settings = plan.spec.model.settings.labels
    folder = plan.spec.path.parent
    description = (plan.spec.images[node.image].description if node.image else "") or node.name
    parent = plan[node.parent] if node.parent else None
    oci = {
        "title": node.name,
        "description": description,
        "version": main_version(node),
        "created": rfc3339(now or datetime.now(timezone.utc)),
        "revision": git_state(folder),
        "source": settings.source or git_source(folder),
        "url": settings.url,
        "documentation": settings.documentation,
        "licenses": settings.licenses,
        "vendor": settings.vendor,
        "authors": settings.authors,
        "base.name": parent.local_ref if parent is not None else "",
        "base.digest": base_digest if parent is not None else "",
    }
    return {
        HASH_LABEL: node.hash,
        NAME_LABEL: node.name,
        INPUTS_LABEL: json.dumps(node.inputs, sort_keys=True, separators=(",", ":")),
        PARENT_LABEL: node.parent or "",
        FRAGMENTS_LABEL: ",".join(f"{a.name}={a.fragment.meta.version or '-'}" for a in node.fragments),
        **{OCI + key: value or "" for key, value in oci.items()},
    }


def main_version(node: "Node") -> str:
    """The version of the image's main software: that of the first of its own fragments that names one,
    by its `version` param (what this image installs) or else the `version:` of its fragment.yaml; for a
    bootstrapped base its suite. Empty when none names one (an image of tools and settings only)."""
    for applied in node.fragments:
        version = applied.params.get("version") or applied.fragment.meta.version
        if version not in (None, ""):
            return str(version)
    if node.base is not None and node.base.bootstrap is not None:
        return node.base.bootstrap.suite
    return ""


def digest_of(image_id: str, repo_digests: tuple[str, ...] = ()) -> str:
    """An image's digest for `base.digest`: its manifest digest when a registry gave it one, else its id."""
    for reference in repo_digests:
        if "@" in reference:
            return reference.rsplit("@", 1)[1]
    return image_id


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=16)
def git_revision(folder: Path) -> str | None:
    """The full commit id of HEAD of the checkout holding `folder`; None outside git."""
    return _git(folder, "rev-parse", "--verify", "HEAD")


def git_state(folder: Path) -> str | None:
    """HEAD's commit id, with `-dirty` when tracked files differ from it (as `git describe --dirty` says; new
    files do not count, or the build's own output folder would make every build dirty); None outside git."""
    revision = git_revision(folder)
    return revision + DIRTY if revision and git_dirty(folder) else revision


@functools.lru_cache(maxsize=16)
def git_dirty(folder: Path) -> bool:
    """Whether tracked files of the work tree holding `folder` have uncommitted changes (staged or not)."""
    return bool(_git(folder, "status", "--porcelain", "--untracked-files=no"))


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
