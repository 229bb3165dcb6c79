"""The plan as a `docker buildx bake` file, for builds bigger than one machine.

`stacks build` drives one Docker engine. When one machine is not enough, the
same plan runs on `docker buildx bake` with remote or Kubernetes BuildKit
builders: one bake target per image, whose rendered Dockerfile still says
`FROM stacks/<parent>:<hash12>`; a named context of the same name points
that reference at the parent's target (`target:<parent>`), so BuildKit
builds parents first and hands their result straight to the children.

Bases: a pulled base needs nothing (the Dockerfile names a pullable
reference). A bootstrapped base cannot be made by BuildKit (mmdebstrap runs
on the host), so its reference becomes a `docker-image://` context: by
default the local image that `stacks build <base>` leaves (the `docker`
driver sees it), or, with `bases_from`, the same name in a registry that
remote builders can reach.

Per-site settings stay out of the graph as in `stacks build`: the optional
CA bundle is a secret (`id=stacks-ca`, the id every RUN mounts) whose file
a bake variable names, and mirrors are build arguments. Docker is not
needed to write or check the file.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import networkx as nx

from builder.plan.dockerfile import froms
from builder.plan.labels import CREATED_LABEL, image_labels
from builder.plan.plan import Node, Plan
from builder.owned import write_file
from builder.plan.render import CA_ARGS, CA_PATH, CA_SECRET, write_context
from builder.plan.tags import repository
from builder.reference import ImageRef, in_registry, is_reference, parse_prefix

CACHE_KINDS = ("inline", "registry", "gha", "none")
CA_VARIABLE = "STACKS_CA_FILE"
#: Attributes of a bake target (the ones this module writes, plus the other documented ones).
TARGET_KEYS = frozenset({
    "context", "dockerfile", "dockerfile-inline", "contexts", "tags", "labels", "platforms", "args", "secret",
    "ssh", "cache-from", "cache-to", "output", "target", "pull", "no-cache", "network", "attest", "annotations",
    "inherits", "description", "entitlements", "shm-size", "ulimits", "matrix", "name", "call", "no-cache-filter",
})


@dataclass(frozen=True)
class BakeOptions:
    """How the bake file is written; none of it changes the graph."""

    contexts_dir: Path = Path("build/bake")
    cache: str = "inline"
    cache_repo: str | None = None  # registry cache: one repository for every target's cache (tag = target name)
    bases_from: str | None = None  # registry prefix holding the bootstrapped bases under their local names
    platforms: tuple[str, ...] = ()  # only these platforms (each node keeps those it supports); none = all
    ca_file: Path | None = None  # CA bundle to mount as the stacks-ca secret
    build_args: tuple[tuple[str, str], ...] = ()  # per-site arguments (mirrors)


def make_bake(plan: Plan, nodes: list[Node], options: BakeOptions, relative_to: Path | None = None) -> dict[str, Any]:
    """The bake document for `nodes` (a selection with its ancestors), writing each image's context.

    Paths in the file are relative to `relative_to` (the directory bake will
    run in; default the current one), because bake resolves them there.
    """
    where = (relative_to or Path.cwd()).resolve()
    kept = _narrow(nodes, options.platforms)
    targets: dict[str, Any] = {}
    for node in kept:
        if node.kind == "image":
            targets[node.name] = _target(plan, node, kept, options, where)
    document: dict[str, Any] = {}
    if options.ca_file is not None:
        document["variable"] = {CA_VARIABLE: {"default": _path(options.ca_file, where)}}
    document["group"] = {
        "default": {"targets": [n.name for n in kept if n.kind == "image" and n.push]},
        "all": {"targets": list(targets)},
    }
    document["target"] = targets
    return document


def write_bake(document: dict[str, Any], path: Path) -> None:
    write_file(path, json.dumps(document, indent=2) + "\n")  # atomic; never replaces a file stacks did not write


def _narrow(nodes: list[Node], platforms: tuple[str, ...]) -> list[Node]:
    """Nodes that still have a platform when only `platforms` are wanted (children narrow, never widen)."""
    if not platforms:
        return list(nodes)
    return [n for n in nodes if any(p in platforms for p in n.platforms)]


def _target(plan: Plan, node: Node, kept: list[Node], options: BakeOptions, where: Path) -> dict[str, Any]:
    assert node.rendered is not None
    folder = options.contexts_dir / node.name
    write_context(node.rendered, folder)
    by_name = {n.name: n for n in kept}
    parent = by_name[node.parent] if node.parent else None
    labels = {k: v for k, v in image_labels(plan, node).items() if k != CREATED_LABEL}  # same plan, same file
    name = repository(plan.spec.model.settings, node.repo or node.name)
    refs = [str(name.with_tag(tag)) for tag in node.tags]
    target: dict[str, Any] = {
        "description": (plan.spec.images[node.image].description if node.image else "") or node.name,
        "context": _path(folder, where),
        "dockerfile": "Dockerfile",
        "contexts": _parent_context(parent, options) if parent is not None else {},
        "tags": refs,
        "labels": labels,
        "platforms": [p for p in node.platforms if not options.platforms or p in options.platforms],
    }
    args = {**dict(options.build_args), **node.build_args}
    if options.ca_file is not None:
        args.update({name: CA_PATH for name in CA_ARGS})
        target["secret"] = [f"id={CA_SECRET},src=${{{CA_VARIABLE}}}"]
    if args:
        target["args"] = dict(sorted(args.items()))
    target.update(_cache(node, refs, plan, options))
    if not target["contexts"]:
        del target["contexts"]
    return target


def _parent_context(parent: Node, options: BakeOptions) -> dict[str, str]:
    """The named context that stands for the parent's reference in FROM."""
    if parent.kind == "image":
        return {parent.local_ref: f"target:{parent.name}"}
    if parent.kind == "bootstrap":
        ref = parent.local_ref
        if options.bases_from:  # the same name and tag under another registry and namespace
            local = ImageRef.parse(ref)
            ref = in_registry(*parse_prefix(options.bases_from), local.basename).with_tag(local.tag).familiar
        return {parent.local_ref: f"docker-image://{ref}"}
    return {}  # pulled base: FROM already names it


def _cache(node: Node, refs: list[str], plan: Plan, options: BakeOptions) -> dict[str, list[str]]:
    if options.cache == "none":
        return {}
    if options.cache == "gha":
        return {"cache-from": [f"type=gha,scope={node.name}"], "cache-to": [f"type=gha,scope={node.name},mode=max"]}
    if options.cache == "registry":
        repo = options.cache_repo or repository(plan.spec.model.settings, node.repo or node.name).name
        tag = node.name if options.cache_repo else f"cache-{node.name}"
        ref = f"{repo}:{tag}"
        return {"cache-from": [f"type=registry,ref={ref}"], "cache-to": [f"type=registry,ref={ref},mode=max"]}
    return {"cache-from": [f"type=registry,ref={r}" for r in refs[:1]], "cache-to": ["type=inline"]}


def _path(path: Path, where: Path) -> str:
    absolute = Path(path).resolve()
    try:
        return absolute.relative_to(where).as_posix() or "."
    except ValueError:
        return str(absolute)


# --- checking a bake file (docker buildx is not needed) ------------------------


def check_bake(document: Any, root: Path | None = None) -> list[str]:
    """Problems that would make `docker buildx bake` refuse or misbuild the file.

    Schema-level: known blocks and attributes with the right types, valid
    tags and context names, groups and `target:` contexts that exist, no
    cycles, and children building no platform their parent lacks. With `root`
    (where bake runs), every context folder and Dockerfile must exist and
    every FROM must be a named context, an earlier stage or a pullable
    reference.
    """
    if not isinstance(document, dict):
        return ["the bake file is not a JSON object"]
    problems = [f"unknown top-level block '{k}'" for k in document if k not in ("group", "target", "variable", "function")]
    targets = document.get("target", {})
    if not isinstance(targets, dict) or not targets:
        return problems + ["'target' must be a non-empty object"]
    for name, target in targets.items():
        problems += [f"target '{name}': {p}" for p in _check_target(target, targets, root)]
    for name, group in (document.get("group") or {}).items():
        for member in (group or {}).get("targets", []):
            if member not in targets and member not in document.get("group", {}):
                problems.append(f"group '{name}': unknown target '{member}'")
    try:
        cycle = nx.find_cycle(bake_graph(document, None))
        problems.append("targets depend on each other in a cycle: " + " -> ".join(a for a, _ in cycle))
    except nx.NetworkXNoCycle:
        pass
    return problems


def _check_target(target: Any, targets: dict[str, Any], root: Path | None) -> list[str]:
    if not isinstance(target, dict):
        return ["is not an object"]
    problems = [f"unknown attribute '{k}'" for k in target if k not in TARGET_KEYS]
    for key in ("context", "dockerfile", "description"):
        if key in target and not isinstance(target[key], str):
            problems.append(f"'{key}' must be a string")
    for key in ("tags", "platforms", "secret", "cache-from", "cache-to", "output"):
        if key in target and not (isinstance(target[key], list) and all(isinstance(v, str) for v in target[key])):
            problems.append(f"'{key}' must be a list of strings")
    for key in ("contexts", "labels", "args"):
        if key in target and not (isinstance(target[key], dict) and all(isinstance(v, str) for v in target[key].values())):
            problems.append(f"'{key}' must be an object of strings")
    if problems:
        return problems
    for tag in target.get("tags", []):
        if not is_reference(tag):
            problems.append(f"tag '{tag}' is not a valid image reference")
    for platform in target.get("platforms", []):
        if not re.match(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$", platform):
            problems.append(f"platform '{platform}' is not os/arch[/variant]")
    for key, value in target.get("contexts", {}).items():
        if not is_reference(key):
            problems.append(f"context name '{key}' is not a valid image reference (BuildKit parses it as one)")
        if value.startswith("target:"):
            parent = targets.get(value[len("target:"):])
            if parent is None:
                problems.append(f"context '{key}' names an unknown target '{value}'")
            elif missing := set(target.get("platforms", [])) - set(parent.get("platforms", target.get("platforms", []))):
                problems.append(f"builds {', '.join(sorted(missing))} but its parent '{value[7:]}' does not")
        elif not value.startswith(("docker-image://", "oci-layout://", "https://", "http://", "git@")) and root is None:
            problems.append(f"context '{key}' is neither a target, an image nor a URL: '{value}'")
    for secret in target.get("secret", []):
        if not re.match(r"^(?:type=(?:file|env),)?id=[\w.-]+(?:,(?:src|source|env)=\S*)?$", secret):
            problems.append(f"secret '{secret}' is not id=ID[,src=FILE|,env=VAR]")
    if root is not None:
        problems += _check_files(target, root)
    return problems


def _check_files(target: dict[str, Any], root: Path) -> list[str]:
    context = root / target.get("context", ".")
    dockerfile = context / target.get("dockerfile", "Dockerfile")
    if not dockerfile.is_file():
        return [f"no Dockerfile at {dockerfile}"]
    stages: set[str] = set()
    problems = []
    for ref, stage in froms(dockerfile.read_text(encoding="utf-8")):
        named = ref in target.get("contexts", {})
        if not named and ref not in stages and ref != "scratch" and ref.startswith("stacks/"):
            problems.append(f"FROM {ref}: a local image that no named context provides")
        if stage:
            stages.add(stage)
    return problems


def bake_graph(document: dict[str, Any], root: Path | None) -> nx.DiGraph:
    """The parent -> child graph bake would build.

    Nodes are target names; a parent outside the file is a node named after
    where it comes from (`docker-image://REF`, or the pulled reference). With
    `root`, the parent is what the Dockerfile's last FROM resolves to through
    the named contexts (what BuildKit does); without, the named contexts alone.
    """
    graph = nx.DiGraph()
    for name, target in document.get("target", {}).items():
        graph.add_node(name)
        contexts = target.get("contexts", {})
        refs = list(contexts)
        if root is not None:
            found = froms((root / target["context"] / target.get("dockerfile", "Dockerfile")).read_text(encoding="utf-8"))
            refs = found[-1:] and [found[-1][0]]
        for ref in refs:
            source = contexts.get(ref, ref)
            parent = source[len("target:"):] if source.startswith("target:") else source
            graph.add_edge(parent, name)
    return graph


def plan_graph(nodes: Iterable[Node], options: BakeOptions) -> nx.DiGraph:
    """The plan's graph in the terms of `bake_graph`, for comparing the two."""
    kept = _narrow(list(nodes), options.platforms)
    by_name = {n.name: n for n in kept}
    graph = nx.DiGraph()
    for node in kept:
        if node.kind != "image":
            continue
        graph.add_node(node.name)
        parent = by_name[node.parent] if node.parent else None
        if parent is None:
            continue
        if parent.kind == "image":
            graph.add_edge(parent.name, node.name)
        else:
            context = _parent_context(parent, options)
            graph.add_edge(context.get(parent.local_ref, parent.local_ref), node.name)
    return graph


def graph_difference(plan_side: nx.DiGraph, bake_side: nx.DiGraph) -> list[str]:
    """What differs between the two graphs (empty when bake builds exactly the plan)."""
    problems = [f"only in the plan: {n}" for n in sorted(set(plan_side) - set(bake_side))]
    problems += [f"only in the bake file: {n}" for n in sorted(set(bake_side) - set(plan_side))]
    problems += [f"edge only in the plan: {a} -> {b}" for a, b in sorted(set(plan_side.edges) - set(bake_side.edges))]
    problems += [f"edge only in the bake file: {a} -> {b}" for a, b in sorted(set(bake_side.edges) - set(plan_side.edges))]
    return problems


def bootstrapped_bases(nodes: list[Node], options: BakeOptions) -> list[Node]:
    """The bases bake takes from outside (built by `stacks build`), in plan order."""
    kept = _narrow(nodes, options.platforms)
    parents = {n.parent for n in kept if n.kind == "image"}
    return [n for n in kept if n.kind == "bootstrap" and n.name in parents]
