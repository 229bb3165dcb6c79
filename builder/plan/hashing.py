"""Content hashes: the identity that decides whether an image must be built.

An image's hash covers its platform (linux/amd64 and linux/arm64 builds of
one Dockerfile are different images), its rendered Dockerfile, every file in
its build context (content and mode), its declared build arguments, the
render mode and its parent's hash, and nothing else: no timestamps, no paths, no
per-run settings such as mirrors or CA certificates. The inputs are kept
beside the hash so `--explain` can say which of them changed.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from builder.plan.render import Rendered

#: 2: the platform is part of every hash (images hashed by format 1 are built once more)
FORMAT = 2


def digest(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def image_inputs(rendered: Rendered, build_args: dict[str, str], parent_hash: str, mode: str,
                 platform: str, dockerfile: str | None = None, lock: str | None = None) -> dict[str, Any]:
    """Everything an image's hash covers, as digests small enough to store in a label. `dockerfile`: the text
    to hash when it is not the rendered one (the plan hashes `FROM` the parent's tag as the engine's own
    platform names it, so a linux/arm64 image hashes alike on an amd64 and on an arm64 engine). `lock`: the
    digest of the image's stacks.lock entry (an image without one keeps the hash it had before locks existed)."""
    inputs = {
        "format": FORMAT,
        "platform": platform,
        "mode": mode,
        "parent": parent_hash,
        "dockerfile": digest(rendered.dockerfile if dockerfile is None else dockerfile),
        "sections": {name: digest(text) for name, text in rendered.sections.items()},
        "files": {path: f"{digest(data)}:{mode:o}" for path, (data, mode) in rendered.files.items()},
        "build_args": dict(sorted(build_args.items())),
    }
    return {**inputs, "lock": lock} if lock else inputs


def base_inputs(identity: dict[str, Any], platform: str) -> dict[str, Any]:
    """A base's hash: its definition and the platform it is bootstrapped or pulled for."""
    return {"format": FORMAT, "platform": platform, "base": identity}


def hash_inputs(inputs: dict[str, Any]) -> str:
    return digest(json.dumps(inputs, sort_keys=True, separators=(",", ":")))


def explain_change(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Human reasons why `new` differs from the inputs of the last build (`old`)."""
    if not old:
        return ["never built"]
    if old.get("format") != new.get("format"):
        return ["hash format changed"]
    reasons = []
    for key, label in (("platform", "platform changed"), ("parent", "parent image changed"), ("mode", "render mode changed"),
                       ("base", "base definition changed"), ("lock", "stacks.lock entry changed")):
        if old.get(key) != new.get(key):
            reasons.append(label)
    old_sections, new_sections = old.get("sections", {}), new.get("sections", {})
    for name in new_sections:
        if name not in old_sections:
            reasons.append(f"fragment '{name}' added")
        elif old_sections[name] != new_sections[name]:
            reasons.append(f"fragment '{name}' changed (Dockerfile.j2 or its params)")
    reasons += [f"fragment '{name}' removed" for name in old_sections if name not in new_sections]
    old_files, new_files = old.get("files", {}), new.get("files", {})
    for path in sorted(set(old_files) | set(new_files)):
        if old_files.get(path) != new_files.get(path):
            state = "added" if path not in old_files else "removed" if path not in new_files else "changed"
            reasons.append(f"file {path} {state}")
    old_args, new_args = old.get("build_args", {}), new.get("build_args", {})
    for key in sorted(set(old_args) | set(new_args)):
        if old_args.get(key) != new_args.get(key):
            reasons.append(f"build argument {key} changed")
    if not reasons and old.get("dockerfile") != new.get("dockerfile"):
        reasons.append("Dockerfile header changed")
    return reasons or ["inputs differ"]
