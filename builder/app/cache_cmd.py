"""`stacks cache prune`: cache/prune.py decides and deletes, this module gathers its inputs and talks to the user.

The inputs: the cache tag of every node of the current plan (rendered for
BuildKit and for the classic builder, so the plan of either engine stays),
every tag of the release repositories of the plan's images (settings.registry,
or --registry), and the cache repository's manifests. Nothing needs a Docker
engine: the scheduled retention job runs it on a bare runner.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from builder.adapters.registry import Registry, RegistryError
from builder.app.workspace import Workspace
from builder.cache.prune import Decision, Outcome, Removal, decide, delete, read_inventory, released
from builder.cache.registry_cache import node_tag, parse_location
from builder.errors import SpecError
from builder.plan.plan import Plan, make_plan, stack_platforms
from builder.plan.sizes import human_size
from builder.plan.tags import repository
from builder.publish.release import with_registry
from builder.reference import ImageRef

ORDER = "the image config's creation time"


def run_prune(spec_file: Path, cache: str | None, registry: str | None, keep: int, dry_run: bool, as_json: bool) -> int:
    """0: pruned (or a dry run); 1: the registry refused or failed (what happened is printed)."""
    ws = Workspace(spec_file=spec_file, say=_say)
    plans = _plans(ws)
    location = cache or plans[0].spec.model.settings.cache
    if not location or location.lower() == "none":
        raise click.UsageError("no cache to prune: pass --cache HOST[:PORT]/REPOSITORY (or set STACKS_CACHE, settings.cache)")
    where = parse_location(location)
    registries: dict[str, Registry] = {}

    def registry_for(host: str, for_cache: bool = False) -> Registry:
        if host not in registries:
            keychain = ws.cache_keychain if for_cache else ws.keychain
            registries[host] = Registry(host, keychain.lookup(host), timeout=30.0)
        return registries[host]

    cache_registry = registry_for(where.registry, for_cache=True)
    try:
        inventory = read_inventory(cache_registry, where.repository, _say)
        releases = released(registry_for, _release_repositories(plans[0], registry), _say)
    except RegistryError as exc:
        _say(f"error: {exc}")
        _say("nothing was deleted: what is cached or released could not be read")
        return 1
    needed = {node_tag(node) for plan in plans for node in plan if node.kind != "pull"}
    decision = decide(inventory, needed, releases, keep)
    outcome = None if dry_run or not decision.removals else delete(cache_registry, where.repository, decision.removals, _say)
    if as_json:
        click.echo(json.dumps(_document(where.name, keep, dry_run, decision, outcome), indent=2))
    else:
        _print(where.name, keep, dry_run, decision, outcome)
    return 0 if outcome is None or outcome.complete else 1


def _plans(ws: Workspace) -> list[Plan]:
    """The plan as BuildKit renders it, and as the classic builder does (their hashes differ) when it can be,
    each for every platform the stack declares (each platform's cache tags are its own)."""
    first = ws.plan("buildkit")
    plans = [make_plan(first.spec, "buildkit", platform) for platform in stack_platforms(first)]
    try:
        plans += [make_plan(first.spec, "classic", platform) for platform in stack_platforms(first)]
    except SpecError:
        pass  # a plan only BuildKit can build: its tags are the buildkit plan's
    return plans


def _release_repositories(plan: Plan, registry: str | None) -> list[ImageRef]:
    settings = with_registry(plan.spec.model.settings, registry)
    repos = {str(repository(settings, node.repo)): repository(settings, node.repo)
             for node in plan if node.kind == "image" and node.repo}
    return list(repos.values())


def _entry(removal: Removal, decision: Decision) -> dict[str, Any]:
    image = removal.image
    return {
        "tags": list(image.tags) if image else [], "digest": image.digest if image else None,
        "name": image.name if image else None, "platform": image.platform if image else None,
        "created": image.created if image else None, "records": [r.digest for r in removal.records],
        "bytes": decision.size(removal),
    }


def _document(location: str, keep: int, dry_run: bool, decision: Decision, outcome: Outcome | None) -> dict[str, Any]:
    return {
        "cache": location, "keep": keep, "order": "created", "dry_run": dry_run,
        "kept": [{"tags": list(k.image.tags), "digest": k.image.digest, "reasons": list(k.reasons)} for k in decision.kept],
        "remove": [_entry(r, decision) for r in decision.removals],
        "bytes": {"freed": decision.freed, "shared_with_kept": decision.shared},
        "deleted": outcome.deleted if outcome else [],
        "refused": outcome.refused if outcome else None,
        "failed": outcome.failed if outcome else None,
        "stopped_at": _entry(outcome.stopped, decision) if outcome and outcome.stopped else None,
        "records_deleted_of_stopped": outcome.records_gone if outcome else 0,
    }


def _print(location: str, keep: int, dry_run: bool, decision: Decision, outcome: Outcome | None) -> None:
    images = sum(r.image is not None for r in decision.removals)
    records = sum(len(r.records) for r in decision.removals)
    click.echo(f"cache {location}: keeping {_count(len(decision.kept), 'image')} (the current plan, the last {keep} "
               f"builds of each name by {ORDER}, released images, layer-cache tags)")
    for kept in decision.kept:
        click.echo(f"  keep    {', '.join(kept.image.tags)}: {'; '.join(kept.reasons)}")
    for removal in decision.removals:
        click.echo(f"  {'remove':7} {_describe(removal, decision)}")
    totals = (f"{_count(images, 'image')} and {_count(records, 'test record')}, "
              f"{human_size(decision.freed)} ({decision.freed} bytes) of blobs no kept manifest uses; "
              f"{human_size(decision.shared)} more are shared with kept images and stay")
    if not decision.removals:
        click.echo("nothing to remove")
    elif outcome is None:
        click.echo(f"dry run: would remove {totals}; nothing was deleted")
    elif outcome.complete:
        click.echo(f"removed {totals}; the registry frees the space at its garbage collection")
    else:
        click.echo(f"not done: {totals}")
        _print_failure(outcome, decision)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"


def _describe(removal: Removal, decision: Decision) -> str:
    image = removal.image
    records = ", ".join(r.digest for r in removal.records) or "none"
    if image is None:
        return f"{removal.label}: record {records} ({human_size(decision.size(removal))})"
    return (f"{', '.join(image.tags)} ({image.digest}, {image.name or '?'} {image.platform}, created {image.created or '?'}, "
            f"{human_size(decision.size(removal))} with shared blobs; test records: {records})")


def _print_failure(outcome: Outcome, decision: Decision) -> None:
    left = decision.removals[len(outcome.removed):]
    if outcome.refused and not outcome.deleted:
        _say(f"error: {outcome.refused}")
        _say("nothing was deleted. Delete these manifests (digests in the cache repository) another way, "
             "records before their images:")
        for removal in left:
            for record in removal.records:
                click.echo(f"{record.digest}  test record of {removal.label if removal.image else record.subject}")
            if removal.image is not None:
                click.echo(f"{removal.image.digest}  image {removal.label}")
        return
    _say(f"error: {outcome.refused or outcome.failed}")
    _say(f"deleted {len(outcome.deleted)} manifests ({len(outcome.removed)} removals complete) before it stopped")
    if outcome.stopped is not None:
        stopped = outcome.stopped
        _say(f"stopped at {stopped.label}: {outcome.records_gone} of its {len(stopped.records)} test records deleted, "
             + ("its image is still there (the next runner tests it again)" if stopped.image else "nothing else"))
    _say("not deleted: " + ("; ".join(r.label for r in left) or "nothing"))
    _say("run `stacks cache prune` again to finish")


def _say(line: str) -> None:
    click.echo(line, err=True)
