"""`stacks build` and `stacks plan --explain`: wire the engine, the plan and the reports together.

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
from urllib.parse import urlsplit

import click

from builder.build.images import BuildOptions, build_nodes, why_build
from builder.adapters.docker import Engine, detect
from builder.plan.plan import Node, Plan, load_plan
from builder.build.progress import Progress
from builder.reports.report import write_reports

FAILED_STATES = ("failed", "skipped", "cancelled")


def build_options(plan: Plan, out: Path, jobs: int | None, ca_certs: tuple[Path, ...]) -> BuildOptions:
    """Merge command line, environment and stacks.yaml settings (in that order of precedence)."""
    settings = plan.spec.model.settings.build
    base = plan.spec.path.parent
    certs = list(ca_certs)
    certs += [Path(p) for p in os.environ.get("STACKS_CA_CERTS", "").split(os.pathsep) if p]
    certs += [base / p for p in settings.ca_certificates]
    return BuildOptions(
        out_dir=out,
        jobs=jobs or settings.jobs or max(1, os.cpu_count() or 1),
        ca_certificates=tuple(dict.fromkeys(certs)),
        pip_index_url=os.environ.get("STACKS_PIP_INDEX_URL") or settings.pip_index_url,
        npm_registry=os.environ.get("STACKS_NPM_REGISTRY") or settings.npm_registry,
        apt_mirror=os.environ.get("STACKS_APT_MIRROR") or settings.apt_mirror,
    )


def check_options(options: BuildOptions, mode: str) -> None:
    """Refuse settings that would put a secret into an image or its history."""
    for name, url in (("pip_index_url", options.pip_index_url), ("npm_registry", options.npm_registry)):
        if url and "@" in (urlsplit(url).netloc or ""):
            raise click.ClickException(
                f"{name} contains credentials; build arguments are visible in `docker history`, so stacks refuses "
                "to pass them. Use a mirror that needs no credentials on the build network."
            )
    if mode == "classic" and options.ca_certificates:
        raise click.ClickException(
            "extra CA certificates need BuildKit (they are mounted as build secrets); the classic builder could "
            "only bake them into a layer. Install a docker CLI with BuildKit (buildx) or drop --ca-cert/STACKS_CA_CERTS."
        )


def select_nodes(plan: Plan, images: list[str], only_verified: bool) -> list[Node]:
    """The selection, telling the user which images `--only-verified` leaves out and why."""
    nodes = plan.select(images, only_verified)
    if only_verified:
        left_out = [n for n in plan.select(images) if not n.verified and n.kind == "image"]
        if left_out:
            click.echo(f"--only-verified: leaving out {len(left_out)} unverified images: "
                       + ", ".join(n.name for n in left_out), err=True)
    return nodes


def open_run_cache(plan: Plan, engine: Engine, choice: tuple[str | None, bool]):
    """The registry cache of this run: --cache/STACKS_CACHE, else settings.cache; 'none' = no cache."""
    from builder.cache.registry_cache import open_cache

    location, read_only = choice
    location = location or plan.spec.model.settings.cache
    if location is None or location.lower() == "none":
        return None
    return open_cache(location, engine, not read_only, lambda line: click.echo(line, err=True))


def run_build(spec_file: Path, images: list[str], jobs: int | None, explain: bool, out: Path,
              ca_certs: tuple[Path, ...], only_verified: bool = False,
              cache: tuple[str | None, bool] = (None, False)) -> int:
    engine = detect()
    description = engine.describe()
    click.echo(description, err=True)
    plan = load_plan(spec_file, engine.mode)  # type: ignore[arg-type]
    nodes = select_nodes(plan, images, only_verified)
    options = replace(build_options(plan, out, jobs, ca_certs), cache=open_run_cache(plan, engine, cache))
    missing = [str(p) for p in options.ca_certificates if not Path(p).is_file()]
    if missing:
        raise click.ClickException(f"CA certificate file not found: {', '.join(missing)}")
    check_options(options, engine.mode)
    if explain:
        for line in explain_lines(engine, nodes):
            click.echo(line, err=True)
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
    click.echo(f"report: {json_path} and {md_path}", err=True)
    if stop.is_set():
        return 130
    if failed:
        click.echo(f"{len(failed)} of {len(results)} images did not build: "
                   + ", ".join(f"{r.name} ({r.status})" for r in failed), err=True)
        return 1
    return 0


def explain_plan(spec_file: Path) -> str:
    engine = detect()
    plan = load_plan(spec_file, engine.mode)  # type: ignore[arg-type]
    return "\n".join(explain_lines(engine, list(plan))) + "\n"


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
              force: bool = False, cache: tuple[str | None, bool] = (None, False)) -> int:
    """`stacks test`: smoke-test built images; nothing that is not built is tested; passed earlier = skipped."""
    from builder.cache.skipping import run_tests_by_record
    from builder.reports.report import write_test_reports
    from builder.check.smoke import detect_hardware, size_check, smoke_image

    engine = detect()
    plan = load_plan(spec_file, engine.mode)  # type: ignore[arg-type]
    nodes = [n for n in select_nodes(plan, images, only_verified) if n.kind == "image"]
    if images:
        wanted = set(images)
        nodes = [n for n in nodes if n.name in wanted or n.image in wanted]
    local = {n.name: engine.image(n.local_ref) for n in nodes}
    remote = open_run_cache(plan, engine, cache)
    missing = [n.name for n in nodes if local[n.name] is None and (remote is None or remote.lookup(n) is None)]
    if missing:
        raise click.ClickException(f"not built yet: {', '.join(missing)}; run `stacks build` first")
    hardware = detect_hardware(engine)
    click.echo(f"testing {len(nodes)} images (hardware: {', '.join(sorted(hardware)) or 'no GPU'})", err=True)

    def one(node):
        results = smoke_image(engine, node, out, hardware)
        budget = size_check(engine, node)
        results += [budget] if budget else []
        failed = [r for r in results if r.status == "failed"]
        click.echo(f"{'FAILED' if failed else 'passed'} {node.name}: {len(results) - len(failed)}/{len(results)} checks", err=True)
        for r in failed:
            click.echo(f"    {r.name} ({r.fragment}): expected {r.expected}; got {r.got[-300:]}", err=True)
        return results

    run = run_tests_by_record(nodes, {name: image.id for name, image in local.items() if image is not None}, one,
                              lambda line: click.echo(line, err=True), jobs or max(1, os.cpu_count() or 1), force,
                              cache=remote)
    results = run.results
    paths = write_test_reports(results, out, {n.name: n.hash for n in run.ran}, run.earlier_summaries())
    counts = {s: sum(r.status == s for r in results) for s in ("passed", "failed", "not run")}
    click.echo(", ".join(f"{n} {s}" for s, n in counts.items()) + f" checks in {len(run.ran)} images"
               + (f"; {len(run.earlier)} passed earlier (cached; --force tests them again)" if run.earlier else ""), err=True)
    click.echo("JUnit XML: " + str(paths[2]), err=True)
    click.echo("reports: " + ", ".join(str(p) for p in (*paths[:2], out / "report.md") if p.exists()), err=True)
    return 1 if any(r.status == "failed" for r in results) or run.unavailable else 0

