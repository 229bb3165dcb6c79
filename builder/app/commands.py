"""`stacks build`, `stacks test` and `stacks plan --explain`: a Workspace wires the stages, this module talks to the user.

Ctrl-C asks running builds to stop (BuildKit aborts; no tag is written for
an unfinished image), marks what never started as cancelled, still writes
the report, and exits 130. A second Ctrl-C exits at once.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import click

from builder.adapters.engine import Engine
from builder.app import noop
from builder.adapters.emulation import SLOWDOWN
from builder.app.workspace import Workspace
from builder.building.images import build_nodes, why_build
from builder.building.site import SiteError
from builder.building.progress import Progress
from builder.cache.receipt import inputs_digest
from builder.inventory.files import write_manifests
from builder.plan.plan import Plan
from builder.reports.report import write_reports, write_test_reports

FAILED_STATES = ("failed", "skipped", "cancelled")


def _say(line: str) -> None:
    click.echo(line, err=True)


def workspace(spec_file: Path, out: Path = Path("build")) -> Workspace:
    return Workspace(spec_file=spec_file, out=out, say=_say)


def run_build(spec_file: Path, images: list[str], jobs: int | None, explain: bool, out: Path,
              ca_certs: tuple[Path, ...], only_verified: bool = False,
              cache: tuple[str | None, bool] = (None, False), receipt: list[str] | None = None,
              no_cache: bool = False, platforms: tuple[str, ...] = ()) -> int:
    """The full build, one platform after the other; with `receipt` (the command line, as `builder.app.noop`
    keys it) the build leaves a receipt of all its platforms for the next run of that command. `no_cache`
    builds the selected images again without any build cache."""
    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        _say(line)

    ws = Workspace(spec_file=spec_file, out=out, say=say)
    engine = ws.engine
    description = f"{engine.describe()}; at {ws.engine_address.describe()}"  # which engine, and why that one
    _say(description)
    plans = ws.platform_plans(platforms)
    for plan in plans:
        problem = ws.emulation_problem(plan)
        if problem is not None:
            raise click.ClickException(problem)
    runs = [_build_platform(ws, plan, images, jobs, explain, ca_certs, only_verified, cache, no_cache, description)
            for plan in plans]
    if receipt is not None:
        # the notes: what planning said (problems, images left out), replayed by the no-op answer
        noop.record(receipt, ws.env, ws.engine_address, [b for _, b in runs if b is not None], said, description)
    codes = [code for code, _ in runs]
    return 130 if 130 in codes else max(codes)


def _build_platform(ws: Workspace, plan: Plan, images: list[str], jobs: int | None, explain: bool,
                    ca_certs: tuple[Path, ...], only_verified: bool, cache: tuple[str | None, bool], no_cache: bool,
                    description: str) -> tuple[int, noop.PlatformBuild | None]:
    """Build the selection of one platform's plan; its report goes to that platform's out folder.
    (exit status, what its receipt needs: None when none of the named images is built for it)."""
    engine, out = ws.engine, ws.platform_out(plan)
    wanted = _built_for(ws, plan, images)
    if images and not wanted:
        return 0, None
    nodes = ws.select(plan, wanted, only_verified)
    options = replace(ws.build_options(plan, jobs, ca_certs), out_dir=out, cache=ws.registry_cache(plan, cache),
                      no_cache=no_cache)
    try:
        options.site.check(engine.mode)
    except SiteError as exc:
        raise click.ClickException(str(exc)) from None
    inputs = tuple(noop.receipt_inputs(plan, options.site.ca_certificates, ws.env))
    digest = inputs_digest(inputs)  # before building: an edit during the build is a change
    if plan.foreign:
        _say(f"{plan.platform}: building {len(nodes)} images under QEMU emulation (this engine is {plan.native})")
    if explain:
        for line in explain_lines(engine, nodes):
            _say(line)
    stop = threading.Event()
    previous = _install_interrupt(engine, stop)
    progress = Progress(len(nodes))
    started = time.monotonic()
    try:
        results = build_nodes(plan, nodes, engine, options, progress, stop)
    finally:
        progress.close()
        signal.signal(signal.SIGINT, previous)
    header = {"spec": str(plan.spec.path), "engine": description, "jobs": options.jobs, "platform": plan.platform,
              "seconds": round(time.monotonic() - started, 1)}
    json_path, md_path = write_reports(results, out, header)
    failed = [r for r in results if r.status in FAILED_STATES]
    _say(f"report: {json_path} and {md_path}")
    complete = not failed and not stop.is_set() and options.cache is None
    built = noop.PlatformBuild(plan, nodes, out, inputs, digest, options.jobs, complete)
    if stop.is_set():
        return 130, built
    if failed:
        _say(f"{len(failed)} of {len(results)} images did not build for {plan.platform}: "
             + ", ".join(f"{r.name} ({r.status})" for r in failed))
        return 1, built
    return 0, built


def _built_for(ws: Workspace, plan: Plan, images: list[str]) -> list[str]:
    """The named images this platform builds; those its plan leaves out are said and dropped (not an error:
    `stacks build --platform linux/arm64 gpu-lab` on an amd64-only image builds nothing for arm64)."""
    kept = []
    for name in images:
        reasons = [why for variant, image, why in plan.left_out if name in (variant, image)]
        if reasons and name not in plan.graph and not any(plan[n].image == name for n in plan.graph):
            ws.say(f"{plan.platform}: {name} is not built for this platform ({reasons[0]})")
            continue
        kept.append(name)
    return kept


def explain_plan(spec_file: Path, platforms: tuple[str, ...] = ()) -> str:
    ws = workspace(spec_file)
    return "".join("\n".join(explain_lines(ws.engine, list(plan))) + "\n" for plan in ws.platform_plans(platforms))


def explain_rows(spec_file: Path, platforms: tuple[str, ...] = ()) -> list[dict]:
    """`stacks plan --json --explain`: the rows of `plan --json`, each with 'build': {cached, reasons}."""
    ws = workspace(spec_file)
    rows = []
    for node in (node for plan in ws.platform_plans(platforms) for node in plan):
        cached, reasons = why_build(ws.engine, node)
        rows.append({**node.summary(), "build": {"cached": cached, "reasons": reasons}})
    return rows


def explain_lines(engine: Engine, nodes: list) -> list[str]:
    """One line per image: cached, or built and why."""
    lines = []
    for node in nodes:
        cached, reasons = why_build(engine, node)
        lines.append(f"{node.name} ({node.platform}): {'cached' if cached else 'build'}: {'; '.join(reasons)}")
    return lines


def _install_interrupt(engine: Engine, stop: threading.Event):
    def handler(signum, frame):  # noqa: ARG001
        if stop.is_set():
            click.echo("\ninterrupted twice: exiting now", err=True)
            os._exit(130)
        click.echo("\ninterrupt: stopping builds (Ctrl-C again to exit at once)", err=True)
        stop.set()
        engine.cancel()

    if threading.current_thread() is threading.main_thread():
        return signal.signal(signal.SIGINT, handler)
    return signal.getsignal(signal.SIGINT)


def run_tests(spec_file: Path, images: list[str], out: Path, jobs: int | None, only_verified: bool = False,
              force: bool = False, cache: tuple[str | None, bool] = (None, False),
              allow_not_run: tuple[str, ...] = (), platforms: tuple[str, ...] = ()) -> int:
    """`stacks test`: smoke-test built images, one platform after the other; nothing that is not built is
    tested; passed earlier = skipped."""
    ws = workspace(spec_file, out)
    plans = ws.platform_plans(platforms)
    for plan in plans:
        problem = ws.emulation_problem(plan)
        if problem is not None:
            raise click.ClickException(problem)
    return max(_test_platform(ws, plan, images, jobs, only_verified, force, cache, allow_not_run) for plan in plans)


def _test_platform(ws: Workspace, plan: Plan, images: list[str], jobs: int | None, only_verified: bool, force: bool,
                   cache: tuple[str | None, bool], allow_not_run: tuple[str, ...]) -> int:
    out = ws.platform_out(plan)
    wanted = _built_for(ws, plan, images)
    if images and not wanted:
        return 0
    nodes = [n for n in ws.select(plan, wanted, only_verified) if n.kind == "image"]
    if wanted:
        chosen = set(wanted)
        nodes = [n for n in nodes if n.name in chosen or n.image in chosen]
    stage = ws.test_stage(plan, jobs, force, cache, allow_not_run)
    missing = stage.missing(nodes)
    if missing:
        flag = f" --platform {plan.platform}" if plan.foreign else ""
        raise click.ClickException(f"not built yet for {plan.platform}: {', '.join(missing)}; "
                                   f"run `stacks build{flag}` first")
    emulated = (f"; {plan.platform} under QEMU emulation, timeouts x{SLOWDOWN:g}" if stage.emulated
                else f"; {plan.platform}")
    _say(f"testing {len(nodes)} images (hardware: {', '.join(sorted(stage.options.hardware)) or 'no GPU'}{emulated})")
    run = stage.run(plan, nodes, _say)
    index = write_manifests(out, run.manifests, ws.manifests.sbom)
    note = (f"Platform {plan.platform}, run under QEMU user emulation on a {plan.native} engine: every timeout "
            f"x{SLOWDOWN:g}; checks emulation cannot run are 'not run' with the reason." if stage.emulated
            else f"Platform {plan.platform}.")
    paths = write_test_reports(run.results, out, {n.name: n.hash for n in run.ran}, run.earlier_summaries(), note)
    counts = {s: sum(r.status == s for r in run.results) for s in ("passed", "failed", "not run")}
    _say(", ".join(f"{n} {s}" for s, n in counts.items()) + f" checks in {len(run.ran)} images"
         + (f"; {len(run.earlier)} passed earlier (cached; --force tests them again)" if run.earlier else ""))
    _say("JUnit XML: " + str(paths[2]))
    _say("reports: " + ", ".join(str(p) for p in (*paths[:2], out / "report.md") if p.exists()))
    if index is not None:
        _say(f"manifests and SBOMs: {index.parent}/ ({len(run.manifests)} images)")
    return 1 if run.failed else 0
