"""The plan: every concrete image as a node of a networkx DAG.

`make_plan` runs the pure stages in order (load -> expand -> resolve ->
render -> hash -> tag) and returns a `Plan` whose nodes carry everything the
build, test and publish stages need. Nothing here touches Docker, so a plan
of a thousand images takes well under a second.

A plan is made for one platform (linux/amd64, linux/arm64): the platform is
part of every node's content hash, local tags and cache tags, so the two
builds of one image never stand in for each other. Images whose base or
fragments are not built for that platform are left out of its plan
(`Plan.left_out` says why); `load_plans` gives one plan per platform.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import jinja2
import networkx as nx

from builder.plan.bases import BaseImage
from builder.errors import Problem, SpecError, did_you_mean, raise_if_any, warning
from builder.plan.hashing import base_inputs, hash_inputs, image_inputs
from builder.plan.lock import apply_lock, chain_pins
from builder.plan.matrix import Variant, expand, render_text
from builder.plan.render import Mode, Rendered, render_image
from builder.plan.resolve import Applied, Resolved, resolve
from builder.plan.sizes import parse_size
from builder.specification.load import Spec, load_spec_partial
from builder.plan.tags import repository, tags_for
from builder.plan.versions import probe_names
from builder.reference import platform_slug

HASH_LABEL = "io.stacks.hash"
#: the platform of a plan made without one (`stacks plan`, lint): the reference CI's and most engines'
DEFAULT_PLATFORM = "linux/amd64"


@dataclass(frozen=True)
class Node:
    """One image of the plan: a base (pulled or bootstrapped) or an image built from fragments."""

    name: str
    kind: str  # "pull" | "bootstrap" | "image"
    parent: str | None
    hash: str
    inputs: dict[str, Any]
    local_ref: str
    image: str | None = None  # definition in stacks.yaml
    axes: dict[str, str] = field(default_factory=dict)
    fragments: tuple[Applied, ...] = ()
    chain: tuple[Applied, ...] = ()
    rendered: Rendered | None = None
    repo: str | None = None
    tags: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    weight: int = 1
    push: bool = False
    base: BaseImage | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    unverified: tuple[str, ...] = ()  # why this project's CI cannot build it (base or fragments); empty when it can
    size_budget: int | None = None  # bytes; None = no budget
    variant: Variant | None = None  # the matrix cell this image is (None for bases)
    root: str = ""  # name of the base at the root of its chain (a base: its own name)
    platform: str = DEFAULT_PLATFORM  # the one platform this node is built for (part of its hash)
    latest_ref: str = ""  # the moving local tag of the newest build (`:latest`, or `:linux-arm64` for a foreign platform)

    @property
    def verified(self) -> bool:
        return not self.unverified

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    def summary(self) -> dict[str, Any]:
        """The JSON view used by `stacks plan --json` and the reports."""
        return {
            "name": self.name,
            "kind": self.kind,
            "image": self.image,
            "parent": self.parent,
            "axes": self.axes,
            "fragments": [
                {"name": a.name, "version": a.fragment.meta.version, "params": a.params} for a in self.fragments
            ],
            "repo": self.repo,
            "tags": list(self.tags),
            "hash": self.hash,
            "local_ref": self.local_ref,
            "platform": self.platform,
            "platforms": list(self.platforms),
            "weight": self.weight,
            "verified": self.verified,
            "unverified": list(self.unverified),
            "size_budget": self.size_budget,
        }


@dataclass(frozen=True)
class Plan:
    spec: Spec
    graph: nx.DiGraph
    mode: Mode
    #: problems that do not stop the plan (rules that do nothing, images without variants)
    warnings: tuple[Problem, ...] = ()
    platform: str = DEFAULT_PLATFORM
    #: the engine's own platform: its images keep the plain local tags (`:<hash12>`, `:latest`)
    native: str = DEFAULT_PLATFORM
    #: (variant, image definition, why) of every image not built for this platform (its base or a fragment
    #: does not support it)
    left_out: tuple[tuple[str, str, str], ...] = ()

    @property
    def foreign(self) -> bool:
        """Built through emulation on this engine (another architecture than the engine's)."""
        return self.platform != self.native

    def __getitem__(self, name: str) -> Node:
        return self.graph.nodes[name]["node"]

    def __iter__(self) -> Iterator[Node]:
        """Nodes, parents before children, in a stable order."""
        for name in nx.lexicographical_topological_sort(self.graph, key=self._position):
            yield self[name]

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def _position(self, name: str) -> tuple[int, str]:
        return (self.graph.nodes[name]["position"], name)

    def images(self) -> list[Node]:
        return [n for n in self if n.kind == "image"]

    def select(self, names: Iterable[str] = (), only_verified: bool = False) -> list[Node]:
        """The named nodes (variant or image-definition names; none = all) and their ancestors, in build order.

        `only_verified` leaves out every image whose base or fragments are
        marked unverified (sources this project's CI cannot reach), so one
        stacks.yaml serves both CI here and real users with full access.
        """
        names = list(names)
        if not names:
            return [n for n in self if n.verified or not only_verified]
        wanted: set[str] = set()
        problems = []
        for name in names:
            matched = [n for n in self.graph if n == name or self[n].image == name]
            if not matched:
                problems.append(Problem(f"no image named '{name}' in the plan", None, did_you_mean(name, list(self.graph))))
            for node in matched:
                wanted |= {node} | nx.ancestors(self.graph, node)
        raise_if_any(problems)
        return [n for n in self if n.name in wanted and (n.verified or not only_verified)]

    def descendants(self, name: str) -> set[str]:
        return nx.descendants(self.graph, name)


def load_plan(path: Path, mode: Mode = "buildkit", platform: str = DEFAULT_PLATFORM, native: str | None = None) -> Plan:
    """The plan of a stacks file for `platform`; a SpecError lists the problems of every stage at once
    (see `load_spec_partial`). `native` is the engine's platform (default: `platform` itself)."""
    spec, problems = load_spec_partial(path)
    if spec is not None and any(p.severity == "error" for p in problems):
        try:
            problems += make_plan(spec, mode, platform, native).warnings  # the valid part: its own problems are not follow-ons
        except SpecError as exc:
            problems += exc.problems
    raise_if_any(problems)
    assert spec is not None
    result = make_plan(spec, mode, platform, native)
    if not problems:
        return result
    return replace(result, warnings=tuple(sorted(set(result.warnings) | set(problems), key=str)))  # the spec's warnings


def load_plans(path: Path, mode: Mode, platforms: Iterable[str], native: str) -> list[Plan]:
    """One plan per platform, in the order given; the spec is read once."""
    wanted = list(dict.fromkeys(platforms)) or [native]
    first = load_plan(path, mode, wanted[0], native)
    return [first] + [make_plan(first.spec, mode, p, native) for p in wanted[1:]]


def make_plan(spec: Spec, mode: Mode = "buildkit", platform: str = DEFAULT_PLATFORM, native: str | None = None) -> Plan:
    native = native or platform
    warnings: list[Problem] = []
    variants = expand(spec, warnings)
    problems: list[Problem] = []
    resolved = resolve(spec, variants, problems)
    graph = nx.DiGraph()
    names = _LocalNames(spec.model.settings.local_prefix, platform, native)
    left_out: dict[str, tuple[str, str]] = {}
    for position, variant in enumerate(variants):
        item = resolved.get(variant.name)
        if item is not None and item.base is not None and platform not in item.base.platforms:
            left_out[variant.name] = (variant.image, f"base '{item.base.key}' is not built for {platform}")
            continue
        if item is not None and variant.parent in left_out:
            left_out[variant.name] = (variant.image, f"its parent '{variant.parent}' is not built for {platform}")
            continue
        if item is None or (item.base is None and variant.parent not in graph):
            continue  # its contracts or its parent are broken: reported already, descendants would only repeat it
        if item.base is not None:
            _add_base(graph, item.base, names, position)
            parent = graph.nodes[item.base.name]["node"]
        else:
            parent = graph.nodes[variant.parent]["node"]
        node = _image_node(spec, graph, item, parent, names, mode, problems)
        if node is not None and platform not in node.platforms:
            narrowing = [a.name for a in item.own if a.fragment.meta.platforms is not None
                         and platform not in a.fragment.meta.platforms]
            left_out[variant.name] = (variant.image, f"fragment '{narrowing[0]}' is not built for {platform}"
                                      if narrowing else f"not built for {platform}")
            continue
        if node is not None:
            if node.name in graph:
                problems.append(Problem(f"image '{node.name}' has the same name as a base", spec.where("images", variant.image)))
                continue
            graph.add_node(node.name, node=node, position=position)
            graph.add_edge(parent.name, node.name)
    problems += _tag_clashes(spec, graph)
    warnings += _hub_warnings(spec, graph)
    raise_if_any(problems + warnings)
    return Plan(spec, graph, mode, tuple(sorted(set(warnings), key=str)), platform, native,
                tuple((name, image, why) for name, (image, why) in left_out.items()))


@dataclass(frozen=True)
class _LocalNames:
    """Local tags of one plan's nodes. The engine's own platform keeps `<prefix>/<name>:<hash12>` and `:latest`;
    another platform's builds are `<prefix>/<name>:<slug>-<hash12>` and `:<slug>` (linux-arm64), so both live
    side by side in one engine and neither moves the other's tag."""

    prefix: str
    platform: str
    native: str

    def content(self, name: str, content_hash: str) -> str:
        if self.platform == self.native:
            return f"{self.prefix}/{name}:{content_hash[:12]}"
        return f"{self.prefix}/{name}:{platform_slug(self.platform)}-{content_hash[:12]}"

    def as_native(self, node: Node) -> str:
        """The node's local tag on an engine of its own platform: what its children's hashes read in `FROM`,
        so whether a platform is emulated here changes no hash."""
        if node.kind == "pull" and node.base is not None and node.base.pull:
            return node.base.pull
        return f"{self.prefix}/{node.name}:{node.hash[:12]}"

    def latest(self, name: str) -> str:
        return f"{self.prefix}/{name}:{'latest' if self.platform == self.native else platform_slug(self.platform)}"


def _hub_warnings(spec: Spec, graph: nx.DiGraph) -> list[Problem]:
    """hub: entries naming no image definition or variant: a warning when planning (builds go on; the Hub is
    configured later), an error of `stacks hub-config`.

    A definition the file declares counts even when it has no variants or was
    left out for errors of its own (those are reported with it)."""
    hub = spec.model.hub
    if hub is None:
        return []
    declared = spec.source.get("images")
    images = [graph.nodes[n]["node"] for n in graph if graph.nodes[n]["node"].kind == "image"]
    known = {node.name for node in images} | {node.image for node in images}
    known |= set(declared) if isinstance(declared, dict) else set()
    names: list[tuple[tuple, str]] = [(("hub", "image"), hub.image)]
    names += [(("hub", "offer", i), name) for i, name in enumerate(hub.offer)]
    names += [(("hub", "default"), hub.default)] if hub.default is not None else []
    names += [(("hub", "gpu", "images", i), name) for i, name in enumerate(hub.gpu.images if hub.gpu else [])]
    return [
        warning(f"{'.'.join(p for p in path if isinstance(p, str))}: no image or variant named '{name}'", spec.where(*path),
                did_you_mean(name, sorted(known)) or "name an image of 'images' or one of its variants (`stacks plan`)")
        for path, name in names if name not in known
    ]


def _add_base(graph: nx.DiGraph, base: BaseImage, names: _LocalNames, position: int) -> None:
    if base.name in graph:
        return
    inputs = base_inputs(base.identity(), names.platform)
    content_hash = hash_inputs(inputs)
    # a pulled base keeps its own name on the engine's platform; another platform's pull is tagged as a build would be
    native_pull = base.pull is not None and names.platform == names.native
    local_ref = base.pull if native_pull and base.pull else names.content(base.name, content_hash)
    node = Node(
        name=base.name, kind=base.kind, parent=None, hash=content_hash, inputs=inputs,
        local_ref=local_ref, platforms=base.platforms, base=base, weight=1, root=base.name,
        unverified=(f"base '{base.key}': {base.unverified}",) if base.unverified else (),
        platform=names.platform, latest_ref=names.latest(base.name),
    )
    graph.add_node(base.name, node=node, position=position)


def _image_node(
    spec: Spec, graph: nx.DiGraph, item: Resolved, parent: Node, names: _LocalNames, mode: Mode, problems: list[Problem]
) -> Node | None:
    variant = item.variant
    definition = spec.images[variant.image]
    info = {"name": variant.name, "image": variant.image, "axes": variant.axes, "variant": variant.label}
    root = parent.root
    try:
        rendered = render_image(variant.name, parent.local_ref, item.own, info, root, mode)
    except SpecError as exc:
        problems += exc.problems
        return None
    build_args = _build_args(spec, variant, problems)
    if build_args is None:
        return None
    rendered, lock = _locked(spec, graph, variant.name, parent, rendered)
    hashed = rendered.dockerfile.replace(f"FROM {parent.local_ref}\n", f"FROM {names.as_native(parent)}\n")
    inputs = image_inputs(rendered, build_args, parent.hash, mode, names.platform, hashed, lock)
    content_hash = hash_inputs(inputs)
    repo = definition.repo or variant.image
    try:
        base = graph.nodes[root]["node"].base
        tags = tags_for(variant, spec.model.settings, content_hash, version_names=probe_names(item.chain, base))
        repository(spec.model.settings, repo)
    except ValueError as exc:
        problems.append(Problem(f"image '{variant.name}': {exc}", spec.where("images", variant.image)))
        tags = []
    weight = definition.weight or max([a.fragment.meta.weight for a in item.own] or [1])
    return Node(
        name=variant.name, kind="image", parent=parent.name, hash=content_hash, inputs=inputs,
        local_ref=names.content(variant.name, content_hash), image=variant.image, axes=variant.axes,
        fragments=item.own, chain=item.chain, rendered=rendered, repo=repo, tags=tuple(tags),
        platforms=_platforms(parent.platforms, item.own), weight=weight, push=definition.push,
        build_args=build_args, unverified=parent.unverified + _unverified(item.own),
        size_budget=parse_size(definition.size_budget) if definition.size_budget else None,
        variant=variant, root=root, platform=names.platform, latest_ref=names.latest(variant.name),
    )


def _locked(spec: Spec, graph: nx.DiGraph, name: str, parent: Node, rendered: Rendered) -> tuple[Rendered, str | None]:
    """The image with its stacks.lock entry applied (builder/plan/lock.py), and that entry's digest for the hash."""
    entry = spec.lock.images.get(name)
    if entry is None:
        return rendered, None
    chain = [rendered.dockerfile]
    node: Node | None = parent
    while node is not None:
        chain += [node.rendered.dockerfile] if node.rendered is not None else []
        node = graph.nodes[node.parent]["node"] if node.parent else None
    locked, lock = apply_lock(rendered, entry, chain_pins(chain))
    return locked, lock or None


def _build_args(spec: Spec, variant: Variant, problems: list[Problem]) -> dict[str, str] | None:
    """The image's build_args rendered for the variant; None (and problems) when a template fails."""
    values, ok = {}, True
    for key, value in spec.images[variant.image].build_args.items():
        try:
            values[key] = render_text(value, variant.context)
        except jinja2.TemplateError as exc:
            ok = False
            problems.append(Problem(f"image '{variant.name}': build arg '{key}': {exc}",
                                    spec.where("images", variant.image, "build_args", key)))
    return values if ok else None


def stack_platforms(plan: Plan) -> list[str]:
    """Every platform some base of the plan's stack is built for, in declaration order."""
    bases = plan.spec.model.bases.values()
    return list(dict.fromkeys(p for base in bases for p in base.platforms)) or [plan.platform]


def platform_warnings(plan: Plan, platforms: Iterable[str]) -> list[Problem]:
    """A `--platform` no image of the plan is built for selects nothing: say so where platforms are declared."""
    known = sorted({p for node in plan for p in node.platforms})
    return [
        warning(f"--platform {name}: no image is built for it, so it selects nothing", plan.spec.where("bases"),
                did_you_mean(name, known) or f"platforms of this stack: {', '.join(known) or 'none'}")
        for name in dict.fromkeys(platforms) if name not in known
    ]


def _unverified(fragments: tuple[Applied, ...]) -> tuple[str, ...]:
    return tuple(
        f"fragment '{a.name}': {a.fragment.meta.unverified_reason or 'not verified'}"
        for a in fragments if not a.fragment.meta.verified
    )

def _platforms(parent: tuple[str, ...], fragments: tuple[Applied, ...]) -> tuple[str, ...]:
    """A parent's platforms narrowed by what each fragment supports."""
    platforms = list(parent)
    for applied in fragments:
        supported = applied.fragment.meta.platforms
        if supported is not None:
            platforms = [p for p in platforms if p in supported]
    return tuple(platforms)


def _tag_clashes(spec: Spec, graph: nx.DiGraph) -> list[Problem]:
    seen: dict[tuple[str, str], str] = {}
    problems = []
    for name in graph:
        node: Node = graph.nodes[name]["node"]
        for tag in node.tags:
            other = seen.setdefault((node.repo or "", tag), node.name)
            if other != node.name:
                problems.append(Problem(
                    f"images '{other}' and '{node.name}' would both be pushed as {node.repo}:{tag}",
                    spec.where("images", node.image or ""),
                    "give one of them another 'repo', or make the tag templates tell them apart",
                ))
    return problems
