"""`stacks push` and `stacks tags`: publish/push.py does the publishing, this module talks to the user.

Selecting what to publish, printing each release, the exit status and the
summary lines live here, so the publishing code stays free of the CLI.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from builder.app.workspace import Workspace
from builder.plan.sizes import human_size
from builder.publish.platforms import ImageSet, blocked, describe_platforms, disagreements, group, platforms_json
from builder.publish.push import MANIFEST, describe, manifest_document, push_releases, release_json, steps
from builder.publish.release import READY, Release, prepare, publishable, refusals, with_registry
from builder.specification.models import Settings
from builder.files import atomic_write
from builder.cache.registry_cache import RegistryCache
from builder.cache.skipping import passing_record
from builder.inventory.manifest import Manifest
from builder.inventory.read import ReadFailed
from builder.inventory.taking import known, take
from builder.plan.versions import probes


def _load_platforms(spec_file: Path, images: list[str], registry: str | None, out: Path, only_verified: bool,
                    cache_choice: tuple[str | None, bool], platforms: tuple[str, ...],
                    ) -> tuple[Workspace, Settings, dict[str, tuple[list[Release], Path]], Any]:
    """The releases of each platform asked for (each prepared against its own plan, test reports and records),
    with the folder of that platform's test report."""
    ws = Workspace(spec_file=spec_file, out=out, say=_say)
    plans = ws.platform_plans(platforms)
    settings = with_registry(plans[0].spec.model.settings, registry)
    cache = ws.registry_cache(plans[0], cache_choice)
    by_platform = {}
    for plan in plans:
        nodes = publishable(plan, ws.select(plan, images, only_verified), images)
        folder = ws.platform_out(plan)
        by_platform[plan.platform] = (prepare(plan, nodes, ws.engine, settings, folder, cache=cache,
                                              records=ws.records), folder)
    if not any(releases for releases, _ in by_platform.values()):
        raise click.ClickException("nothing to publish: no selected image has `push: true`")
    return ws, settings, by_platform, cache


def run_tags(spec_file: Path, images: list[str], registry: str | None, out: Path, only_verified: bool,
             as_json: bool, platforms: tuple[str, ...] = ()) -> int:
    """`stacks tags`: resolved tags of built images, templates of the others; exit 1 if a built image has a problem
    (with several platforms also: its platforms resolve different tags). Not being built or tested is no problem
    here, for one platform or several: it is what the state says."""
    _, _, by_platform, _ = _load_platforms(spec_file, images, registry, out, only_verified, (None, True), platforms)
    releases, sets = _by_image(by_platform)
    if as_json:
        rows = [release_json(r) for r in releases]
        if sets is not None:
            rows = [{**row, "platforms": platforms_json(image)} for row, image in zip(rows, sets)]
        click.echo(json.dumps(rows, indent=2))
    else:
        _describe(releases, sets)
    every = [r for image in sets for r in image.releases.values()] if sets is not None else releases
    disagreeing = [p for image in sets for p in disagreements(image)] if sets is not None else []
    return 1 if disagreeing or any(r.problems for r in every) else 0


def _by_image(by_platform: dict[str, tuple[list[Release], Path]]) -> tuple[list[Release], list[ImageSet] | None]:
    """The releases an image's tags are published from, and with several platforms each image's set across
    them (the first platform's release is the set's primary)."""
    if len(by_platform) == 1:
        releases, _ = next(iter(by_platform.values()))
        return releases, None
    sets = group({platform: releases for platform, (releases, _) in by_platform.items()})
    return [image.primary for image in sets], sets


def _describe(releases: list[Release], sets: list[ImageSet] | None) -> None:
    """`stacks tags` and `push --dry-run` in text: each image's tags, and a line per platform when there are several."""
    for index, release in enumerate(releases):
        click.echo("\n".join(describe(release) + (describe_platforms(sets[index]) if sets is not None else [])))


def run_push(spec_file: Path, images: list[str], registry: str | None, dry_run: bool, out: Path,
             manifest: Path | None, only_verified: bool, overwrite_immutable: bool = False,
             cache: tuple[str | None, bool] = (None, True), platforms: tuple[str, ...] = ()) -> int:
    """`stacks push`: 0 when every tag is in the registry, 1 when the push was refused or failed. Several
    platforms: each tag serves an OCI index of every platform's image (publish/platforms.py)."""
    ws, settings, by_platform, remote = _load_platforms(spec_file, images, registry, out, only_verified, cache,
                                                        platforms)
    releases, sets = _by_image(by_platform)
    if sets is None:
        [(_, folder)] = by_platform.values()
        problems = refusals(releases, folder)
    else:
        problems = [f"{platform}: {p}" for platform, (rs, folder) in by_platform.items() for p in refusals(rs, folder)]
        problems += blocked(sets)
    host = settings.registry.host
    plan_steps = steps(releases, sets)
    if dry_run or problems:
        _describe(releases, sets)
    if problems:
        for problem in problems:
            _say(f"error: {problem}")
        _say(f"nothing was pushed: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
        return 1
    assert all(r.state == READY for r in releases)
    pinned = sum(not s.tag.moving for s in plan_steps)
    across = f" ({len(sets[0].releases) if sets else 1} platforms each)" if sets else ""
    summary = (f"{len(releases)} images{across}, {len(plan_steps)} tags to {host}"
               f" ({pinned} immutable first, then {len(plan_steps) - pinned} moving)")
    if dry_run:
        click.echo(f"dry run: would push {summary}; nothing was pushed")
        return 0
    known_manifests = (release_manifests(ws, releases, remote) if sets is None
                       else platform_manifests(ws, sets, remote))
    failure = push_releases(ws.engine, host, releases, plan_steps, summary, _say, ws.keychain, ws.retry_policy(),
                            overwrite_immutable, remote, known_manifests)
    path = manifest or out / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(manifest_document(releases, plan_steps, host, failure is None), indent=2) + "\n")
    counts = {s: sum(step.status == s for step in plan_steps) for s in ("pushed", "unchanged", "failed", "not attempted")}
    _say(", ".join(f"{n} {s}" for s, n in counts.items() if n or s in ("pushed", "unchanged")) + f" tags; manifest: {path}")
    if failure:
        _say(f"error: {failure}")
        if any(step.status != "not attempted" for step in plan_steps):
            moved = any(step.status == "pushed" and step.tag.moving for step in plan_steps)
            _say("some moving tags were updated before the failure" if moved else "no moving tag was changed")
            _say("run `stacks push` again to finish: tags already in the registry are not pushed again")
        return 1
    size = sum(next((s.size for s in plan_steps if s.release is r and s.size), 0) for r in releases)
    _say(f"done: {len(releases)} images in {host} ({human_size(size)} compressed)")
    return 0


def platform_manifests(ws: Workspace, sets: list[ImageSet], cache: RegistryCache | None) -> dict[str, Manifest]:
    """The manifest of each image on each platform, by `name@platform` (what push.py attaches per platform)."""
    found: dict[str, Manifest] = {}
    for image in sets:
        for platform, release in image.releases.items():
            for name, manifest in release_manifests(ws, [release], cache).items():
                found[f"{name}@{platform}"] = manifest
    return found


def release_manifests(ws: Workspace, releases: list[Release], cache: RegistryCache | None) -> dict[str, Manifest]:
    """The manifest of each release's image: taken by its test (kept here, or in its record in the cache), else
    read now from the local image."""
    found: dict[str, Manifest] = {}
    for release in releases:
        image_id = release.image_id
        if image_id is None:
            continue
        record = passing_record(release.node, image_id, ws.records, cache)
        manifest = known(ws.manifests, image_id, record)
        if manifest is None and release.local:
            try:
                plan = ws.build_plan
                manifest = take(ws.engine.containers, ws.manifests, release.node, image_id,
                                release.image.platform if release.image else "", probes(release.node.chain, plan[release.node.root].base))
            except ReadFailed as exc:
                _say(f"warning: {exc}")
        if manifest is not None:
            found[release.node.name] = manifest
    return found


def _say(line: str) -> None:
    click.echo(line, err=True)
