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
from builder.app.workspace import Workspace
from builder.build.images import build_nodes, why_build
from builder.build.site import SiteError
from builder.build.progress import Progress
from builder.cache.receipt import inputs_digest
from builder.reports.report import write_reports

FAILED_STATES = ("failed", "skipped", "cancelled")


def _say(line: str) -> None:
    click.echo(line, err=True)


def workspace(spec_file: Path, out: Path = Path("build")) -> Workspace:
    return Workspace(spec_file=spec_file, out=out, say=_say)


def run_build(spec_file: Path, images: list[str], jobs: int | None, explain: bool, out: Path,
              ca_certs: tuple[Path, ...], only_verified: bool = False,
              cache: tuple[str | None, bool] = (None, False), receipt: list[str] | None = None) -> int:
    """The full build; with `receipt` (the command line, as `builder.app.noop` keys it) it leaves a receipt
    for the next run of that command."""
    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        _say(line)

    ws = Workspace(spec_file=spec_file, out=out, say=say)
    engine = ws.engine
    description = f"{engine.describe()}; at {ws.engine_address.describe()}"  # which engine, and why that one
    _say(description)
    plan = ws.build_plan
    nodes = ws.select(plan, images, only_verified)
    options = replace(ws.build_options(plan, jobs, ca_certs), cache=ws.registry_cache(plan, cache))
    try:
        options.site.check(engine.mode)
    except SiteError as exc:
        raise click.ClickException(str(exc)) from None
    inputs = noop.receipt_inputs(plan, options.site.ca_certificates, ws.env)
    digest, notes = inputs_digest(inputs), tuple(said)  # before building: an edit during the build is a change
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
    header = {"spec": str(spec_file), "engine": description, "jobs": options.jobs,
              "seconds": round(time.monotonic() - started, 1)}
    json_path, md_path = write_reports(results, out, header)
    failed = [r for r in results if r.status in FAILED_STATES]
    _say(f"report: {json_path} and {md_path}")
    if receipt is not None:
        complete = not failed and not stop.is_set() and options.cache is None
        noop.record(receipt, ws.env, ws.engine_address, plan, nodes, out, inputs, digest, notes, description, options.jobs, complete)
    if stop.is_set():
        return 130
    if failed:
        _say(f"{len(failed)} of {len(results)} images did not build: "
             + ", ".join(f"{r.name} ({r.status})" for r in failed))
        return 1
    return 0


def explain_plan(spec_file: Path) -> str:
    ws = workspace(spec_file)
    return "\n".join(explain_lines(ws.engine, list(ws.build_plan))) + "\n"


def explain_lines(engine: Engine, nodes: list) -> list[str]:
    """One line per image: cached, or built and why."""
    lines = []
    for node in nodes:
        cached, reasons = why_build(engine, node)
        lines.append(f"{node.name}: {'cached' if cached else 'build'}: {'; '.join(reasons)}")
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
              allow_not_run: tuple[str, ...] = ()) -> int:
    """`stacks test`: smoke-test built images; nothing that is not built is tested; passed earlier = skipped."""
    from builder.cache.skipping import RecordedVersions, run_tests_by_record
    from builder.plan.versions import commands, probes
    from builder.publish.versions import read_versions
    from builder.check.gate import apply_gate
    from builder.reports.report import write_test_reports
    from builder.check.smoke import size_check, smoke_image

    ws = workspace(spec_file, out)
    engine, plan = ws.engine, ws.build_plan
    nodes = [n for n in ws.select(plan, images, only_verified) if n.kind == "image"]
    if images:
        wanted = set(images)
        nodes = [n for n in nodes if n.name in wanted or n.image in wanted]
    local = {n.name: engine.image(n.local_ref) for n in nodes}
    remote = ws.registry_cache(plan, cache)
    missing = [n.name for n in nodes if local[n.name] is None and (remote is None or remote.lookup(n) is None)]
    if missing:
        raise click.ClickException(f"not built yet: {', '.join(missing)}; run `stacks build` first")
    options = ws.check_options(engine)
    click.echo(f"testing {len(nodes)} images (hardware: {', '.join(sorted(options.hardware)) or 'no GPU'})", err=True)

    def one(node):
        results = smoke_image(engine.containers, node, options)
        budget = size_check(engine, node)
        results = apply_gate(node, results + ([budget] if budget else []), frozenset(allow_not_run))
        failed = [r for r in results if r.status == "failed"]
        click.echo(f"{'FAILED' if failed else 'passed'} {node.name}: {len(results) - len(failed)}/{len(results)} checks", err=True)
        for r in failed:
            click.echo(f"    {r.name} ({r.fragment}): expected {r.expected}; got {r.got[-300:]}", err=True)
        return results

    def versions(node):
        """Read once here, kept in the record: `stacks push` then pulls no image that is only in the cache."""
        if not node.push:
            return None
        wanted = probes(node.chain, plan[node.root].base)
        report = read_versions(engine.containers, node.local_ref, node.name, wanted)
        return RecordedVersions(commands(wanted), report.versions, report.failures)

    run = run_tests_by_record(nodes, {name: image.id for name, image in local.items() if image is not None}, one,
                              lambda line: click.echo(line, err=True), jobs or max(1, os.cpu_count() or 1), ws.records,
                              force, cache=remote, waived=frozenset(allow_not_run), versions_of=versions)
    results = run.results
    paths = write_test_reports(results, out, {n.name: n.hash for n in run.ran}, run.earlier_summaries())
    counts = {s: sum(r.status == s for r in results) for s in ("passed", "failed", "not run")}
    click.echo(", ".join(f"{n} {s}" for s, n in counts.items()) + f" checks in {len(run.ran)} images"
               + (f"; {len(run.earlier)} passed earlier (cached; --force tests them again)" if run.earlier else ""), err=True)
    click.echo("JUnit XML: " + str(paths[2]), err=True)
    click.echo("reports: " + ", ".join(str(p) for p in (*paths[:2], out / "report.md") if p.exists()), err=True)
    return 1 if any(r.status == "failed" for r in results) or run.unavailable else 0

