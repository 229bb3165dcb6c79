"""Manifest benchmark: what reading an image's package manifest costs, next to its smoke test, and SBOM sizes.

For each built image of the stacks file (default: every image whose local
reference the engine has):
  1. the manifest read: the reader script in one container of the image,
     with the fragments' version commands (median of --runs reads);
  2. the SBOM: its size as CycloneDX JSON, and the package counts;
  3. with --smoke IMAGE...: the smoke test of that image (`stacks test --force`,
     no registry cache), wall time, with its manifest already known (a test
     reads it once per image: the figure is the test alone).
The target (docs/manifests.md): reading adds under 10% to an image's test.

Usage: python bench/manifest_bench.py [--spec stacks.yaml] [--images A B] [--smoke A B] [--runs 3]
Writes bench/results/manifests.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from builder.app.workspace import Workspace  # noqa: E402
from builder.inventory.read import identity, read_manifest  # noqa: E402
from builder.inventory.sbom import to_cyclonedx  # noqa: E402
from builder.plan.versions import probes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", type=Path, default=ROOT / "stacks.yaml")
    parser.add_argument("--images", nargs="*", default=[])
    parser.add_argument("--smoke", nargs="*", default=[])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ws = Workspace(spec_file=args.spec)
    plan, engine = ws.build_plan, ws.engine
    rows = []
    for node in plan:
        if node.kind != "image" or (args.images and node.name not in args.images):
            continue
        image = engine.image(node.local_ref)
        if image is None:
            continue
        wanted = probes(node.chain, plan[node.root].base)
        times, manifest = [], None
        for _ in range(args.runs):
            start = time.monotonic()
            manifest = read_manifest(engine.containers, node.local_ref, identity(node, image.id, image.platform), wanted)
            times.append(time.monotonic() - start)
        assert manifest is not None
        ws.manifests.put(manifest)
        sbom = to_cyclonedx(manifest).encode()
        row = {"image": node.name, "size": image.size, "read_seconds": round(statistics.median(times), 2),
               "packages": len(manifest.packages), "counts": manifest.to_dict()["counts"], "sbom_bytes": len(sbom),
               "manifest_bytes": len(manifest.to_json())}
        if node.name in args.smoke:
            with tempfile.TemporaryDirectory() as out:
                start = time.monotonic()
                done = subprocess.run([sys.executable, "-m", "builder", "test", "-f", str(args.spec), node.name, "--force",
                                       "--cache", "none", "--out", out], capture_output=True, text=True)
                row["smoke_seconds"] = round(time.monotonic() - start, 1)
                row["smoke_passed"] = done.returncode == 0
            row["share"] = round(100 * row["read_seconds"] / row["smoke_seconds"], 1)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "manifests.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| image | packages | manifest read (s) | smoke test (s) | read / test | SBOM (KB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        smoke = f"{row['smoke_seconds']:.1f}" if "smoke_seconds" in row else "-"
        share = f"{row['share']:.1f}%" if "share" in row else "-"
        print(f"| {row['image']} | {row['packages']} | {row['read_seconds']:.2f} | {smoke} | {share} | "
              f"{row['sbom_bytes'] / 1024:.0f} |")


if __name__ == "__main__":
    main()
