"""Build benchmark: `stacks build` against plain `docker build` of the same Dockerfiles.

Measured side by side, in one run, on one engine:
  1. cold:  plain sequential `docker build` of every rendered Dockerfile (what a
            Makefile of docker builds does) vs `stacks build`, each after the
            images and the BuildKit cache are removed (bases are kept: both
            approaches start from the same bootstrapped base);
  2. no-op: a second `stacks build` vs a second plain (fully cached) pass;
  3. edit:  one fragment changed; which images `stacks build` rebuilds.

Usage: python bench/build_bench.py [--spec stacks.yaml] [--fragment NAME] [--images A B ...]
Writes bench/results/build.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from builder.app.workspace import Workspace  # noqa: E402
from builder.plan.plan import load_plan  # noqa: E402
from builder.plan.render import CA_ARGS, CA_PATH, CA_SECRET, write_context  # noqa: E402


def run(cmd: list[str], **kw) -> float:
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.monotonic() - start


def stacks_build(spec: Path, images: list[str], out: Path) -> tuple[float, dict]:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "builder", "build", "-f", str(spec), "--out", str(out), *images],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    report = json.loads((out / "report.json").read_text())
    return seconds, {i["name"]: i["status"] for i in report["images"]}


def plain_builds(plan, nodes, cli: str, workdir: Path, bundle: Path | None) -> float:
    """Sequential `docker build` of each rendered image, tagged with the same references."""
    total = 0.0
    for node in nodes:
        if node.kind != "image":
            continue
        context = workdir / node.name
        write_context(node.rendered, context)
        cmd = [cli, "build", "-q", "-t", node.local_ref, str(context)]
        if bundle:
            cmd[2:2] = ["--secret", f"id={CA_SECRET},src={bundle}"] + [w for a in CA_ARGS for w in ("--build-arg", f"{a}={CA_PATH}")]
        total += run(cmd, env={**os.environ, "DOCKER_BUILDKIT": "1"})
    return total


def ca_bundle_file(work: Path) -> Path | None:
    """STACKS_CA_CERTS as one PEM file in `work`, the secret the plain builds get (None when unset)."""
    from builder.building.site import ca_bundle

    ca = [p for p in os.environ.get("STACKS_CA_CERTS", "").split(os.pathsep) if p]
    if not ca:
        return None
    bundle = work / "ca.pem"
    bundle.write_bytes(ca_bundle(tuple(Path(p) for p in ca)))
    return bundle


def clear(nodes, client) -> None:
    """Remove every image of the built nodes (all tags) and the BuildKit cache; bases stay."""
    for node in nodes:
        if node.kind == "image":
            images = client.images.list(filters={"label": f"io.stacks.hash={node.hash}"})
            images += [i for i in client.images.list(name=node.local_ref.rsplit(":", 1)[0]) if node.local_ref in i.tags]
            for image in images:
                try:
                    client.images.remove(image.id, force=True)
                except Exception:  # already removed through another tag
                    pass
    subprocess.run(["docker", "builder", "prune", "-af"], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client.images.prune(filters={"dangling": True})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", type=Path, default=ROOT / "stacks.yaml")
    parser.add_argument("--fragment", default="ipykernel", help="fragment to edit in step 3")
    parser.add_argument("--images", nargs="*", default=[])
    args = parser.parse_args()

    engine = Workspace().engine
    assert engine.mode == "buildkit" and engine.cli, "the benchmark compares BuildKit builds"
    work = Path(tempfile.mkdtemp(prefix="stacks-bench-"))
    repo = work / "repo"
    shutil.copytree(args.spec.parent, repo, ignore=shutil.ignore_patterns(".git", ".venv", "build", "bench"))
    spec = repo / args.spec.name
    plan = load_plan(spec)
    nodes = plan.select(args.images) if args.images else list(plan)
    bundle = ca_bundle_file(work)

    stacks_build(spec, [n.name for n in nodes if n.kind != "image"] or ["--help"], work / "out-bases") if any(
        n.kind != "image" for n in nodes) else None
    results: dict[str, float | int | dict] = {"images": sum(n.kind == "image" for n in nodes)}

    clear(nodes, engine.client)
    results["plain_cold_s"] = round(plain_builds(plan, nodes, engine.cli, work / "plain", bundle), 1)
    results["plain_cached_s"] = round(plain_builds(plan, nodes, engine.cli, work / "plain", bundle), 1)
    clear(nodes, engine.client)
    seconds, _ = stacks_build(spec, args.images, work / "out1")
    results["stacks_cold_s"] = round(seconds, 1)
    seconds, state = stacks_build(spec, args.images, work / "out2")
    results["stacks_noop_s"] = round(seconds, 2)
    results["noop_statuses"] = sorted(set(state.values()))

    template = repo / "fragments" / args.fragment / "Dockerfile.j2"
    template.write_text(template.read_text() + f"\nLABEL io.stacks.bench-edit={time.time_ns()}\n")
    seconds, state = stacks_build(spec, args.images, work / "out3")
    results["edit_s"] = round(seconds, 1)
    results["edit_rebuilt"] = sorted(n for n, s in state.items() if s == "built")
    edited = load_plan(spec)
    results["edit_expected"] = sorted(
        n.name for n in edited if n.kind == "image" and any(a.name == args.fragment for a in n.chain)
        and n.name in {x.name for x in nodes}
    )
    results["noop_vs_plain_cached_pct"] = round(100 * results["stacks_noop_s"] / max(results["plain_cached_s"], 0.01), 1)

    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "build.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| measure | seconds |\n|---|---:|")
    for key in ("plain_cold_s", "stacks_cold_s", "plain_cached_s", "stacks_noop_s", "edit_s"):
        print(f"| {key} | {results[key]} |")
    print(f"\nno-op is {results['noop_vs_plain_cached_pct']}% of the plain cached run")
    print(f"edit of '{args.fragment}' rebuilt {results['edit_rebuilt']} (expected {results['edit_expected']})")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
