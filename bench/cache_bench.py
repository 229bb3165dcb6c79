"""Cache benchmark: `make stacks` (build + test) on one machine and on simulated fresh runners, side by side.

One run, one engine, a real registry (Debian's docker-registry) on 127.0.0.1 as the cache:
  1. cold:        build + test, empty cache (fills it);
  2. local no-op: build + test again, nothing changed (records and images here);
  3. fresh, warm: every image of this run removed from the engine, empty record
                  store (BuildKit cache pruned with --prune-buildkit), then build + test;
  4. leaf edit:   one leaf fragment edited, fresh engine, warm cache: what is built,
                  tested, pulled;
  5. (between 2 and 3, while every image is here) no-op `stacks build` (median
     of 5, after one full run leaves the build receipt) against the cached plain
     `docker build` loop over the same rendered Dockerfiles with the same secret
     and build args (median of 3).

The stack runs in a copy with its own `local_prefix` and a nonce comment in
every fragment template, so its hashes are new and nothing of another run is
found. Default: a small generated stack (base -> root -> two leaves); `--spec
stacks.yaml --only-verified` measures the reference matrix (long: a cold build).

With `--platform P` (repeatable) every build and test runs for those platforms
(a foreign one under emulation: the cold step is long), and step 5 times the
no-op build only: the plain loop has no platform to compare with.

Usage: python bench/cache_bench.py [--spec stacks.yaml --only-verified] [--leaf FRAGMENT] [--prune-buildkit]
                                   [--platform linux/amd64 --platform linux/arm64] [--image lab-bookworm ...]
Writes bench/results/cache.json (cache-platforms.json with --platform) and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import docker  # noqa: E402
import yaml  # noqa: E402

from build_bench import ca_bundle_file, plain_builds  # noqa: E402
from builder.app.workspace import Workspace  # noqa: E402
from builder.plan.plan import load_plan  # noqa: E402

SMALL = {
    "stacks.yaml": """\
        version: 1
        bases:
          debian:
            bootstrap: {suite: bookworm}
            provides: ["os=debian", apt]
        images:
          root: {base: debian, fragments: [note]}
          left: {parent: root, fragments: [leftleaf]}
          right: {parent: root, fragments: [rightleaf]}
        """,
    "fragments/note": ("RUN echo hello > /etc/stacks-note\n",
                       "checks:\n  - {name: note, run: cat /etc/stacks-note, expect: '^hello$'}\n"),
    "fragments/leftleaf": ("RUN echo left > /etc/leaf\n", "checks:\n  - {name: leaf, run: cat /etc/leaf, expect: left}\n"),
    "fragments/rightleaf": ("RUN echo right > /etc/leaf\n", "checks:\n  - {name: leaf, run: cat /etc/leaf, expect: right}\n"),
}


class Registry:
    """docker-registry on a free 127.0.0.1 port, removed again at the end."""

    def __init__(self, folder: Path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.host = f"127.0.0.1:{sock.getsockname()[1]}"
        (folder / "config.yml").write_text(textwrap.dedent(f"""\
            version: 0.1
            log: {{level: error}}
            storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}}}
            http: {{addr: {self.host}}}
            """))
        self.proc = subprocess.Popen(["docker-registry", "serve", str(folder / "config.yml")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(tuple(self.host.split(":")), timeout=1).close()  # type: ignore[arg-type]
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("docker-registry did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def make_copy(args, work: Path, prefix: str) -> Path:
    """The stack in `work/repo`, with this run's prefix and a nonce in every fragment template."""
    repo = work / "repo"
    if args.spec is None:
        for path, content in SMALL.items():
            if path == "stacks.yaml":
                (repo).mkdir(parents=True, exist_ok=True)
                (repo / path).write_text(textwrap.dedent(content))
            else:
                folder = repo / path
                folder.mkdir(parents=True)
                body, meta = content
                (folder / "Dockerfile.j2").write_text(body)
                (folder / "fragment.yaml").write_text(f"name: {folder.name}\ndescription: bench fragment.\n{meta}")
        spec = repo / "stacks.yaml"
    else:
        shutil.copytree(args.spec.parent, repo, ignore=shutil.ignore_patterns(".git", ".venv", "build", "bench", "tests"))
        spec = repo / args.spec.name
    data = yaml.safe_load(spec.read_text())
    data.setdefault("settings", {})["local_prefix"] = prefix
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    nonce = uuid.uuid4().hex
    for template in (repo / "fragments").rglob("Dockerfile.j2"):
        template.write_text(template.read_text().rstrip("\n") + f"\n# bench nonce {nonce}\n")
    return spec


def stacks(spec: Path, env: dict, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "builder", *args, "-f", str(spec)], cwd=spec.parent, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"stacks {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - start, done


def make_stacks(spec: Path, env: dict, select: list[str]) -> dict:
    """`make stacks`: build then test; seconds, statuses, smoke runs and pulls."""
    build_s, _ = stacks(spec, env, "build", "--out", "build", *select)
    test_s, tested = stacks(spec, env, "test", "--out", "build", *select)
    # one report per platform (a foreign one in its own folder); with several, statuses name `image@platform`
    reports = [spec.parent / "build" / "report.json", *(spec.parent / "build").glob("*/report.json")]
    images = [i for path in reports for i in json.loads(path.read_text())["images"]]
    several = len(reports) > 1
    statuses = {f"{i['name']}@{i['platform']}" if several else i["name"]: i["status"] for i in images if i["kind"] == "image"}
    ran = smoke_runs(tested.stderr)
    return {"seconds": round(build_s + test_s, 1), "build_s": round(build_s, 2), "test_s": round(test_s, 2),
            "built": sorted(n for n, s in statuses.items() if s == "built"), "smoke_runs": sorted(ran)}


def smoke_runs(stderr: str) -> list[str]:
    """The images `stacks test` ran checks on ("[2/3] passed lab: 65/65 checks"), not those answered by a record
    ("passed lab: passed earlier, ..."); an image tested for two platforms is listed twice."""
    found = []
    for line in stderr.splitlines():
        match = re.match(r"^\[\d+/\d+\] (passed|FAILED) (\S+): ", line)
        if match:
            found.append(match.group(2))
    return found


def fresh_runner(client, prefix: str, cache: str, work: Path, count: list, prune: bool) -> dict:
    """Remove every image this run made (its prefix, the cache's tags); a new record store."""
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith((prefix + "/", cache + ":")):
                try:
                    client.images.remove(tag)
                except docker.errors.APIError:
                    pass
    if prune:
        subprocess.run(["docker", "builder", "prune", "-af"], check=False, capture_output=True)
    count[0] += 1
    return {"XDG_CACHE_HOME": str(work / f"runner-{count[0]}")}


def local_images(client, prefix: str) -> set[str]:
    return {t.split("/", 1)[1].split(":")[0] for i in client.images.list() for t in i.tags
            if t.startswith(prefix + "/") and not t.endswith(":latest")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", type=Path, default=None, help="default: a small generated stack")
    parser.add_argument("--only-verified", action="store_true")
    parser.add_argument("--leaf", default=None, help="fragment to edit in step 4 (default: the small stack's left leaf)")
    parser.add_argument("--image", dest="images", action="append", default=[],
                        help="only this image and its ancestors (repeatable; default: every image of the selection)")
    parser.add_argument("--platform", dest="platforms", action="append", default=[],
                        help="build and test for this platform (repeatable; default: the engine's own)")
    parser.add_argument("--prune-buildkit", action="store_true",
                        help="also prune the BuildKit cache for each fresh runner (the whole engine's: not on a shared one)")
    args = parser.parse_args()

    engine = Workspace().engine
    client = engine.client
    work = Path(tempfile.mkdtemp(prefix="stacks-cache-bench-"))
    prefix = f"cachebench{uuid.uuid4().hex[:6]}"
    registry = Registry(work)
    cache = f"{registry.host}/cache"
    spec = make_copy(args, work, prefix)
    select = ([*args.images, "--only-verified"] if args.only_verified else [*args.images]) \
        + [a for p in args.platforms for a in ("--platform", p)]
    runners = [0]
    base_env = {**os.environ, "STACKS_CACHE": cache}
    results: dict = {"stack": str(args.spec or "small generated stack (base, root, 2 leaves)"),
                     "platforms": args.platforms or ["the engine's own"]}
    try:
        env = {**base_env, **fresh_runner(client, prefix, cache, work, runners, False)}
        results["cold"] = make_stacks(spec, env, select)
        results["local_noop"] = make_stacks(spec, env, select)

        # 5 (while every image is here): the no-op build against the cached plain loop, no registry involved.
        # The plain loop re-tags the images it builds; the fresh runner below removes those tags anyway.
        env_noop = {**env, "STACKS_CACHE": "none"}
        stacks(spec, env_noop, "build", "--out", "build", *select)  # the full path once: it leaves the receipt
        noops = [round(stacks(spec, env_noop, "build", "--out", "build", *select)[0], 3) for _ in range(5)]
        results["noop_build_runs_s"], results["noop_build_s"] = noops, round(statistics.median(noops), 3)
        if not args.platforms and not args.images:
            plan = load_plan(spec, engine.mode)  # type: ignore[arg-type]
            nodes = plan.select([], args.only_verified)
            bundle = ca_bundle_file(work)
            plain_builds(plan, nodes, engine.cli, work / "plain", bundle)  # warm
            plains = [round(plain_builds(plan, nodes, engine.cli, work / "plain", bundle), 3) for _ in range(3)]
            results["plain_cached_runs_s"], results["plain_cached_s"] = plains, round(statistics.median(plains), 3)
            results["noop_ratio"] = round(results["noop_build_s"] / results["plain_cached_s"], 3)

        env = {**base_env, **fresh_runner(client, prefix, cache, work, runners, args.prune_buildkit)}
        results["fresh_warm"] = make_stacks(spec, env, select)
        results["fresh_warm"]["local_after"] = sorted(local_images(client, prefix))

        leaf = args.leaf or "leftleaf"
        template = spec.parent / "fragments" / leaf / "Dockerfile.j2"
        template.write_text(template.read_text() + f"RUN echo edited {uuid.uuid4().hex}\n")  # a new step, no file left
        env = {**base_env, **fresh_runner(client, prefix, cache, work, runners, args.prune_buildkit)}
        results["leaf_edit"] = make_stacks(spec, env, select)
        results["leaf_edit"]["edited"] = leaf
        results["leaf_edit"]["local_after"] = sorted(local_images(client, prefix))

    finally:
        fresh_runner(client, prefix, cache, work, runners, False)
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
        out = ROOT / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        name = "cache-platforms.json" if args.platforms else "cache.json"
        (out / name).write_text(json.dumps(results, indent=2) + "\n")  # what was measured, even if a step failed
    print(f"stack: {results['stack']}; platforms: {', '.join(results['platforms'])}\n\n| scenario | make stacks | built | smoke runs |\n|---|---:|---|---|")
    for key in ("cold", "local_noop", "fresh_warm", "leaf_edit"):
        r = results[key]
        print(f"| {key} | {r['seconds']} s | {', '.join(r['built']) or '0'} | {', '.join(r['smoke_runs']) or '0'} |")
    print(f"\nfresh runner, warm cache: images here afterwards {results['fresh_warm']['local_after'] or 'none'}")
    print(f"leaf edit ({results['leaf_edit']['edited']}): images here afterwards {results['leaf_edit']['local_after']}")
    print(f"no-op stacks build {results['noop_build_s']} s {results['noop_build_runs_s']}", end="")
    if "plain_cached_s" in results:
        print(f" vs cached plain docker build loop {results['plain_cached_s']} s {results['plain_cached_runs_s']}: "
              f"ratio {results['noop_ratio']}", end="")
    print()


if __name__ == "__main__":
    main()
