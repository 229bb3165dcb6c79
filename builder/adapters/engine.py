"""What stacks needs of a container engine, in the project's own types.

Every stage above `adapters/` talks to the engine through the `Engine`
protocol and sees images only as `ImageInfo` values: no object of the
docker SDK leaves this package, and every failure of the engine arrives as
one of the errors below. The Docker implementation is
`builder.adapters.docker.DockerEngine`; the unit tests use one fake
(`tests/unit/fakes.py`) against the same protocol.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from builder.adapters.containers import ContainerRunner
from builder.plan.render import Mode

LineSink = Callable[[str], None]


class EngineError(Exception):
    """The engine refused or failed a request (unreachable, API error, disk full, ...)."""


class BuildFailed(EngineError):
    """A build that ran and failed: carries the failing step."""

    def __init__(self, message: str, step: str | None):
        super().__init__(message)
        self.step = step


class Cancelled(EngineError):
    """The run was interrupted while this build ran."""


class PushFailed(EngineError):
    """The engine could not push a tag; the message is the engine's (it never contains credentials)."""


@dataclass(frozen=True)
class ImageInfo:
    """One image as stacks needs to know it.

    A listing row (`Engine.listing`) fills id, tags, labels, size and
    created; an inspection (`Engine.image`) fills the rest too. `created` is
    ISO 8601 in UTC, so images of one listing sort by it.
    """

    id: str
    tags: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    size: int | None = None
    created: str = ""
    os: str = ""
    architecture: str = ""
    repo_digests: tuple[str, ...] = ()

    @property
    def platform(self) -> str:
        """`os/architecture`, e.g. linux/amd64 ("" when the engine did not say)."""
        return f"{self.os}/{self.architecture}" if self.os and self.architecture else ""

    @classmethod
    def from_listing(cls, row: Mapping[str, Any]) -> ImageInfo:
        """From one entry of the engine's raw `GET /images/json` answer."""
        tags = tuple(t for t in (row.get("RepoTags") or ()) if t and t != "<none>:<none>")
        digests = tuple(d for d in (row.get("RepoDigests") or ()) if d and not d.startswith("<none>"))
        return cls(str(row.get("Id", "")), tags, dict(row.get("Labels") or {}), row.get("Size"),
                   unix_to_iso(int(row.get("Created") or 0)), repo_digests=digests)

    @classmethod
    def from_inspect(cls, attrs: Mapping[str, Any]) -> ImageInfo:
        """From the engine's `GET /images/{name}/json` answer."""
        config = attrs.get("Config") or {}
        return cls(str(attrs.get("Id", "")), tuple(attrs.get("RepoTags") or ()), dict(config.get("Labels") or {}),
                   attrs.get("Size"), str(attrs.get("Created") or ""), str(attrs.get("Os") or ""),
                   str(attrs.get("Architecture") or ""), tuple(attrs.get("RepoDigests") or ()))

    @classmethod
    def from_config(cls, image_id: str, config: Mapping[str, Any]) -> ImageInfo:
        """From an OCI image config blob (an image that is only in a registry: its unpacked size is unknown)."""
        inner = config.get("config") or {}
        return cls(image_id, (), dict(inner.get("Labels") or {}), None, str(config.get("created") or ""),
                   str(config.get("os") or ""), str(config.get("architecture") or ""))


def unix_to_iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if seconds else ""


@dataclass(frozen=True)
class BuildRequest:
    context: Path
    tag: str
    labels: dict[str, str]
    build_args: dict[str, str]
    secrets: dict[str, Path] = field(default_factory=dict)
    cache_from: tuple[str, ...] = ()  # registry images whose inline layer cache BuildKit may import
    inline_cache: bool = False  # write layer cache metadata into the image (BUILDKIT_INLINE_CACHE=1)
    no_cache: bool = False  # every step runs again: no layer of an earlier build is reused
    platform: str | None = None  # OS/ARCH to build for (BuildKit --platform); None: the engine's own


class Engine(Protocol):
    """A connected engine plus the way images are built on it."""

    @property
    def mode(self) -> Mode:
        """How Dockerfiles are rendered for this engine's builder ("buildkit" or "classic")."""
        ...

    def describe(self) -> str:
        """One line for people: the engine, its version and the build path with the reason it was chosen."""
        ...

    def platform(self) -> str:
        """The engine's own platform (linux/amd64): what it builds and runs without emulation."""
        ...

    @property
    def containers(self) -> ContainerRunner:
        """Containers of built images, for checks and version reading."""
        ...

    def image(self, ref: str) -> ImageInfo | None:
        """The image under `ref` (a reference or an id), or None when there is none."""
        ...

    def listing(self, label: str) -> list[ImageInfo]:
        """Every image carrying `label` (`key` or `key=value`), from one listing, without inspecting each."""
        ...

    def tag(self, image: str, ref: str) -> None:
        """Give the image `image` (an id or a reference) the reference `ref`."""
        ...

    def untag(self, ref: str) -> None:
        """Remove one tag; the image stays while other tags or containers use it."""
        ...

    def pull(self, ref: str, auth: dict[str, str] | None = None, platform: str | None = None) -> ImageInfo:
        """Pull `ref` (a tag or a digest reference), for `platform` when given, and return the image pulled."""
        ...

    def push(self, repository: str, tag: str, auth: dict[str, str] | None, sink: LineSink | None = None) -> str:
        """Push `repository:tag` (already tagged locally); returns the manifest digest the registry acknowledged."""
        ...

    def import_tarball(self, tarball: Path, ref: str, labels: dict[str, str], platform: str | None = None) -> ImageInfo:
        """A root filesystem tarball as the image `ref`, with `labels`, recorded as an image of `platform`
        (None: the engine's own)."""
        ...

    def build(self, request: BuildRequest, sink: LineSink) -> None:
        """Build and tag `request.tag`; the tag appears only if the build succeeded."""
        ...

    def cancel(self) -> None:
        """Stop running builds without tagging anything half-built."""
        ...
