"""Build a plan on a Docker engine: cached images are skipped, the rest built in DAG order.

Per node: take a lock on its content hash (two runs on one engine then never
build the same image twice at once), look for an image carrying that hash,
and otherwise pull, bootstrap or build it. Every image is labelled with its
hash and the inputs behind it, which is what lets the next run skip it and
lets `--explain` say what changed.
"""
from __future__ import annotations

import fcntl
import json
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from builder.adapters.bootstrap import bootstrap_tarball
from builder.adapters.engine import BuildFailed, BuildRequest, Cancelled, Engine, ImageInfo
from builder.plan.hashing import explain_change
from builder.plan.labels import INPUTS_LABEL, NAME_LABEL, image_labels
from builder.plan.plan import HASH_LABEL, Node, Plan
from builder.plan.render import write_context
from builder.build.results import ImageResult
from builder.build.scheduler import BuildStatus, Outcome, Task, run_dag
from builder.build.site import Site
from builder.cache.identity import own_build

LOG_TAIL = 30


@dataclass(frozen=True)
class BuildOptions:
    out_dir: Path = Path("build")
    jobs: int = 1
    site: Site = field(default_factory=Site)
    lock_dir: Path = Path("build/locks")  # per-hash locks; the Workspace puts them in the user's cache
    cache: Any = None  # a builder.cache.registry_cache.RegistryCache, or None


def why_build(engine: Engine, node: Node) -> tuple[bool, list[str]]:
    """(cached?, reasons): reasons name what changed since this image was last built here."""
    if _present(engine, node):
        return True, ["an image with this content hash exists"]
    previous = _latest_with_label(engine, NAME_LABEL, node.name)
    old = None
    if previous is not None:
        try:
            old = json.loads(previous.labels.get(INPUTS_LABEL, "null"))
        except json.JSONDecodeError:
            old = None
    if node.kind == "pull":
        return False, ["not present locally: will pull"]
    return False, explain_change(old, node.inputs)


def build_nodes(
    plan: Plan, nodes: list[Node], engine: Engine, options: BuildOptions, progress: Any, stop: threading.Event
) -> list[ImageResult]:
    """Build `nodes` (parents first); returns one result per node, in the same order."""
    results = {n.name: ImageResult(n.name, n.kind, n.parent, n.hash, n.local_ref, size_budget=n.size_budget) for n in nodes}
    (options.out_dir / "logs").mkdir(parents=True, exist_ok=True)
    secrets, build_args = options.site.build_environment(options.out_dir)
    by_name = {n.name: n for n in nodes}

    listing = engine.listing(HASH_LABEL)  # one call serves every unchanged image
    prefix = plan.spec.model.settings.local_prefix
    cache = options.cache

    def make(node: Node, result: ImageResult) -> None:
        _make(plan, node, engine, options, secrets, build_args, result)

    def work(task: Task) -> Outcome:
        node, result = by_name[task.name], results[task.name]
        started = time.monotonic()
        latest = f"{prefix}/{node.name}:latest"
        status: BuildStatus
        try:
            image = own_build(listing, node.name, node.hash, node.local_ref) if node.kind != "pull" else None
            if image is not None and node.local_ref in image.tags:
                status, result.reasons = "cached", ["an image with this content hash exists"]
            else:
                with _hash_lock(options.lock_dir, node.hash):
                    cached, result.reasons = why_build(engine, node)
                    hit = None if cached or cache is None else cache.lookup(node)
                    if cached:
                        status = "cached"
                    elif hit is not None:  # pulled only when something here needs it (a child to build, a test)
                        status, result.reasons = "cached", [f"in the cache as {hit.ref}"]
                    else:
                        progress.building(node, result.reasons)
                        _ensure_local(plan, node.parent, engine, cache, make, options.lock_dir)
                        make(node, result)
                        status = "built"
                        if cache is not None:
                            cache.push_image(node)
                image = _listed(engine, node)
            if status == "cached" and image is not None and cache is not None and node.kind != "pull" \
                    and cache.lookup(node) is None:
                cache.push_image(node)  # built here earlier, before the cache was used: fill it
            if image is not None and node.kind != "pull" and latest not in image.tags:
                engine.tag(image.id, latest)
            result.size = image.size if image is not None else None
        except Cancelled:
            status, result.error = "cancelled", "run interrupted"
        except BuildFailed as exc:
            status, result.error, result.step = "failed", str(exc), exc.step
        except Exception as exc:  # engine errors (API, disk full...) fail this image only
            status, result.error = "failed", f"{type(exc).__name__}: {exc}"
        result.seconds = round(time.monotonic() - started, 1)
        if status == "failed" and result.log:
            result.log_tail = _tail(Path(result.log), LOG_TAIL)
        return Outcome(node.name, status, result, result.error or "")

    def done(outcome: Outcome) -> None:
        result = results[outcome.name]
        if result.status == "pending":
            result.status = outcome.status
        if outcome.status in ("skipped", "cancelled") and not result.error:
            result.error = outcome.reason
        progress.done(result)

    tasks = [Task(n.name, n.parent, n.weight) for n in nodes]
    outcomes = run_dag(tasks, work, options.jobs, on_start=lambda t: progress.started(by_name[t.name]), on_done=done, stop=stop)
    for name, outcome in outcomes.items():
        results[name].status = outcome.status
    return [results[n.name] for n in nodes]


def _make(plan: Plan, node: Node, engine: Engine, options: BuildOptions, secrets: dict, build_args: dict, result: ImageResult) -> None:
    log_path = options.out_dir / "logs" / f"{node.name}.log"
    result.log = str(log_path)
    with log_path.open("w", encoding="utf-8") as log:
        def sink(line: str) -> None:
            log.write(line + "\n")
            log.flush()

        if node.kind == "pull":
            sink(f"pulling {node.local_ref}")
            engine.pull(node.local_ref)
            return
        labels = image_labels(plan, node)
        if node.kind == "bootstrap":
            assert node.base and node.base.bootstrap
            workdir = options.out_dir / "tmp"
            workdir.mkdir(parents=True, exist_ok=True)
            tarball = bootstrap_tarball(node.base.bootstrap, workdir, sink, options.site.apt_mirror)
            try:
                engine.import_tarball(tarball, node.local_ref, labels)
            finally:
                shutil.rmtree(tarball.parent, ignore_errors=True)
            return
        assert node.rendered is not None
        context = options.out_dir / "contexts" / node.name
        write_context(node.rendered, context)
        args = {**build_args, **node.build_args}
        cache = options.cache if options.cache is not None and options.cache.enabled else None
        layers = (cache.latest_ref(node),) if cache is not None else ()
        engine.build(BuildRequest(context, node.local_ref, labels, args, secrets, layers, cache is not None), sink)


def _ensure_local(plan: Plan, name: str | None, engine: Engine, cache: Any, make: Callable[[Node, ImageResult], None],
                  lock_dir: Path) -> None:
    """Make the image `name` present in the engine (a child is about to build FROM it): it is there, or it is
    pulled from the cache, or (the cache announced it but could not give it) built here, its ancestors first."""
    if name is None:
        return
    node = plan[name]
    with _hash_lock(lock_dir, node.hash):
        if _present(engine, node):
            return
        hit = cache.lookup(node) if cache is not None else None
        if hit is not None and cache.pull(node, hit):
            return
        _ensure_local(plan, node.parent, engine, cache, make, lock_dir)
        make(node, ImageResult(node.name, node.kind, node.parent, node.hash, node.local_ref))


def _present(engine: Engine, node: Node) -> bool:
    """The node's own image is here: under its local reference, or under another prefix (then tagged back)."""
    if node.kind == "pull":
        return engine.image(node.local_ref) is not None
    rows = _labelled(engine, HASH_LABEL, node.hash)
    image = own_build(rows, node.name, node.hash, node.local_ref)
    if image is None:
        return False
    if node.local_ref not in image.tags:
        engine.tag(image.id, node.local_ref)  # the same build under another prefix: give it this run's tag
    return True


def _listed(engine: Engine, node: Node) -> ImageInfo | None:
    """The node's image as the listing shows it (tags, size), after it was found, tagged, pulled or built."""
    if node.kind == "pull":
        image = engine.image(node.local_ref)
        return image
    rows = _labelled(engine, HASH_LABEL, node.hash)
    return next((i for i in rows if node.local_ref in i.tags), None)


def _labelled(engine: Engine, key: str, value: str) -> list[ImageInfo]:
    """Every local image labelled `key=value`, from one raw listing."""
    return engine.listing(f"{key}={value}")


def _latest_with_label(engine: Engine, key: str, value: str) -> ImageInfo | None:
    """The newest image labelled `key=value` that some build tagged (intermediates have no tags)."""
    rows = _labelled(engine, key, value)
    return max((i for i in rows if i.tags), key=lambda i: i.created, default=None)


@contextmanager
def _hash_lock(directory: Path, content_hash: str) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"{content_hash}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(path: Path, count: int) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-count:]
    except OSError:
        return []
