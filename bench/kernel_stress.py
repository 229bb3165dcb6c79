"""Stress the kernel checks: every kernel of the named images, all started side by side, ROUNDS times.

This is how `stacks test` meets kernels on a small CI machine: the images
are tested in parallel and the kernels of one image start together in one
idle container (four at a time). A kernel check that fails one round in
twenty teaches people to ignore a red CI, so this script counts, per kernel,
how often it passed and how long it took.

    python bench/kernel_stress.py [--rounds 20] [--slots N] [--probe PATH] IMAGE...

IMAGE is a variant name of the project's stacks.yaml (built already). It runs
the production code path (builder.check.idle, the run's kernel slots);
--slots and --probe change one thing at a time, to compare.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from builder.adapters.containers import RunSpec  # noqa: E402
from builder.app.workspace import Workspace  # noqa: E402
from builder.check import idle  # noqa: E402
from builder.check.options import kernel_slots  # noqa: E402
from builder.plan.plan import load_plan  # noqa: E402


def one_image(runner, node, slots: threading.Semaphore, probe: str | None) -> list[dict]:
    """The kernel checks of one image exactly as `stacks test` runs them (four workers, the run's kernel slots)."""
    kernels = idle.checks_for(node).kernels
    spec = RunSpec(node.name, "idle", entrypoint=["sleep"], command=["infinity"])
    if probe is not None:
        idle.KERNEL_PROBE = probe
    with runner.run(node.local_ref, spec) as container, ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i, item: idle._kernel(container, node.name, item[0], item[1], idle._probe_ports(i), slots),
                                range(len(kernels)), kernels))
    return [{"kernel": r.name.split()[1], "ok": r.status == "passed", "seconds": r.seconds,
             "error": None if r.status == "passed" else r.got[-300:]} for r in results]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("images", nargs="+")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--probe", type=Path, default=None, help="another version of the probe script (to compare)")
    parser.add_argument("--slots", type=int, default=None, help="kernels at once (default: one per core, as stacks test)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results")
    args = parser.parse_args()
    plan = load_plan(ROOT / "stacks.yaml", "buildkit")
    nodes = [plan[name] for name in args.images]
    probe = args.probe.read_text() if args.probe else None
    runner = Workspace().engine.containers
    rounds = []
    for number in range(1, args.rounds + 1):
        started = time.monotonic()
        slots = kernel_slots(args.slots)
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            found = list(pool.map(lambda n, s=slots: (n.name, one_image(runner, n, s, probe)), nodes))
        failed = [(image, r) for image, results in found for r in results if not r["ok"]]
        rounds.append({"round": number, "seconds": round(time.monotonic() - started, 1), "results": dict(found)})
        print(f"round {number}: {sum(len(r) for _, r in found) - len(failed)} passed, {len(failed)} failed "
              f"in {rounds[-1]['seconds']} s" + "".join(f"\n    {i} {r['kernel']}: {r['error']}" for i, r in failed), flush=True)
    every = [x for round_ in rounds for r in round_["results"].values() for x in r]
    bad = sum(not x["ok"] for x in every)
    print(f"{args.rounds} rounds: {len(every) - bad} passed, {bad} failed; slowest kernel check {max(x['seconds'] for x in every)} s")
    if args.out:
        args.out.write_text(json.dumps(rounds, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
