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
from typing import Protocol
from collections.abc import Callable, Iterator

from builder.adapters.bootstrap import bootstrap_tarball
from builder.adapters.engine import BuildFailed, BuildRequest, Cancelled, Engine, ImageInfo
from builder.plan.hashing import explain_change
from builder.plan.labels import INPUTS_LABEL, NAME_LABEL, digest_of, image_labels
from builder.plan.plan import HASH_LABEL, Node, Plan
from builder.plan.render import write_context
from builder.building.results import ImageResult
from builder.building.scheduler import BuildStatus, Outcome, Task, run_dag
from builder.building.site import Site
from builder.cache.identity import own_build
from builder.cache.registry_cache import RegistryCache
from builder.reference import debian_architecture, platform_architecture

LOG_TAIL = 30


class ProgressSink(Protocol):
    """Where the build says what it does (builder.building.progress.Progress on a terminal)."""

    def started(self, node: Node) -> None: ...
    def building(self, node: Node, reasons: list[str]) -> None: ...
    def done(self, result: ImageResult) -> None: ...


@dataclass(frozen=True)
class BuildOptions:
    out_dir: Path = Path("build")
    jobs: int = 1
    site: Site = field(default_factory=Site)
    lock_dir: Path = Path("build/locks")  # per-hash locks; the Workspace puts them in the user's cache
    cache: RegistryCache | None = None
    no_cache: bool = False  # `--no-cache`: images (not bases) are built again, without the layer cache


def why_build(engine: Engine, node: Node) -> tuple[bool, list[str]]:
    """(cached?, reasons): reasons name what changed since this image was last built here. Changes nothing."""
    if _own_image(engine, node) is not None:
        return True, ["an image with this content hash exists"]
    if node.kind == "pull":
        return False, [f"not present locally for {node.platform}: will pull"]
    old = _previous_inputs(engine, node)
    if old is None and node.inputs.get("platform") and _latest_with_label(engine, NAME_LABEL, node.name) is not None:
        return False, [f"never built for {node.platform}"]
    return False, explain_change(old, node.inputs)


def build_nodes(plan: Plan, nodes: list[Node], engine: Engine, options: BuildOptions, progress: ProgressSink,
                stop: threading.Event) -> list[ImageResult]:
    """Build `nodes` (parents first); returns one result per node, in the same order."""
    results = {n.name: ImageResult(n.name, n.kind, n.parent, n.hash, n.local_ref, size_budget=n.size_budget, platform=n.platform)
               for n in nodes}
    (options.out_dir / "logs").mkdir(parents=True, exist_ok=True)
    by_name = {n.name: n for n in nodes}
    run = _BuildRun(plan, engine, options, progress, *options.site.build_environment(options.out_dir),
                    engine.listing(HASH_LABEL))  # one listing serves every unchanged image

    def work(task: Task) -> Outcome:
        return run.node(by_name[task.name], results[task.name])

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


@dataclass
class _BuildRun:
    """One `stacks build`: the steps every node goes through, with what they share."""

    plan: Plan
    engine: Engine
    options: BuildOptions
    progress: ProgressSink
    secrets: dict[str, Path]
    build_args: dict[str, str]
    listing: list[ImageInfo]

    @property
    def cache(self) -> RegistryCache | None:
        return self.options.cache

    def node(self, node: Node, result: ImageResult) -> Outcome:
        """Find or make the node's image, fill the cache with it, give it `latest`; failures stay this node's."""
        started = time.monotonic()
        status: BuildStatus
        try:
            if self.options.no_cache and node.kind == "image":
                status, image = self._rebuild(node, result)
            else:
                status, image = self._found_here(node, result) or self._obtain(node, result)
            if status == "cached" and image is not None:
                self._backfill(node)
            self._tag_latest(node, image)
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

    def _found_here(self, node: Node, result: ImageResult) -> tuple[BuildStatus, ImageInfo | None] | None:
        """The node's own image under this run's reference, from the run's one listing (no lock, no request)."""
        image = own_build(self.listing, node.name, node.hash, node.local_ref) if node.kind != "pull" else None
        if image is None or node.local_ref not in image.tags:
            return None
        result.reasons = ["an image with this content hash exists"]
        return "cached", image

    def _obtain(self, node: Node, result: ImageResult) -> tuple[BuildStatus, ImageInfo | None]:
        """Under the hash lock: here after all (another run made it), in the cache, or built here."""
        with _hash_lock(self.options.lock_dir, node.hash):
            cached, result.reasons = why_build(self.engine, node)
            if cached:
                _present(self.engine, node)  # under another prefix: give it this run's reference
                return "cached", _listed(self.engine, node)
            hit = self.cache.lookup(node) if self.cache is not None else None
            if hit is not None:  # pulled only when something here needs it (a child to build, a test)
                result.reasons = [f"in the cache as {hit.ref}"]
                return "cached", None
            self.progress.building(node, result.reasons)
            _ensure_local(self.plan, node.parent, self.engine, self.cache, self._make, self.options.lock_dir)
            self._make(node, result)
            if self.cache is not None:
                self.cache.push_image(node)
            return "built", _listed(self.engine, node)

    def _rebuild(self, node: Node, result: ImageResult) -> tuple[BuildStatus, ImageInfo | None]:
        """`--no-cache`: built again from its Dockerfile whatever exists, every step run anew."""
        with _hash_lock(self.options.lock_dir, node.hash):
            result.reasons = ["--no-cache: built again without the build cache"]
            self.progress.building(node, result.reasons)
            _ensure_local(self.plan, node.parent, self.engine, self.cache, self._make, self.options.lock_dir)
            self._make(node, result)
            return "built", _listed(self.engine, node)

    def _backfill(self, node: Node) -> None:
        """An image built here before the cache was used goes into the cache."""
        if self.cache is not None and node.kind != "pull" and self.cache.lookup(node) is None:
            self.cache.push_image(node)

    def _tag_latest(self, node: Node, image: ImageInfo | None) -> None:
        latest = node.latest_ref
        if image is not None and node.kind != "pull" and latest and latest not in image.tags:
            self.engine.tag(image.id, latest)

    def _make(self, node: Node, result: ImageResult) -> None:
        _make(self.plan, node, self.engine, self.options, self.secrets, self.build_args, result)


def _make(plan: Plan, node: Node, engine: Engine, options: BuildOptions, secrets: dict, build_args: dict, result: ImageResult) -> None:
    """Pull, bootstrap or build the node's image, then prove it is of the node's platform."""
    _obtain_image(plan, node, engine, options, secrets, build_args, result)
    check_platform(engine, node)


def check_platform(engine: Engine, node: Node) -> None:
    """A build whose image is of another architecture than asked (an emulator falling back, a base pulled
    for the wrong platform) fails here, before anything is built on it or tested; its tag is removed."""
    image = engine.image(node.local_ref)
    if image is None:
        raise BuildFailed(f"the build left no image under {node.local_ref}", None)
    wanted = platform_architecture(node.platform).partition("/")[0]  # the engine reports arm for arm/v7
    if image.architecture != wanted:
        if node.kind != "pull":
            engine.untag(node.local_ref)
        raise BuildFailed(f"{node.local_ref} was built for {image.platform or 'an unknown platform'}, not "
                          f"{node.platform}: refusing an image of the wrong platform", "platform check")


def _obtain_image(plan: Plan, node: Node, engine: Engine, options: BuildOptions, secrets: dict, build_args: dict,
                  result: ImageResult) -> None:
    foreign = node.platform if plan.foreign else None
    log_path = options.out_dir / "logs" / f"{node.name}.log"
    result.log = str(log_path)
    with log_path.open("w", encoding="utf-8") as log:
        def sink(line: str) -> None:
            log.write(line + "\n")
            log.flush()

        if node.kind == "pull":
            assert node.base is not None and node.base.pull
            sink(f"pulling {node.base.pull} for {node.platform}")
            image = engine.pull(node.base.pull, platform=node.platform)
            if node.local_ref != node.base.pull:
                engine.tag(image.id, node.local_ref)
            return
        labels = image_labels(plan, node, base_digest=_parent_digest(plan, node, engine))
        if node.kind == "bootstrap":
            assert node.base and node.base.bootstrap
            workdir = options.out_dir / "tmp"
            workdir.mkdir(parents=True, exist_ok=True)
            architecture = debian_architecture(foreign) if foreign else None
            tarball = bootstrap_tarball(node.base.bootstrap, workdir, sink, options.site.apt_mirror, architecture)
            try:
                engine.import_tarball(tarball, node.local_ref, labels, foreign)
            finally:
                shutil.rmtree(tarball.parent, ignore_errors=True)
            return
        assert node.rendered is not None
        context = options.out_dir / "contexts" / node.name
        write_context(node.rendered, context)
        args = {**build_args, **node.build_args}
        cache = options.cache if options.cache is not None and options.cache.enabled else None
        layers = (cache.latest_ref(node),) if cache is not None and not options.no_cache else ()
        engine.build(BuildRequest(context, node.local_ref, labels, args, secrets, layers, cache is not None,
                                  options.no_cache, foreign), sink)


def _parent_digest(plan: Plan, node: Node, engine: Engine) -> str:
    """The digest of the parent image a build starts from (present: it was ensured before), for `base.digest`."""
    if node.parent is None:
        return ""
    parent = engine.image(plan[node.parent].local_ref)
    return digest_of(parent.id, parent.repo_digests) if parent is not None else ""


def _ensure_local(plan: Plan, name: str | None, engine: Engine, cache: RegistryCache | None,
                  make: Callable[[Node, ImageResult], None],
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
        if cache is not None and hit is not None and cache.pull(node, hit):
            return
        _ensure_local(plan, node.parent, engine, cache, make, lock_dir)
        make(node, ImageResult(node.name, node.kind, node.parent, node.hash, node.local_ref))


def _own_image(engine: Engine, node: Node) -> ImageInfo | None:
    """The node's own image: under its local reference, or under another prefix. Changes nothing."""
    if node.kind == "pull":
        image = engine.image(node.local_ref)
        wanted = platform_architecture(node.platform).partition("/")[0]
        return image if image is not None and image.architecture == wanted else None
    return own_build(_labelled(engine, HASH_LABEL, node.hash), node.name, node.hash, node.local_ref)


def _present(engine: Engine, node: Node) -> bool:
    """The node's own image is here: under its local reference, or under another prefix (then tagged back)."""
    image = _own_image(engine, node)
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


def _previous_inputs(engine: Engine, node: Node) -> dict | None:
    """The inputs of the newest build of the node's name for its platform (builds of other platforms, and of
    the hash format before platforms counted, are other images: comparing with them explains nothing)."""
    rows = sorted((i for i in _labelled(engine, NAME_LABEL, node.name) if i.tags), key=lambda i: i.created, reverse=True)
    for image in rows:
        try:
            inputs = json.loads(image.labels.get(INPUTS_LABEL, "null"))
        except json.JSONDecodeError:
            continue
        if isinstance(inputs, dict) and inputs.get("platform", node.inputs.get("platform")) == node.inputs.get("platform"):
            return inputs
    return None


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
