"""The Python and npm packages a built image holds, as its package managers list them.

One idle container per image (no network, the image's own user) runs one
script: `python -m pip list --format=json` for the environment first on
PATH (the venv or conda environment the fragments install into) and
`npm ls -g --json --all` for the global npm tree. An image without Python or
npm lists nothing for it. `stacks lock` turns the answer into a lock entry
(builder/plan/lock.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from builder.adapters.containers import VERSIONS, ContainerRunner, RunSpec

READ_TIMEOUT = 300  # seconds: `npm ls --all` of a large tree on a busy machine
SEPARATOR = "--- stacks: npm ---"
SCRIPT = (
    "if command -v python >/dev/null 2>&1 && python -m pip --version >/dev/null 2>&1; "
    "then python -m pip list --format=json --disable-pip-version-check 2>/dev/null || echo '[]'; else echo '[]'; fi; "
    f"echo '{SEPARATOR}'; "
    "if command -v npm >/dev/null 2>&1; then npm ls -g --json --all 2>/dev/null; else echo '{}'; fi; true"
)


class ReadFailed(Exception):
    """The image's package lists could not be read (the container failed, or printed no JSON)."""


@dataclass(frozen=True)
class Installed:
    """What one image's package managers list."""

    pip: list[dict[str, Any]] = field(default_factory=list)  # pip list --format=json rows: name, version
    npm: dict[str, Any] = field(default_factory=dict)  # npm ls -g --json --all: the global tree


def read_installed(runner: ContainerRunner, ref: str, image: str) -> Installed:
    """The pip and npm package lists of the image `ref`, read in one container."""
    spec = RunSpec(image, "packages", purpose=VERSIONS, entrypoint=["sleep"], command=["infinity"], network=False)
    with runner.run(ref, spec) as container:
        done = container.exec(["sh", "-c", SCRIPT], timeout=READ_TIMEOUT, split=True)
    if done.exit_code != 0 or SEPARATOR not in done.text:
        raise ReadFailed(f"{image}: reading its package lists failed (exit status {done.exit_code}): "
                         f"{(done.error_text or done.text).strip()[-300:]}")
    pip_text, npm_text = done.text.split(SEPARATOR, 1)
    try:
        pip = json.loads(pip_text.strip() or "[]")
        npm = json.loads(npm_text.strip() or "{}")
    except json.JSONDecodeError as exc:
        raise ReadFailed(f"{image}: its package lists are not JSON ({exc})") from None
    if not isinstance(pip, list) or not isinstance(npm, dict):
        raise ReadFailed(f"{image}: unexpected package lists (pip: {type(pip).__name__}, npm: {type(npm).__name__})")
    return Installed([row for row in pip if isinstance(row, dict)], npm)
