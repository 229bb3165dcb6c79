"""The CI job matrix: the plan cut into jobs that each build a subtree of the DAG.

One CI machine cannot build a large matrix in time, and a job per image would
rebuild the shared parents (foundation, python, lab) over and over. So each
platform's part of the plan is cut in two stages:

* `roots`: one job per root base. It builds the top of that tree, every image
  that more than one job needs (the "trunk"); they reach the next stage
  through the registry cache, or, where the cache is read-only, as the job's
  artifact (`refs`, `artifact`). A small tree is built whole by its roots job.
* `branches`: the subtrees that hang below a trunk, packed into jobs of about
  equal weight (the `weight` of a node: its build slots). A branch job finds
  the trunk images by content hash in the cache (or in the artifacts of the
  roots jobs it `needs`) and builds only its own subtree.

No job publishes: the workflow's publish job pushes every platform's images
from the cache once all jobs passed.

An image's platforms are its parent's narrowed by its fragments, so a
platform's part of the plan is closed under parents and each platform's
jobs run on a runner of that platform. Nothing here touches Docker.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any
from collections.abc import Callable, Iterable

from builder.plan.plan import Node, Plan

#: GitHub-hosted runners per platform; `--runner PLATFORM=LABEL` replaces or adds one.
DEFAULT_RUNNERS = {"linux/amd64": "ubuntu-24.04", "linux/arm64": "ubuntu-24.04-arm"}
DEFAULT_MAX_JOBS = 8
STAGES = ("roots", "branches")
#: Name prefix of the CI artifact in which a roots job hands its images to branch jobs.
ARTIFACT_PREFIX = "images-"


@dataclass(frozen=True)
class Job:
    """One CI job: the nodes it builds (parents first) and the roots jobs whose images it loads."""

    id: str
    stage: str
    platform: str
    runner: str
    nodes: tuple[str, ...]
    refs: tuple[str, ...]  # local references of `nodes`, for `docker save` of a roots job
    images: tuple[str, ...]  # the nodes that are images (what `stacks test` checks)
    needs: tuple[str, ...]
    weight: int
    export: bool = False  # a roots job whose images some branch job loads

    def to_json(self) -> dict[str, Any]:
        """Strings joined by spaces: the workflow passes them to its shell commands through `env:`, as words."""
        return {
            "id": self.id, "stage": self.stage, "platform": self.platform,
            "arch": self.platform.rsplit("/", 1)[-1], "runner": self.runner,
            "nodes": " ".join(self.nodes), "images": " ".join(self.images), "refs": " ".join(self.refs),
            "needs": " ".join(self.needs), "weight": self.weight, "export": self.export,
            "artifact": ARTIFACT_PREFIX + self.id, "artifacts": artifact_pattern(self.needs),
        }


@dataclass(frozen=True)
class Matrix:
    jobs: tuple[Job, ...]
    skipped_platforms: tuple[str, ...] = ()  # platforms some node supports but no runner builds

    def stage(self, name: str) -> list[Job]:
        return [job for job in self.jobs if job.stage == name]

    def to_json(self) -> dict[str, Any]:
        """The shape the workflow reads: `fromJSON(...).roots` and `.branches` are strategy.matrix values."""
        return {
            **{name: {"include": [job.to_json() for job in self.stage(name)]} for name in STAGES},
            "platforms": sorted({job.platform for job in self.jobs}),
            "skipped_platforms": list(self.skipped_platforms),
            "jobs": len(self.jobs),
        }


def make_matrix(plan: Plan, images: Iterable[str] = (), only_verified: bool = False,
                platforms: Iterable[str] = (), runners: dict[str, str] | None = None,
                max_jobs: int = DEFAULT_MAX_JOBS, plan_for: Callable[[str], Plan] | None = None) -> Matrix:
    """Cut the selected part of `plan` into jobs per platform (all platforms of the selection by default).
    None of them publishes: the workflow's publish job pushes every platform's images from the cache.

    `plan_for(platform)`: that platform's plan as an engine of its own platform makes it, so a job's `refs`
    are the local tags its native runner builds (each platform has its own hashes); without it every
    platform's jobs name `plan`'s nodes."""
    selected = plan.select(images, only_verified)
    runner_of = {**DEFAULT_RUNNERS, **(runners or {})}
    present = sorted({p for node in selected for p in node.platforms})
    wanted = list(platforms) or present
    skipped = tuple(p for p in wanted if p not in runner_of)
    jobs: list[Job] = []
    for platform in wanted:
        if platform in runner_of:
            own = plan_for(platform).select(images, only_verified) if plan_for is not None else selected
            nodes = [n for n in own if platform in n.platforms]
            found = _platform_jobs(nodes, platform, runner_of[platform], max_jobs)
            needed = {need for job in found for need in job.needs}
            jobs += [replace(job, export=job.id in needed) for job in found]
    return Matrix(tuple(jobs), skipped)


def artifact_pattern(job_ids: Iterable[str]) -> str:
    """A glob (actions/download-artifact's `pattern`) matching the artifacts of exactly these jobs."""
    names = [ARTIFACT_PREFIX + job_id for job_id in job_ids]
    if len(names) <= 1:
        return names[0] if names else ""
    return "{" + ",".join(names) + "}"


def _platform_jobs(nodes: list[Node], platform: str, runner: str, max_jobs: int) -> list[Job]:
    if not nodes:
        return []
    order = {n.name: i for i, n in enumerate(nodes)}
    by_name = {n.name: n for n in nodes}
    children: dict[str, list[str]] = {n.name: [] for n in nodes}
    for node in nodes:
        if node.parent in children:
            children[node.parent].append(node.name)
    subtree = _subtree_weights(nodes, children)
    total = sum(n.weight for n in nodes)
    limit = max(max(n.weight for n in nodes), math.ceil(total / max(1, max_jobs)))
    arch = platform.rsplit("/", 1)[-1]
    jobs: list[Job] = []
    branches: list[list[str]] = []
    trunk_job: dict[str, str] = {}  # trunk node -> id of its roots job
    for root, pulled in _tops(nodes, by_name, children):
        trunk: list[str] = []
        hanging: list[list[str]] = []
        _split(root, children, subtree, limit, trunk, hanging)
        if not trunk:  # the whole tree fits in one job
            trunk, hanging = hanging[0], []
        job_id = _job_id(arch, trunk[0], 0)
        trunk_job.update({name: job_id for name in trunk})
        jobs.append(_job(job_id, "roots", platform, runner, sorted(pulled + trunk, key=order.__getitem__), by_name, ()))
        branches += hanging
    for packed in _pack(branches, subtree, limit, max_jobs, order):
        names = sorted((name for group in packed for name in group), key=order.__getitem__)
        needs = sorted({trunk_job[by_name[group[0]].parent] for group in packed})  # type: ignore[index]
        jobs.append(_job(_job_id(arch, packed[0][0], len(packed) - 1), "branches", platform, runner, names, by_name, tuple(needs)))
    return jobs


def _tops(nodes: list[Node], by_name: dict[str, Node], children: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """The tree tops that get a roots job each, with the pulled base they start from.

    A pulled base is never worth a job of its own (every job can pull it), so
    each image on it is the top of its own tree; a bootstrapped base is built
    once, in the roots job of its tree.
    """
    tops: list[tuple[str, list[str]]] = []
    for node in nodes:
        if node.parent in by_name:
            continue
        if node.kind == "pull":
            tops += [(child, [node.name]) for child in children[node.name]]
        else:
            tops.append((node.name, []))
    return tops


def _subtree_weights(nodes: list[Node], children: dict[str, list[str]]) -> dict[str, int]:
    weights: dict[str, int] = {}
    for node in reversed(nodes):  # children before parents
        weights[node.name] = node.weight + sum(weights[c] for c in children[node.name])
    return weights


def _split(name: str, children: dict[str, list[str]], subtree: dict[str, int], limit: int,
           trunk: list[str], hanging: list[list[str]]) -> None:
    """A subtree light enough for one job hangs below the trunk; a heavier one's top joins the trunk."""
    if subtree[name] <= limit:
        hanging.append(_subtree_of(name, children))
        return
    trunk.append(name)
    for child in children[name]:
        _split(child, children, subtree, limit, trunk, hanging)


def _subtree_of(name: str, children: dict[str, list[str]]) -> list[str]:
    """`name` followed by everything below it (the group's root comes first)."""
    found, stack = [], [name]
    while stack:
        current = stack.pop()
        found.append(current)
        stack += reversed(children[current])
    return found


def _pack(groups: list[list[str]], subtree: dict[str, int], limit: int, max_jobs: int,
          order: dict[str, int]) -> list[list[list[str]]]:
    """First-fit decreasing into jobs of at most `limit` weight, then at most `max_jobs` jobs
    (the lightest two merged while there are too many)."""
    ranked = sorted(groups, key=lambda g: (-subtree[g[0]], order[g[0]]))
    bins: list[list[list[str]]] = []
    for group in ranked:
        weight = subtree[group[0]]
        target = next((b for b in bins if _weight(b, subtree) + weight <= limit), None)
        if target is None:
            bins.append([group])
        else:
            target.append(group)
    while len(bins) > max(1, max_jobs):
        bins.sort(key=lambda b: (-_weight(b, subtree), order[b[0][0]]))
        lightest = bins.pop()
        bins[-1] += lightest
    return sorted(bins, key=lambda b: min(order[g[0]] for g in b))


def _weight(packed: list[list[str]], subtree: dict[str, int]) -> int:
    return sum(subtree[group[0]] for group in packed)


def _job_id(arch: str, first: str, more: int) -> str:
    return f"{arch}-{first}" + (f"+{more}" if more else "")


def _job(job_id: str, stage: str, platform: str, runner: str, names: list[str], by_name: dict[str, Node],
         needs: tuple[str, ...]) -> Job:
    nodes = [by_name[n] for n in names]
    return Job(
        id=job_id, stage=stage, platform=platform, runner=runner, nodes=tuple(names),
        refs=tuple(n.local_ref for n in nodes), images=tuple(n.name for n in nodes if n.kind == "image"),
        needs=needs, weight=sum(n.weight for n in nodes),
    )


def table(matrix: Matrix) -> str:
    """A human view: one line per job."""
    lines = []
    for job in matrix.jobs:
        needs = f"  (loads {', '.join(job.needs)})" if job.needs else ""
        lines.append(f"{job.stage:<8}  {job.id:<40}  {job.runner:<18}  weight {job.weight:>3}  {' '.join(job.nodes)}{needs}")
    lines.append(f"{len(matrix.jobs)} jobs: {len(matrix.stage('roots'))} roots, {len(matrix.stage('branches'))} branches")
    if matrix.skipped_platforms:
        lines.append(f"no runner for {', '.join(matrix.skipped_platforms)} (add --runner PLATFORM=LABEL): not in the matrix")
    return "\n".join(lines)


def parse_runners(values: Iterable[str]) -> dict[str, str]:
    """`PLATFORM=LABEL` options -> {platform: runner label}."""
    runners = {}
    for value in values:
        platform, sep, label = value.partition("=")
        if not sep or not platform.strip() or not label.strip():
            raise ValueError(f"--runner wants PLATFORM=LABEL (e.g. linux/arm64=ubuntu-24.04-arm), not '{value}'")
        runners[platform.strip()] = label.strip()
    return runners
