"""Platform benchmark: one chain of the reference stack built and tested per platform, side by side.

For each platform given (default: linux/amd64 and linux/arm64; arm64 runs under
QEMU user emulation on an amd64 engine) it times `stacks build --platform P IMAGE`
and then `stacks test --platform P IMAGE`, each platform into its own out folder.
Cold numbers need images not built yet: run it after a change of hash format, or
with a fresh engine; otherwise it measures what the engine still has to do.

Usage: python bench/platform_bench.py [--image lab-bookworm] [--platform linux/arm64 ...] [--out DIR]
Writes bench/results/platforms.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(*args: str) -> tuple[int, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "builder", *args], cwd=ROOT, check=False)
    return done.returncode, round(time.monotonic() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="lab-bookworm")
    parser.add_argument("--platform", dest="platforms", action="append", default=[])
    parser.add_argument("--out", type=Path, default=Path("/tmp/stacks-platform-bench"))
    args = parser.parse_args()
    rows = []
    for platform in args.platforms or ["linux/amd64", "linux/arm64"]:
        out = args.out / platform.replace("/", "-")
        built = timed("build", "--platform", platform, args.image, "--out", str(out))
        tested = timed("test", "--platform", platform, args.image, "--out", str(out))
        rows.append({"platform": platform, "image": args.image, "build": {"status": built[0], "seconds": built[1]},
                     "test": {"status": tested[0], "seconds": tested[1]}})
    results = ROOT / "bench" / "results" / "platforms.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(rows, indent=2) + "\n")
    print("| platform | build (s) | test (s) |\n|---|---:|---:|")
    for row in rows:
        print(f"| {row['platform']} | {row['build']['seconds']} (exit {row['build']['status']}) | "
              f"{row['test']['seconds']} (exit {row['test']['status']}) |")


if __name__ == "__main__":
    main()
