"""Plan benchmark: how long the pure stages take for a stack of ~1000 images.

Two generated stacks (in a temporary directory), each with ~5 fragments per
image from a library of 50 fragments with params, requirements, context files
and templated files:

  matrix: foundation (10 os values) -> lab (+ 10 python x 10 flavour) = 1010 images
  tree:   1000 image definitions, 10 roots x 9 children x 10 grandchildren

For each, the stages are timed separately (load = stacks.yaml + fragment
library, expand, resolve, plan = make_plan which repeats expand+resolve and
adds render+hash+tags, write = write_context of every image) and the whole
(load + make_plan + write). Each measurement is repeated; the table shows the
median.

Usage: python bench/plan_bench.py [--repeat 3] [--only matrix|tree] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from builder.plan.matrix import expand  # noqa: E402
from builder.plan.plan import make_plan  # noqa: E402
from builder.plan.render import write_context  # noqa: E402
from builder.plan.resolve import resolve  # noqa: E402
from builder.specification.load import load_spec  # noqa: E402

LEVELS = {"l0": 10, "l1": 20, "l2": 20}  # fragments per level of the image tree


def write_library(folder: Path) -> None:
    for level, count in LEVELS.items():
        for i in range(count):
            name = f"{level}-f{i:02d}"
            frag = folder / name
            (frag / "files").mkdir(parents=True)
            meta = {
                "name": name,
                "description": f"generated fragment {name}",
                "version": f"1.{i}",
                "provides": [f"{level}-cap{i}={{{{ version }}}}"] + (["shell"] if level == "l0" and i == 0 else []),
                "requires": ["shell"] if level != "l0" or i else [],
                "params": {
                    "version": {"type": "string", "default": f"1.{i}.0"},
                    "level": {"type": "integer", "default": i},
                    "packages": {"type": "list", "default": ["curl", "git"]},
                },
            }
            (frag / "fragment.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
            (frag / "Dockerfile.j2").write_text(
                f"# {name}\n"
                "RUN {{ cache.apt }} apt-get update -qq \\\n"
                "    && apt-get install -y --no-install-recommends {{ packages | join(' ') }} \\\n"
                "    && rm -rf /var/lib/apt/lists/*\n"
                "RUN {{ cache.pip }} pip install 'pkg-" + name + "=={{ version }}'\n"
                "COPY {{ here }}/files/ /opt/" + name + "/\n"
                "ENV " + name.upper().replace("-", "_") + "_LEVEL={{ level }} IMAGE={{ image.name }}\n"
            )
            (frag / "files" / "run.sh").write_text(f"#!/bin/sh\necho {name}\n")
            (frag / "files" / "run.sh").chmod(0o755)
            (frag / "files" / "config.toml.j2").write_text("[tool]\nname = \"{{ image.name }}\"\nversion = \"{{ version }}\"\n")


def uses(level: str, start: int, params: bool) -> list:
    count = LEVELS[level]
    names = [f"{level}-f{(start + k) % count:02d}" for k in range(5)]
    if level == "l0" and "l0-f00" not in names:
        names[0] = "l0-f00"  # the provider of 'shell' comes first
    if level == "l0":
        names.sort()
    out: list = []
    for k, name in enumerate(names):
        out.append({"use": name, "params": {"version": "{{ python }}" if params and k == 1 else f"2.{k}"}} if k % 2 else name)
    return out


def matrix_spec() -> dict:
    return {
        "version": 1,
        "settings": {"tags": ["{{ variant }}", "{{ variant }}-{{ hash[:8] }}"]},
        "axes": {
            "os": [f"os{i}" for i in range(10)],
            "python": [f"3.{i}" for i in range(10)],
            "flavour": [f"fl{i}" for i in range(10)],
        },
        "bases": {"debian": {"pull": "debian:{{ os }}", "provides": ["os=debian"]}},
        "images": {
            "foundation": {"base": "debian", "axes": ["os"], "fragments": uses("l0", 0, False)},
            "lab": {"parent": "foundation", "axes": ["python", "flavour"], "fragments": uses("l1", 3, True),
                    "build_args": {"FLAVOUR": "{{ flavour }}"}},
        },
    }


def tree_spec() -> dict:
    images: dict = {}
    for r in range(10):
        images[f"root{r}"] = {"base": "debian", "fragments": uses("l0", r, False)}
        for c in range(9):
            images[f"mid{r}-{c}"] = {"parent": f"root{r}", "fragments": uses("l1", r + c, False)}
            for g in range(10):
                images[f"leaf{r}-{c}-{g}"] = {"parent": f"mid{r}-{c}", "fragments": uses("l2", c + g, False),
                                              "build_args": {"N": str(g)}}
    return {
        "version": 1,
        "bases": {"debian": {"pull": "debian:12", "provides": ["os=debian"]}},
        "images": images,
    }


def make_stack(root: Path, spec: dict) -> Path:
    write_library(root / "fragments")
    path = root / "stacks.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench(name: str, path: Path, repeat: int, out: Path) -> list[tuple]:
    load_s, spec = timed(lambda: load_spec(path), repeat)
    expand_s, variants = timed(lambda: expand(spec), repeat)
    resolve_s, _ = timed(lambda: resolve(spec, variants), repeat)
    plan_s, plan = timed(lambda: make_plan(spec), repeat)
    images = plan.images()
    counter = [0]

    def write_all() -> None:
        counter[0] += 1
        folder = out / f"{name}-{counter[0]}"
        for node in images:
            write_context(node.rendered, folder / node.name)

    write_s, _ = timed(write_all, repeat)

    def whole() -> None:
        counter[0] += 1
        folder = out / f"{name}-{counter[0]}"
        for node in make_plan(load_spec(path)).images():
            write_context(node.rendered, folder / node.name)

    total_s, _ = timed(whole, repeat)
    n = len(images)
    files = sum(1 + len(node.rendered.files) for node in images)
    rows = [
        (name, "load (yaml + fragments)", load_s, n),
        (name, "expand", expand_s, n),
        (name, "resolve", resolve_s, n),
        (name, "make_plan (expand..hash)", plan_s, n),
        (name, f"write contexts ({files} files)", write_s, n),
        (name, "total: load+plan+write", total_s, n),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["matrix", "tree"])
    parser.add_argument("--profile", action="store_true", help="cProfile load+make_plan once and print the top functions")
    args = parser.parse_args()
    kinds = {"matrix": matrix_spec, "tree": tree_spec}
    if args.only:
        kinds = {args.only: kinds[args.only]}
    tmp = Path(tempfile.mkdtemp(prefix="stacks-bench-"))
    try:
        rows: list[tuple] = []
        for name, make in kinds.items():
            path = make_stack(tmp / name, make())
            if args.profile:
                profiler = cProfile.Profile()
                profiler.runcall(lambda path=path: make_plan(load_spec(path)))
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
                continue
            rows += bench(name, path, args.repeat, tmp / "out")
        if rows:
            print(f"| stack  | stage                          | median s | images/s | (images, repeat={args.repeat})")
            print("|--------|--------------------------------|---------:|---------:|")
            for name, stage, seconds, n in rows:
                print(f"| {name:<6} | {stage:<30} | {seconds:8.3f} | {n / seconds:8.0f} | {n}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
