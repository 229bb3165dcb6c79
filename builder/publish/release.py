"""What `stacks push` would publish, image by image, and why not when it must not.

For every image to publish: is it built (the local image carries the plan's
content hash), did its last `stacks test` pass for that same hash, what do
the version commands of its fragments read out of it, do those versions
agree with what the spec declares, and which tags do the templates give with
those facts? `stacks tags` prints this; `stacks push` refuses to start while
any image has a problem, so nothing is half published because of a problem
that was knowable up front.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from builder.cache.records import RecordStore
from builder.cache.skipping import passed_by_record, passing_record
from builder.adapters.engine import Engine, ImageInfo
from builder.cache.registry_cache import CacheHit, RegistryCache
from builder.plan.labels import CREATED_LABEL, REVISION_LABEL, git_revision
from builder.specification.models import Registry, Settings
from builder.plan.plan import HASH_LABEL, Node, Plan
from builder.reports.report import TEST_REPORT, tested_images
from builder.plan.tags import Facts, Tag, late_templates, planned_tags, push_order, repository
from builder.reference import InvalidReference, parse_prefix
from builder.plan.versions import VersionReport, commands, compare, declared, probes
from builder.check.versions import read_versions

ReleaseState = Literal["ready", "not built", "untested", "tested at another hash"]
READY: Final = "ready"
NOT_BUILT: Final = "not built"
UNTESTED: Final = "untested"
STALE: Final = "tested at another hash"


@dataclass
class Release:
    """One image as it would be published."""

    node: Node
    repository: str  # fully qualified: host/namespace/repo (docker.io/library/repo for Docker Hub without namespace)
    path: str  # the repository's name inside the registry (namespace/repo; library/repo on Docker Hub)
    state: ReleaseState = NOT_BUILT
    image: ImageInfo | None = None  # the built image: in the engine, or only in the cache (`remote`); None until built
    versions: VersionReport | None = None
    facts: Facts | None = None
    tags: list[Tag] = field(default_factory=list)  # push order once resolved; plan-time tags before
    pending: list[str] = field(default_factory=list)  # templates not resolvable yet (image not built)
    problems: list[str] = field(default_factory=list)
    remote: RegistryImage | None = None  # set while the image is only in the registry cache

    @property
    def image_id(self) -> str | None:
        return self.image.id if self.image is not None else None

    @property
    def local(self) -> bool:
        """The image is in the engine (one only in the cache is not, until a push must pull it)."""
        return self.image is not None and self.remote is None

    def refs(self) -> list[str]:
        return [f"{self.repository}:{tag.name}" for tag in self.tags]


@dataclass(frozen=True)
class RegistryImage:
    """An image that is only in the registry cache, as far as publishing needs it: the image (from its config)
    the versions its test read, and where the cache holds it."""

    image: ImageInfo
    versions: VersionReport
    hit: CacheHit


def parse_registry(text: str) -> Registry:
    """HOST[:PORT][/NAMESPACE] -> Registry; a first part without '.' or ':' (and not localhost) is a Docker Hub namespace."""
    host, namespace = parse_prefix(text)
    return Registry(host=host, namespace=namespace)


def with_registry(settings: Settings, override: str | None) -> Settings:
    """The settings with `--registry` applied; the repository names are checked again."""
    if not override:
        return settings
    return settings.model_copy(update={"registry": parse_registry(override)})


def publishable(plan: Plan, nodes: list[Node], images: list[str]) -> list[Node]:
    """The images among `nodes` that are published: the named ones (default all), never `push: false` ones."""
    wanted = set(images)
    return [n for n in nodes if n.kind == "image" and n.push and (not wanted or n.name in wanted or n.image in wanted)]


def prepare(plan: Plan, nodes: list[Node], engine: Engine | None, settings: Settings, out_dir: Path,
            jobs: int = 4, cache: RegistryCache | None = None, records: RecordStore | None = None) -> list[Release]:
    """A Release per node: state, versions and resolved tags for built images (engine given), templates otherwise.

    An image that is only in the registry cache stays there when its passing
    test record holds what its version commands answered (a RegistryImage);
    otherwise it is pulled and its versions are read from a container of it.
    """
    tested = tested_images(out_dir)
    releases = [_release(plan, node, settings) for node in nodes]
    for release in releases:
        node = release.node
        if engine is not None:
            release.image = _built(engine, node)
            if release.image is None:
                release.remote = _in_cache(plan, node, cache, records)
                release.image = release.remote.image if release.remote else _pulled(engine, node, cache)
        if records is not None:
            tested.update(passed_by_record(release.node, release.image_id, records, cache))
        release.state = _state(release, tested)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(lambda r: _resolve(plan, r, settings, engine), releases))
    for release, problem in clashes(releases):
        release.problems.append(problem)
    return releases


def _release(plan: Plan, node: Node, settings: Settings) -> Release:
    try:
        ref = repository(settings, node.repo or node.name)
    except InvalidReference as exc:
        return Release(node, exc.text, exc.text, problems=[str(exc)])
    return Release(node, ref.name, ref.repository)


def _built(engine: Engine, node: Node) -> ImageInfo | None:
    image = engine.image(node.local_ref)
    if image is None or image.labels.get(HASH_LABEL) != node.hash:
        return None
    return image


def _in_cache(plan: Plan, node: Node, cache: RegistryCache | None, records: RecordStore | None) -> RegistryImage | None:
    """The cache's image of `node`, if a passing record of it says what its current version commands answer."""
    if cache is None or records is None:
        return None
    hit = cache.lookup(node)
    if hit is None or not hit.config:
        return None
    record = passing_record(node, hit.image_id, records, cache)
    current = commands(probes(node.chain, plan[node.root].base))
    if record is None or record.versions is None or record.version_commands != current:
        return None
    return RegistryImage(ImageInfo.from_config(hit.image_id, hit.config),
                         VersionReport(node.name, dict(record.versions), dict(record.version_failures)), hit)


def _pulled(engine: Engine, node: Node, cache: RegistryCache | None) -> ImageInfo | None:
    if cache is None:
        return None
    hit = cache.lookup(node)
    return _built(engine, node) if hit is not None and cache.pull(node, hit) else None


def _state(release: Release, tested: dict[str, str]) -> ReleaseState:
    if release.image is None:
        return NOT_BUILT
    if release.node.name not in tested:
        return UNTESTED
    return READY if tested[release.node.name] == release.node.hash else STALE


def _resolve(plan: Plan, release: Release, settings: Settings, engine: Engine | None) -> None:
    node = release.node
    variant, base = node.variant, plan[node.root].base
    assert variant is not None, "only images are released"
    if release.image is None or engine is None:
        release.tags = planned_tags(variant, settings, node.hash, version_names=probes(node.chain, base))
        release.pending = late_templates(settings)
        return
    if release.remote is not None:
        report = release.remote.versions  # read when it was tested: the image is not here
    else:
        report = read_versions(engine.containers, node.local_ref, node.name, probes(node.chain, base))
    release.versions = compare(report, declared(node.chain, base))
    release.problems += report.problems()
    release.facts = facts_of(release.image, report.versions, plan.spec.path.parent)
    try:
        release.tags = push_order(planned_tags(variant, settings, node.hash, release.facts))
    except ValueError as exc:
        release.problems.append(f"{node.name}: {exc}")


def facts_of(image: ImageInfo, versions: dict[str, str], folder: Path) -> Facts:
    """Build date and commit from the image's own labels (stable across re-runs), else the engine and git."""
    labels = image.labels
    created = labels.get(CREATED_LABEL) or image.created
    revision = labels.get(REVISION_LABEL) or git_revision(folder) or ""
    return Facts(dict(versions), created[:10], revision[:7])


def clashes(releases: list[Release]) -> list[tuple[Release, str]]:
    """Two images that would be pushed under one reference (possible once versions fill the templates)."""
    seen: dict[str, str] = {}
    problems = []
    for release in releases:
        for ref in release.refs():
            other = seen.setdefault(ref, release.node.name)
            if other != release.node.name:
                problems.append((release, f"images '{other}' and '{release.node.name}' would both be pushed as {ref}; "
                                          "make the tag templates tell them apart"))
    return problems


def refusals(releases: list[Release], out_dir: Path) -> list[str]:
    """Why `stacks push` must not start: every problem of every image, with what to do about it."""
    problems = []
    for release in releases:
        name = release.node.name
        if release.state == NOT_BUILT:
            problems.append(f"{name}: not built (no local image with content hash {release.node.short_hash}); run `stacks build {name}`")
        elif release.state == UNTESTED:
            problems.append(f"{name}: no passing smoke test on record in {out_dir / TEST_REPORT}; run `stacks test {name}`")
        elif release.state == STALE:
            problems.append(f"{name}: its last passing test was of other content than the plan's {release.node.short_hash}; "
                            f"run `stacks test {name}`")
        problems += release.problems
    return problems
