"""`stacks build` with nothing to do, answered from the last build's receipt (`builder.cache.receipt`).

`answer` runs before anything heavy is imported: it re-hashes the inputs the
receipt names, asks the engine for one raw image listing, and when both
still match writes the reports the full run would have written (every image
cached; one per platform) and returns the exit status. Otherwise it returns
None and the full build runs; that run ends with `record`, which leaves the
receipt for the next one (or removes a stale one when the run failed, was
interrupted, or used a registry cache, whose contents a receipt cannot
vouch for).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.adapters.engine_socket import ask, daemon_version, images_of, list_images
from builder.adapters.engine_address import EngineAddress
from builder.app.environment import cache_dir, engine_address
from builder.cache.receipt import Receipt, ReceiptNode, ReceiptStore, inputs_digest, invocation_key, still_true

if TYPE_CHECKING:
    from builder.building.results import ImageResult
    from builder.plan.plan import Node, Plan

CACHED_REASON = "an image with this content hash exists"
TOOL_DIR = Path(__file__).resolve().parent.parent  # the tool's code and data: a new version plans anew


def applies(argv: Sequence[str]) -> bool:
    """Only `stacks build ...` without --explain, --no-cache or --help can be answered from a receipt."""
    return bool(argv) and argv[0] == "build" and not any(a in ("--explain", "--no-cache", "--help", "-h") for a in argv)


def _store(env: Mapping[str, str]) -> ReceiptStore:
    return ReceiptStore(cache_dir(env) / "receipts")


def answer(argv: Sequence[str], env: Mapping[str, str], say: Callable[[str], None]) -> int | None:
    """The exit status of `stacks ARGV` if it is a build with nothing to do, or None when the full build must run.

    The receipt is found by the very command line (with the folder and the
    environment): the same words parse to the same options, so nothing needs
    parsing, and the command line library is not even imported.
    """
    if not applies(argv):
        return None
    started = time.monotonic()
    address = engine_address(env)
    receipt = _store(env).load(invocation_key(_invocation(argv, address.host), env))
    if receipt is None:
        return None
    ping, listing = ask(address, "/_ping"), ask(address, "/images/json")  # answered while we hash
    unchanged = inputs_digest(Path(p) for p in receipt.inputs) == receipt.digest
    same_engine = ping.header("Server") == receipt.engine_version
    rows = images_of(listing.json())
    if not unchanged or not same_engine or rows is None or not still_true(receipt, rows):
        return None
    say(receipt.engine)
    for note in receipt.notes:
        say(note)
    results = _cached_results(receipt, {str(r.get("Id")): r.get("Size") for r in rows})
    for platform, out in receipt.outs.items():
        _report([r for r in results if r.platform == platform], Path(out), receipt, platform, started, say)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(receipt.written))
    say(f"nothing changed since the build of {when}: inputs and images as it left them (docs/cache.md)")
    return 0


def _invocation(argv: Sequence[str], host: str) -> dict[str, Any]:
    """What names a receipt besides the environment: the command line and the engine (a context switched with
    `docker context use` changes no variable, but another engine's images vouch for nothing)."""
    return {"argv": list(argv), "engine": host}


def _cached_results(receipt: Receipt, sizes: Mapping[str, Any]) -> list[ImageResult]:
    from builder.building.results import ImageResult

    return [ImageResult(n.name, n.kind, n.parent, n.hash, n.ref, status="cached", reasons=[CACHED_REASON],
                        size=sizes.get(n.image_id, n.size), size_budget=n.size_budget, platform=n.platform)
            for n in receipt.nodes]


def _report(results: list[ImageResult], out: Path, receipt: Receipt, platform: str, started: float,
            say: Callable[[str], None]) -> None:
    from builder.plan.sizes import human_size
    from builder.reports.report import write_reports

    for count, result in enumerate(results, 1):
        say(f"[{count}/{len(results)}] cached {result.name} in 0.0s ({human_size(result.size)})")
    header = {"spec": receipt.spec, "engine": receipt.engine, "jobs": receipt.jobs, "platform": platform,
              "seconds": round(time.monotonic() - started, 1)}
    json_path, md_path = write_reports(results, out, header)
    say(f"report: {json_path} and {md_path}")


@dataclass(frozen=True)
class PlatformBuild:
    """One platform of a full build, as its receipt needs it: what was selected, where the report went, and
    what the build was made from, hashed before it began (an edit during the build is a change)."""

    plan: Plan
    nodes: list[Node]
    out: Path
    inputs: tuple[Path, ...]
    digest: str
    jobs: int
    complete: bool  # built without failure or interruption, and without a registry cache


def record(argv: Sequence[str], env: Mapping[str, str], address: EngineAddress, builds: Sequence[PlatformBuild],
           notes: Sequence[str], engine: str) -> None:
    """After a full build of `stacks ARGV` (one or several platforms): leave one receipt when every platform
    completed from the same inputs and every image is where it says, else drop any receipt of that command
    line."""
    store, key = _store(env), invocation_key(_invocation(argv, address.host), env)
    found = _every_platform(address, builds)
    version = daemon_version(address) if found is not None else None
    if found is None or version is None:
        store.drop(key)
        return
    first = builds[0]
    store.save(Receipt(key, tuple(str(p) for p in first.inputs), first.digest, tuple(found), tuple(notes), engine,
                       version, spec=str(first.plan.spec.path), outs={b.plan.platform: str(b.out) for b in builds},
                       jobs=first.jobs, written=time.time()))


def _every_platform(address: EngineAddress, builds: Sequence[PlatformBuild]) -> list[ReceiptNode] | None:
    """Every node of every platform as the engine now holds it; None unless each platform completed, all from
    the same inputs, and every image is where its build left it."""
    if len({(b.inputs, b.digest) for b in builds}) != 1 or not all(b.complete for b in builds):
        return None
    rows = list_images(address)
    if rows is None:
        return None
    found: list[ReceiptNode] = []
    for build in builds:
        nodes = _receipt_nodes(build.plan, build.nodes, rows)
        if nodes is None:
            return None
        found += nodes
    return found


def receipt_inputs(plan: Plan, ca_certificates: Sequence[Path], env: Mapping[str, str]) -> list[Path]:
    """Everything the plan and the build path were made from (see `builder.cache.receipt`)."""
    return [plan.spec.path.resolve(), plan.spec.lock.path.resolve(), *(d.resolve() for d in plan.spec.fragment_dirs), TOOL_DIR,
            *(Path(p).resolve() for p in ca_certificates), cache_dir(env) / "engine-probe.json"]


def _receipt_nodes(plan: Plan, nodes: list[Node], rows: list[dict[str, Any]]) -> list[ReceiptNode] | None:
    from builder.adapters.engine import ImageInfo
    from builder.cache.identity import own_build
    from builder.plan.plan import HASH_LABEL

    listing = [ImageInfo.from_listing(r) for r in rows]
    found = []
    for node in nodes:
        tags: tuple[str, ...]
        if node.kind == "pull":
            image = next((i for i in listing if node.local_ref in i.tags), None)
            tags, labels = (node.local_ref,), {}
        else:
            image = own_build(listing, node.name, node.hash, node.local_ref)
            tags, labels = (node.local_ref, node.latest_ref), {HASH_LABEL: node.hash}
        if image is None or not set(tags) <= set(image.tags):
            return None
        found.append(ReceiptNode(node.name, node.kind, node.parent, node.hash, node.local_ref, image.id, tags, labels,
                                 image.size, node.size_budget, node.platform))
    return found
