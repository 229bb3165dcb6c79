"""`stacks push` and `stacks tags`: publish tested images without ever leaving a registry half updated.

The order is the safety: nothing starts while any image has a problem
(release.py); then every image's immutable tags are pushed (and verified),
and only then the moving ones (`bookworm`, version tags, `latest` last), so a
failure part-way leaves every moving tag where it was. Each tag is first
looked up in the registry: a tag that already holds the image is left alone,
which makes a re-run after a failure finish the job without pushing anything
twice, and a re-run with nothing changed push nothing. After each push the
registry is asked which manifest the tag now serves; it must be the one the
engine pushed, and its config must be the image that was built and tested.
Network errors are retried with exponential backoff; refused credentials are
not. A JSON manifest of what was published is written for CI and release notes.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import click
import docker.errors

from builder.adapters.docker import Engine, PushFailed, detect
from builder.plan.labels import rfc3339
from builder.plan.plan import load_plan
from builder.adapters.registry import Registry, RegistryError, classify, credentials_for
from builder.publish.release import READY, Release, prepare, publishable, refusals, with_registry
from builder.reports.report import _atomic_write, human_size
from builder.plan.tags import Tag

ATTEMPTS_ENV, BACKOFF_ENV = "STACKS_PUSH_ATTEMPTS", "STACKS_PUSH_BACKOFF"
MANIFEST = "push-manifest.json"
Say = Callable[[str], None]


class PublishFailed(Exception):
    """A push that could not be completed; the message says what, where and (for credentials) what to do."""


@dataclass
class Step:
    """One tag of one image, in push order."""

    release: Release
    tag: Tag
    status: str = "planned"  # pushed | unchanged | failed | not attempted (a failure came first)
    digest: str | None = None
    size: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.release.repository}:{self.tag.name}"


def steps(releases: list[Release]) -> list[Step]:
    """Every tag of every image in push order: all immutable tags first, then moving ones, `latest` tags last."""
    def rank(tag: Tag) -> int:
        return 0 if not tag.moving else 2 if tag.name == "latest" else 1

    return [Step(r, t) for phase in (0, 1, 2) for r in releases for t in r.tags if rank(t) == phase]


def retry(action: Callable[[], Any], what: str, attempts: int, backoff: float, say: Say,
          sleep: Callable[[float], None] = time.sleep) -> Any:
    """Run `action`; on a network error wait backoff, 2*backoff, 4*backoff... up to `attempts` tries in all."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except (RegistryError, PushFailed) as exc:
            retryable, auth = (exc.retryable, exc.auth) if isinstance(exc, RegistryError) else classify(str(exc))
            if auth:
                raise PublishFailed(f"{what}: {exc}; check the credentials ({credentials_hint()})") from None
            if not retryable or attempt == attempts:
                tried = f" (gave up after {attempt} attempts)" if attempt > 1 else ""
                raise PublishFailed(f"{what}: {exc}{tried}") from None
            delay = backoff * 2 ** (attempt - 1)
            say(f"  {what}: {exc}; retrying in {delay:g} s (attempt {attempt + 1} of {attempts})")
            sleep(delay)
    raise AssertionError("unreachable")


def credentials_hint() -> str:
    return "STACKS_REGISTRY_USER and STACKS_REGISTRY_PASSWORD, or `docker login` for the registry"


@dataclass
class Pusher:
    engine: Engine
    registry: Registry
    auth: dict[str, str] | None
    say: Say
    attempts: int = 4
    backoff: float = 2.0
    cache: Any = None  # a RegistryCache: images it holds are published registry-side (publish/remote.py)

    def run(self, plan_steps: list[Step]) -> None:
        """Push every step in order; on the first failure mark it failed, the rest not attempted, and raise."""
        for index, step in enumerate(plan_steps):
            try:
                self.one(step)
            except (PublishFailed, docker.errors.DockerException):
                step.status = "failed"
                for later in plan_steps[index + 1:]:
                    later.status = "not attempted"
                raise

    def one(self, step: Step) -> None:
        release, tag = step.release, step.tag
        self.engine.tag(release.image, step.ref)
        platform = (release.image.attrs.get("Os", "linux"), release.image.attrs.get("Architecture", "amd64"))
        remote = self._retry(lambda: self.registry.manifest(release.path, tag.name, platform), f"reading {step.ref}")
        if remote is not None and remote.config == release.image_id:
            step.status, step.digest, step.size = "unchanged", remote.digest, remote.size
            self.say(f"  unchanged {step.ref}  {remote.digest}")
            return
        digest = self._retry(lambda: self._from_cache(release, tag.name) or self.engine.push(
            release.repository, tag.name, self.auth, self._layer), f"pushing {step.ref}")
        remote = self._retry(lambda: self.registry.manifest(release.path, tag.name, platform), f"verifying {step.ref}")
        if remote is None or remote.digest != digest or remote.config != release.image_id:
            served = f"{remote.digest} (image {remote.config})" if remote else "no such tag"
            raise PublishFailed(f"verifying {step.ref}: the registry serves {served}, "
                                f"but the engine pushed {digest} of image {release.image_id}")
        step.status, step.digest, step.size = "pushed", digest, remote.size
        self.say(f"  pushed    {step.ref}  {digest}")

    def _from_cache(self, release: Release, tag: str) -> str | None:
        """The digest after a registry-side copy from the cache, or None when the cache cannot serve this image."""
        from builder.publish.remote import copy_manifest, same_registry

        hit = self.cache.lookup(release.node) if self.cache is not None else None
        if hit is None or hit.image_id != release.image_id or not same_registry(self.cache.host, self.registry.host):
            return None
        digest = copy_manifest(self.registry, self.cache.path, hit.digest, release.path, tag)
        self.say(f"    copied from the cache {hit.ref} (blobs mounted, nothing uploaded)")
        return digest

    def _layer(self, line: str) -> None:
        """A layer's final state from the engine (not its progress bar): long pushes show they are alive."""
        if any(word in line for word in ("Pushed", "Mounted from", "Retrying")):
            self.say(f"    {line}")

    def _retry(self, action: Callable[[], Any], what: str) -> Any:
        return retry(action, what, self.attempts, self.backoff, self.say)


def push_settings() -> tuple[int, float]:
    """(attempts, backoff seconds) from STACKS_PUSH_ATTEMPTS (default 4) and STACKS_PUSH_BACKOFF (default 2)."""
    try:
        return max(1, int(os.environ.get(ATTEMPTS_ENV, "4"))), max(0.0, float(os.environ.get(BACKOFF_ENV, "2")))
    except ValueError:
        raise click.ClickException(f"{ATTEMPTS_ENV} must be a whole number and {BACKOFF_ENV} a number of seconds") from None


def manifest_document(releases: list[Release], plan_steps: list[Step], registry: str, complete: bool) -> dict[str, Any]:
    """The push manifest: per image its tags in push order, each tag's fate, the digest and sizes."""
    images = []
    for release in releases:
        mine = [s for s in plan_steps if s.release is release]
        states = {s.tag.name: s.status for s in mine}
        digest = next((s.digest for s in mine if s.digest), None)
        size = next((s.size for s in mine if s.size), None)
        images.append({
            "image": release.node.name, "repository": release.repository,
            "tags": [s.tag.name for s in mine], "digest": digest, "size": size,
            "image_size": release.image.attrs.get("Size") if release.image is not None else None,
            "image_id": release.image_id, "hash": release.node.hash,
            "versions": release.versions.versions if release.versions else {},
            "status": _image_status(list(states.values())), "tag_status": states,
            "immutable": [s.tag.name for s in mine if not s.tag.moving],
        })
    return {"registry": registry, "complete": complete, "finished": rfc3339(datetime.now(timezone.utc)), "images": images}


def _image_status(states: list[str]) -> str:
    if "failed" in states:
        return "failed"
    if "not attempted" in states or "planned" in states:
        return "not attempted" if not any(s in ("pushed", "unchanged") for s in states) else "incomplete"
    return "pushed" if "pushed" in states else "unchanged"


def describe(release: Release) -> list[str]:
    """Lines for `stacks tags` and `stacks push --dry-run`."""
    lines = [f"{release.node.name} -> {release.repository} ({release.state})"]
    if release.versions is not None and release.versions.versions:
        lines.append("  versions:  " + ", ".join(f"{k} {v}" for k, v in release.versions.versions.items()))
    if release.versions is not None and release.versions.unchecked:
        lines.append("  declared, not read: " + ", ".join(release.versions.unchecked))
    pinned = [t.name for t in release.tags if not t.moving]
    moving = [t.name for t in release.tags if t.moving]
    if release.pending:
        lines.append("  tags now:  " + (", ".join(pinned + moving) or "-"))
        lines.append("  after the build: " + ", ".join(release.pending))
    else:
        lines.append("  immutable: " + (", ".join(pinned) or "-"))
        lines.append("  moving:    " + (", ".join(moving) or "-"))
    lines += [f"  problem: {p}" for p in release.problems]
    return lines


def _load(spec_file: Path, images: list[str], registry: str | None, out: Path, only_verified: bool,
          cache_choice: tuple[str | None, bool] = (None, True)):
    from builder.app.commands import open_run_cache, select_nodes

    engine = detect()
    plan = load_plan(spec_file, engine.mode)  # type: ignore[arg-type]
    settings = with_registry(plan.spec.model.settings, registry)
    nodes = publishable(plan, select_nodes(plan, images, only_verified), images)
    if not nodes:
        raise click.ClickException("nothing to publish: no selected image has `push: true`")
    cache = open_run_cache(plan, engine, cache_choice)
    return engine, settings, prepare(plan, nodes, engine, settings, out, cache=cache), cache


def run_tags(spec_file: Path, images: list[str], registry: str | None, out: Path, only_verified: bool,
             as_json: bool) -> int:
    """`stacks tags`: resolved tags of built images, templates of the others; exit 1 if a built image has a problem."""
    _, _, releases, _ = _load(spec_file, images, registry, out, only_verified)
    if as_json:
        click.echo(json.dumps([_as_json(r) for r in releases], indent=2))
    else:
        for release in releases:
            click.echo("\n".join(describe(release)))
    return 1 if any(r.problems for r in releases) else 0


def _as_json(release: Release) -> dict[str, Any]:
    return {
        "image": release.node.name, "repository": release.repository, "state": release.state,
        "tags": [{"name": t.name, "template": t.template, "moving": t.moving} for t in release.tags],
        "pending_templates": release.pending,
        "versions": release.versions.versions if release.versions else {},
        "unchecked": release.versions.unchecked if release.versions else [],
        "problems": release.problems,
    }


def run_push(spec_file: Path, images: list[str], registry: str | None, dry_run: bool, out: Path,
             manifest: Path | None, only_verified: bool, cache: tuple[str | None, bool] = (None, True)) -> int:
    """`stacks push`: 0 when every tag is in the registry, 1 when the push was refused or failed."""
    engine, settings, releases, remote = _load(spec_file, images, registry, out, only_verified, cache)
    host = settings.registry.host
    problems = refusals(releases, out)
    plan_steps = steps(releases)
    if dry_run or problems:
        for release in releases:
            click.echo("\n".join(describe(release)))
    if problems:
        for problem in problems:
            _say(f"error: {problem}")
        _say(f"nothing was pushed: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
        return 1
    assert all(r.state == READY for r in releases)
    pinned = sum(not s.tag.moving for s in plan_steps)
    summary = (f"{len(releases)} images, {len(plan_steps)} tags to {host}"
               f" ({pinned} immutable first, then {len(plan_steps) - pinned} moving)")
    if dry_run:
        click.echo(f"dry run: would push {summary}; nothing was pushed")
        return 0
    failure = _push(engine, host, releases, plan_steps, summary, remote)
    path = manifest or out / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, json.dumps(manifest_document(releases, plan_steps, host, failure is None), indent=2) + "\n")
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


def _push(engine: Engine, host: str, releases: list[Release], plan_steps: list[Step], summary: str,
          cache: Any = None) -> str | None:
    """Check access, then push every step; None when all went well, else what went wrong."""
    attempts, backoff = push_settings()
    try:
        credentials = credentials_for(host)
        api = Registry(host, credentials)
        _say(f"pushing {summary}" + (f" as {credentials.describe()}" if credentials else ""))
        retry(lambda: api.check(releases[0].path), f"checking access to {host}", attempts, backoff, _say)
        auth = credentials.engine_auth(host) if credentials else None
        Pusher(engine, api, auth, _say, attempts, backoff, cache).run(plan_steps)
        return None
    except (PublishFailed, RegistryError, docker.errors.DockerException) as exc:
        for step in plan_steps:
            step.status = "not attempted" if step.status == "planned" else step.status
        return str(exc)


def _say(line: str) -> None:
    click.echo(line, err=True)
