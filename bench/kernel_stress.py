"""Stress the kernel checks: every kernel of the named images, all started side by side, ROUNDS times.

This is how `stacks test` meets kernels on a small CI machine: the images
are tested in parallel and the kernels of one image start together in one
idle container (four at a time). A kernel check that fails one round in
twenty teaches people to ignore a red CI, so this script counts, per kernel,
how often it passed and how long it took.

    python bench/kernel_stress.py [--rounds 20] [--probe PATH] IMAGE...

IMAGE is a variant name of the project's stacks.yaml (built already).
--probe runs another version of the probe script (to compare).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from builder.plan.plan import load_plan  # noqa: E402

PORTS = 41000


def kernels_of(node) -> list:
    return [a.fragment.meta.kernel for a in node.chain if a.fragment.meta.kernel is not None]


def one_image(client, ref: str, kernels: list, probe: str) -> list[dict]:
    container = client.containers.run(ref, entrypoint=["sleep"], command=["infinity"], detach=True,
                                      labels={"io.stacks.bench": "kernel-stress"})
    try:
        def run(index_kernel):
            index, kernel = index_kernel
            started = time.monotonic()
            code, output = container.exec_run(
                ["sh", "-c", 'exec timeout "$1" python -c "$2" "$3" "$4" "$5" "$6"', "probe",
                 str(kernel.timeout + 30), probe, kernel.name, kernel.snippet, str(kernel.timeout), str(PORTS + 10 * index)])
            text = (output or b"").decode(errors="replace").strip()
            try:
                answer = json.loads(text.splitlines()[-1])
            except (ValueError, IndexError):
                answer = {"error": f"exit {code}: {text[-300:]}"}
            import re

            ok = not answer.get("error") and re.search(kernel.expect, answer.get("output", ""), re.MULTILINE) is not None
            return {"kernel": kernel.name, "ok": ok, "seconds": round(time.monotonic() - started, 1),
                    "error": None if ok else (answer.get("error") or answer.get("output"))}

        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(run, enumerate(kernels)))
    finally:
        container.remove(force=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("images", nargs="+")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--probe", type=Path, default=ROOT / "builder" / "check" / "probes" / "kernel_probe.py")
    parser.add_argument("--out", type=Path, default=None, help="JSON results")
    args = parser.parse_args()
    plan = load_plan(ROOT / "stacks.yaml", "buildkit")
    nodes = [plan[name] for name in args.images]
    probe = args.probe.read_text()
    client = docker.from_env(timeout=600)
    rounds = []
    for number in range(1, args.rounds + 1):
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            found = list(pool.map(lambda n: (n.name, one_image(client, n.local_ref, kernels_of(n), probe)), nodes))
        failed = [(image, r) for image, results in found for r in results if not r["ok"]]
        rounds.append({"round": number, "seconds": round(time.monotonic() - started, 1), "results": dict(found)})
        print(f"round {number}: {sum(len(r) for _, r in found) - len(failed)} passed, {len(failed)} failed "
              f"in {rounds[-1]['seconds']} s" + "".join(f"\n    {i} {r['kernel']}: {r['error']}" for i, r in failed), flush=True)
    total = sum(len(r) for round_ in rounds for r in round_["results"].values())
    bad = sum(not x["ok"] for round_ in rounds for r in round_["results"].values() for x in r)
    slowest = max(x["seconds"] for round_ in rounds for r in round_["results"].values() for x in r)
    print(f"{args.rounds} rounds: {total - bad} passed, {bad} failed; slowest kernel check {slowest} s")
    if args.out:
        args.out.write_text(json.dumps(rounds, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
