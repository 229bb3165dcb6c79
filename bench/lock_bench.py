"""Lock reading benchmark: how long `stacks lock` spends reading one built image's package lists.

For each image given (default: the reference lab and polyglot images of the local `stacks/` prefix,
their newest builds), the one container `stacks lock` starts per image runs `pip list --format=json`
and `npm ls -g --json --all`; the time from start to removal is what locking adds per image after
its build. Prints a Markdown table and writes bench/results/lock.json.

Usage: python bench/lock_bench.py [REF ...]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from builder.adapters.containers import DockerContainers  # noqa: E402
from builder.check.installed import read_installed  # noqa: E402
from builder.plan.lock import Pins, entry_from  # noqa: E402

DEFAULT = ("stacks/lab-bookworm:latest", "stacks/polyglot-bookworm:latest")


def main(refs: list[str]) -> None:
    runner = DockerContainers(docker.from_env())
    rows = []
    for ref in refs or DEFAULT:
        started = time.monotonic()
        installed = read_installed(runner, ref, ref.rsplit("/", 1)[-1].split(":")[0])
        seconds = time.monotonic() - started
        entry = entry_from(installed.pip, installed.npm, Pins({}, {}), "2026-01-01T00:00:00Z")
        rows.append({"ref": ref, "seconds": round(seconds, 1), "pip": len(entry.pip), "npm": len(entry.npm)})
    out = ROOT / "bench" / "results" / "lock.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print("| image | seconds | Python packages | npm packages |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['ref']} | {row['seconds']} | {row['pip']} | {row['npm']} |")


if __name__ == "__main__":
    main(sys.argv[1:])
