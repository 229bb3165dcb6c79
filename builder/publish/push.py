"""Publishing: push tested images without ever leaving a registry half updated.

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

Several platforms (publish/platforms.py): before an image's first tag, each
platform's manifest is put in the repository under its own tag
(linux-arm64-<hash12>) and verified against the image that was tested; each
tag then serves an OCI index of those manifests, in the same order as above.
A moving tag is therefore only ever moved once every platform is in.
"""
from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal
from collections.abc import Callable

from builder.adapters.credentials import CredentialError, Keychain, hint
from builder.adapters.engine import Engine, EngineError, PushFailed
from builder.plan.labels import rfc3339
from builder.adapters.registry import Registry, RegistryError, classify
from builder.cache.registry_cache import RegistryCache
from builder.inventory.attached import attach_sbom
from builder.inventory.manifest import Manifest
from builder.inventory.sbom import to_cyclonedx
from builder.publish.platforms import INDEX_TYPE, ImageSet, PlatformManifest, digest_of, index_document, platform_tag
from builder.publish.release import Release
from builder.plan.tags import Tag, push_rank
from builder.reference import same_registry

MANIFEST = "push-manifest.json"
Say = Callable[[str], None]
#: A tag's fate; "not attempted" when an earlier failure stopped the push. Written as is into the manifest.
StepStatus = Literal["planned", "pushed", "unchanged", "failed", "not attempted"]


@dataclass(frozen=True)
class RetryPolicy:
    """Tries per registry operation, and the first wait (doubled after each failure)."""

    attempts: int = 4
    backoff: float = 2.0


class PublishFailed(Exception):
    """A push that could not be completed; the message says what, where and (for credentials) what to do."""


@dataclass
class Step:
    """One tag of one image, in push order."""

    release: Release
    tag: Tag
    status: StepStatus = "planned"
    digest: str | None = None
    size: int | None = None
    image_set: ImageSet | None = None  # set when the tag serves an index of several platforms

    @property
    def ref(self) -> str:
        return f"{self.release.repository}:{self.tag.name}"


def steps(releases: list[Release], sets: list[ImageSet] | None = None) -> list[Step]:
    """Every tag of every image in push order: all immutable tags of all images first, then moving ones,
    `latest` tags last. With `sets` (several platforms), each tag of an image serves all its platforms."""
    if sets is not None:
        return [Step(s.primary, t, image_set=s) for phase in (0, 1, 2) for s in sets for t in s.primary.tags
                if push_rank(t) == phase]
    return [Step(r, t) for phase in (0, 1, 2) for r in releases for t in r.tags if push_rank(t) == phase]


def retry(action: Callable[[], Any], what: str, attempts: int, backoff: float, say: Say,
          sleep: Callable[[float], None] = time.sleep) -> Any:
    """Run `action`; on a network error wait backoff, 2*backoff, 4*backoff... up to `attempts` tries in all."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except (RegistryError, PushFailed) as exc:
            retryable, auth = (exc.retryable, exc.auth) if isinstance(exc, RegistryError) else classify(str(exc))
            if auth:
                raise PublishFailed(f"{what}: {exc}; check the credentials ({hint()})") from None
            if not retryable or attempt == attempts:
                tried = f" (gave up after {attempt} attempts)" if attempt > 1 else ""
                raise PublishFailed(f"{what}: {exc}{tried}") from None
            delay = backoff * 2 ** (attempt - 1)
            say(f"  {what}: {exc}; retrying in {delay:g} s (attempt {attempt + 1} of {attempts})")
            sleep(delay)
    raise AssertionError("unreachable")


@dataclass
class Pusher:
    engine: Engine
    registry: Registry
    auth: dict[str, str] | None
    say: Say
    attempts: int = 4
    backoff: float = 2.0
    overwrite_immutable: bool = False
    cache: RegistryCache | None = None  # images it holds are published registry-side (publish/remote.py)

    def run(self, plan_steps: list[Step]) -> None:
        """Refuse if an immutable tag already holds other content; then push every step in order. On the
        first failure mark it failed, the rest not attempted, and raise."""
        try:
            self.guard_immutable(plan_steps)
        except PublishFailed:
            for step in plan_steps:
                step.status = "not attempted"
            raise
        for index, step in enumerate(plan_steps):
            try:
                self.one(step)
            except (PublishFailed, EngineError):
                step.status = "failed"
                for later in plan_steps[index + 1:]:
                    later.status = "not attempted"
                raise

    def guard_immutable(self, plan_steps: list[Step]) -> None:
        """An immutable tag is a promise: once it serves an image, it serves that image. A rebuild that did
        not reproduce the same bytes (same commit, other content) must not silently replace it."""
        if self.overwrite_immutable:
            return
        taken = []
        for step in plan_steps:
            if step.tag.moving:
                continue
            releases = list(step.image_set.releases.values()) if step.image_set else [step.release]
            for release in releases:
                remote = self._retry(functools.partial(self.registry.manifest, release.path, step.tag.name,
                                                       _platform(release)), f"reading {step.ref}")
                if remote is not None and remote.config != release.image_id:
                    which = f" for {_platform_name(release)}" if step.image_set else ""
                    taken.append(f"{step.ref}{which} (serves image {remote.config}, this build is {release.image_id})")
        if taken:
            raise PublishFailed(
                "immutable tags already hold other content: " + "; ".join(taken)
                + ". Nothing was pushed. Rebuild from the commit that made them, change the tag templates, "
                  "or pass --overwrite-immutable to replace them."
            )

    def one(self, step: Step) -> None:
        if step.image_set is not None:
            self._one_index(step, step.image_set)
            return
        release, tag = step.release, step.tag
        if release.local:
            self.engine.tag(release.node.local_ref, step.ref)
        platform = _platform(release)
        remote = self._retry(lambda: self.registry.manifest(release.path, tag.name, platform), f"reading {step.ref}")
        if remote is not None and remote.config == release.image_id:
            step.status, step.digest, step.size = "unchanged", remote.digest, remote.size
            self.say(f"  unchanged {step.ref}  {remote.digest}")
            return
        digest = self._retry(lambda: self._from_cache(release, tag.name) or self._push_here(release, tag.name),
                             f"pushing {step.ref}")
        remote = self._retry(lambda: self.registry.manifest(release.path, tag.name, platform), f"verifying {step.ref}")
        if remote is None or remote.digest != digest or remote.config != release.image_id:
            served = f"{remote.digest} (image {remote.config})" if remote else "no such tag"
            raise PublishFailed(f"verifying {step.ref}: the registry serves {served}, "
                                f"but the engine pushed {digest} of image {release.image_id}")
        step.status, step.digest, step.size = "pushed", digest, remote.size
        self.say(f"  pushed    {step.ref}  {digest}")

    def _one_index(self, step: Step, image: ImageSet) -> None:
        """Every platform's manifest in the repository (once per image), then the tag serves their index."""
        manifests = [self._platform_manifest(platform, release, image) for platform, release in image.releases.items()]
        body = index_document(manifests)
        want = digest_of(body)
        path, tag = step.release.path, step.tag.name
        size = sum(m.compressed for m in manifests) or None
        if self._retry(lambda: self.registry.head(path, tag), f"reading {step.ref}") == want:
            step.status, step.digest, step.size = "unchanged", want, size
            self.say(f"  unchanged {step.ref}  {want}")
            return
        self._retry(lambda: self.registry.put_manifest(path, tag, body, INDEX_TYPE), f"pushing {step.ref}")
        served = self._retry(lambda: self.registry.head(path, tag), f"verifying {step.ref}")
        if served != want:
            raise PublishFailed(f"verifying {step.ref}: the registry serves {served or 'no such tag'}, "
                                f"but the index of {', '.join(image.releases)} is {want}")
        step.status, step.digest, step.size = "pushed", want, size
        self.say(f"  pushed    {step.ref}  {want} ({len(manifests)} platforms)")

    def _platform_manifest(self, platform: str, release: Release, image: ImageSet) -> PlatformManifest:
        """The platform's manifest in the target repository under its own tag, its config verified to be the
        image that was built and tested there; pushed (or copied from the cache) unless it is there already."""
        if platform in image.pushed:
            return image.pushed[platform]
        tag = platform_tag(platform, release.node.hash)
        ref = f"{release.repository}:{tag}"
        found = self._retry(lambda: self.registry.raw_manifest(release.path, tag), f"reading {ref}")
        if found is None or _config(found[0]) != release.image_id:
            if release.local:
                self.engine.tag(release.node.local_ref, ref)
            self._retry(lambda: self._from_cache(release, tag) or self._push_here(release, tag), f"pushing {ref}")
            found = self._retry(lambda: self.registry.raw_manifest(release.path, tag), f"verifying {ref}")
            if found is None or _config(found[0]) != release.image_id:
                served = f"image {_config(found[0])}" if found else "no such tag"
                raise PublishFailed(f"verifying {ref}: the registry serves {served}, but {release.node.name} for "
                                    f"{platform} is image {release.image_id}")
            self.say(f"  pushed    {ref}  {found[2]}")
        body, media_type, digest = found
        image.pushed[platform] = PlatformManifest(platform, digest, len(body), media_type or _DOCKER_MANIFEST,
                                                  _compressed(body))
        return image.pushed[platform]

    def _from_cache(self, release: Release, tag: str) -> str | None:
        """The digest after a registry-side copy from the cache, or None when the cache cannot serve this image."""
        from builder.publish.remote import copy_manifest

        if self.cache is None:
            return None
        hit = self.cache.lookup(release.node)
        if hit is None or hit.image_id != release.image_id or not same_registry(self.cache.host, self.registry.host):
            return None
        digest = copy_manifest(self.registry, self.cache.path, hit.digest, release.path, tag)
        self.say(f"    copied from the cache {hit.ref} (blobs mounted, nothing uploaded)")
        return digest

    def _push_here(self, release: Release, tag: str) -> str:
        """Push through the engine; an image that is only in the cache (another registry) is pulled first."""
        ref = f"{release.repository}:{tag}"
        if release.remote is not None:
            hit = release.remote.hit
            if self.cache is None or not self.cache.pull(release.node, hit):
                raise PublishFailed(f"pushing {ref}: {release.node.name} is only in the cache {hit.ref}, "
                                    "and pulling it failed")
            release.image, release.remote = self.engine.image(release.node.local_ref), None
            self.engine.tag(release.node.local_ref, ref)
        return self.engine.push(release.repository, tag, self.auth, self._layer)

    def _layer(self, line: str) -> None:
        """A layer's final state from the engine (not its progress bar): long pushes show they are alive."""
        if any(word in line for word in ("Pushed", "Mounted from", "Retrying")):
            self.say(f"    {line}")

    def _retry(self, action: Callable[[], Any], what: str) -> Any:
        return retry(action, what, self.attempts, self.backoff, self.say)


_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def _config(body: bytes) -> str | None:
    """The config digest (= image id) a single-image manifest names; None for anything else."""
    try:
        return json.loads(body).get("config", {}).get("digest")
    except (ValueError, AttributeError):
        return None


def _compressed(body: bytes) -> int:
    manifest = json.loads(body)
    return sum(int(part.get("size", 0)) for part in [manifest.get("config") or {}, *manifest.get("layers", [])])


def _platform_name(release: Release) -> str:
    return "/".join(_platform(release))


def _platform(release: Release) -> tuple[str, str]:
    image = release.image
    return (image.os or "linux", image.architecture or "amd64") if image is not None else ("linux", "amd64")


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
            "image_size": release.image.size if release.image is not None else None,
            "image_id": release.image_id, "hash": release.node.hash,
            "versions": release.versions.versions if release.versions else {},
            "status": _image_status(list(states.values())), "tag_status": states,
            "immutable": [s.tag.name for s in mine if not s.tag.moving],
            **_platforms_of(mine),
        })
    return {"registry": registry, "complete": complete, "finished": rfc3339(datetime.now(timezone.utc)), "images": images}


def _platforms_of(mine: list[Step]) -> dict[str, Any]:
    """Per platform of a multi-platform image: the digest of its manifest and the image id that was tested."""
    image = next((s.image_set for s in mine if s.image_set is not None), None)
    if image is None:
        return {}
    return {"platforms": {platform: {"digest": image.pushed[platform].digest if platform in image.pushed else None,
                                     "image_id": release.image_id, "hash": release.node.hash}
                          for platform, release in image.releases.items()}}


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


def release_json(release: Release) -> dict[str, Any]:
    return {
        "image": release.node.name, "repository": release.repository, "state": release.state,
        "tags": [{"name": t.name, "template": t.template, "moving": t.moving} for t in release.tags],
        "pending_templates": release.pending,
        "versions": release.versions.versions if release.versions else {},
        "unchecked": release.versions.unchecked if release.versions else [],
        "problems": release.problems,
    }


def attach_sboms(registry: Registry, releases: list[Release], plan_steps: list[Step],
                 manifests: dict[str, Manifest], say: Say, attempts: int = 4, backoff: float = 2.0) -> None:
    """Attach each image's SBOM to every manifest digest its tags serve (an OCI artifact whose subject is that
    manifest: builder/inventory/attached.py); an image without a known manifest is said, not attached."""
    for release in releases:
        image = next((s.image_set for s in plan_steps if s.release is release and s.image_set), None)
        if image is not None:
            _attach_platforms(registry, image, manifests, say, attempts, backoff)
            continue
        digests = dict.fromkeys(s.digest for s in plan_steps if s.release is release and s.digest)
        manifest = manifests.get(release.node.name)
        if manifest is None:
            say(f"  no SBOM for {release.node.name}: its manifest is not known here (`stacks test` takes it)")
            continue
        sbom = to_cyclonedx(manifest).encode()
        for digest in digests:
            assert digest is not None
            attach = functools.partial(_attach, registry, release.path, digest, sbom)
            artifact = retry(attach, f"attaching the SBOM of {release.repository}@{digest}", attempts, backoff, say)
            say(f"  SBOM      {release.repository}@{digest[:19]}  {artifact}")


def _attach_platforms(registry: Registry, image: ImageSet, manifests: dict[str, Manifest], say: Say,
                      attempts: int, backoff: float) -> None:
    """A multi-platform image: each platform's SBOM to its own manifest (`manifests` by `name@platform`)."""
    for platform, pushed in image.pushed.items():
        release = image.releases[platform]
        manifest = manifests.get(f"{image.name}@{platform}")
        if manifest is None:
            say(f"  no SBOM for {image.name} on {platform}: its manifest is not known here (`stacks test` takes it)")
            continue
        attach = functools.partial(_attach, registry, release.path, pushed.digest, to_cyclonedx(manifest).encode())
        artifact = retry(attach, f"attaching the SBOM of {release.repository}@{pushed.digest} ({platform})",
                         attempts, backoff, say)
        say(f"  SBOM      {release.repository}@{pushed.digest[:19]} ({platform})  {artifact}")


def _attach(registry: Registry, repository: str, digest: str, sbom: bytes) -> str:
    found = registry.raw_manifest(repository, digest)
    subject_type = found[1] if found is not None else "application/vnd.oci.image.manifest.v1+json"
    return attach_sbom(registry, repository, digest, subject_type, sbom)


def push_releases(engine: Engine, host: str, releases: list[Release], plan_steps: list[Step], summary: str,
                  say: Say, keychain: Keychain, policy: RetryPolicy, overwrite_immutable: bool = False,
                  cache: RegistryCache | None = None, manifests: dict[str, Manifest] | None = None) -> str | None:
    """Check access, then push every step, then attach each image's SBOM (`manifests`: by image name; None
    attaches none); None when all went well, else what went wrong."""
    attempts, backoff = policy.attempts, policy.backoff
    try:
        try:
            credentials = keychain.lookup(host)
        except CredentialError as exc:
            raise RegistryError(str(exc), auth=True) from None
        api = Registry(host, credentials)
        say(f"pushing {summary}" + (f" as {credentials.describe()}" if credentials else ""))
        retry(lambda: api.check(releases[0].path), f"checking access to {host}", attempts, backoff, say)
        auth = credentials.engine_auth(host) if credentials else None
        Pusher(engine, api, auth, say, attempts, backoff, overwrite_immutable, cache).run(plan_steps)
        if manifests is not None:
            attach_sboms(api, releases, plan_steps, manifests, say, attempts, backoff)
        return None
    except (PublishFailed, RegistryError, EngineError) as exc:
        for step in plan_steps:
            step.status = "not attempted" if step.status == "planned" else step.status
        return str(exc)
