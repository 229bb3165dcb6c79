"""Image references: the one parser and printer of `[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`.

Every layer names images (a base to pull, a local content-addressed tag, a
cache location, a release repository, a bake tag) and asks the same
questions of those names: which registry, which repository inside it, which
tag, which digest. They are answered here, by Docker's reference grammar
(github.com/distribution/reference), so a name means one thing everywhere:

- the first path component is a registry only when it contains '.' or ':'
  or is `localhost` (`myorg/lab` is on Docker Hub, `ghcr.io/org/lab` is not);
  a registry may carry a port, and an IPv6 address goes in brackets;
- repository path components are lowercase letters and digits, joined by
  '.', '_', '__' or runs of '-'; the whole name is at most 255 characters;
- a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; a digest is `ALGORITHM:HEX`
  (sha256, sha384 or sha512, lowercase hex of the algorithm's length);
- `docker.io`, `index.docker.io` and `registry-1.docker.io` are one
  registry, written `docker.io`; a one-component repository there is an
  official image, `library/NAME`.

An `ImageRef` is always valid and normalised: building one from parts checks
them as `parse` does, so `ImageRef.parse(str(ref)) == ref` for every ref.
`str(ref)` is the fully qualified form (`docker.io/library/ubuntu:24.04`),
unambiguous in logs, manifests and registry calls; `ref.familiar` is the
short form people write and the engine lists (`ubuntu:24.04`).
"""
from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass

from builder.errors import Location, Problem

DOCKER_HUB = "docker.io"
#: every name of Docker Hub's registry; `DOCKER_HUB` is the one references are normalised to
DOCKER_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", "registry-1.docker.io"})
#: where Docker Hub's registry API answers (docker.io itself serves a website)
DOCKER_HUB_API = "registry-1.docker.io"
OFFICIAL = "library"
NAME_LIMIT = 255

_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_REGISTRY = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?")
_ALGORITHM = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*")
#: hex length of each digest algorithm Docker accepts
DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
TAG_GRAMMAR = "letters, digits, '_', '.', '-', at most 128 characters, not starting with '.' or '-'"
_PATH_GRAMMAR = "lowercase letters and digits, separated by '.', '_', '__' or '-'"


class InvalidReference(ValueError):
    """A text that is not an image reference Docker would accept; the message says which part and why.

    A ValueError, so callers that turn bad values into located problems keep
    doing so; `problem()` gives that Problem for a caller with a position.
    """

    def __init__(self, text: str, reason: str, what: str = "image reference"):
        self.text, self.reason = text, reason
        super().__init__(f"'{text}' is not a valid {what}: {reason}")

    def problem(self, location: Location | None = None, hint: str | None = None) -> Problem:
        return Problem(str(self), location, hint)


@dataclass(frozen=True)
class ImageRef:
    """A normalised, valid image reference (see the module docstring); tag and digest are optional."""

    registry: str  # host[:port]; docker.io for Docker Hub
    repository: str  # the path inside the registry, as its API names it: library/ubuntu, org/lab
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        registry = normalize_registry(self.registry)
        repository = self.repository
        if registry == DOCKER_HUB and repository and "/" not in repository:
            repository = f"{OFFICIAL}/{repository}"
        object.__setattr__(self, "registry", registry)
        object.__setattr__(self, "repository", repository)
        reason = _problem(self.registry, self.repository, self.tag, self.digest)
        if reason:
            raise InvalidReference(self._text(), reason)

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """`[REGISTRY/]REPOSITORY[:TAG][@DIGEST]` -> ImageRef; InvalidReference names what is wrong."""
        return _parse(text)

    # --- forms ---------------------------------------------------------------

    @property
    def name(self) -> str:
        """Registry and repository, fully qualified: docker.io/library/ubuntu."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar_name(self) -> str:
        """The name as people write it and the engine lists it: ubuntu, myorg/lab, ghcr.io/org/lab.

        A Docker Hub path whose first part looks like a registry (`my.org/lab`)
        keeps `docker.io/`: without it, it would name another registry.
        """
        if self.registry != DOCKER_HUB or _is_registry(self.repository.partition("/")[0]):
            return self.name
        rest = self.repository.removeprefix(f"{OFFICIAL}/")
        return rest if "/" not in rest else self.repository

    @property
    def familiar(self) -> str:
        """The short form with tag and digest: ubuntu:24.04, myorg/lab@sha256:..."""
        return self.familiar_name + self._suffix()

    @property
    def basename(self) -> str:
        """The last path component: lab for ghcr.io/org/lab."""
        return self.repository.rpartition("/")[2]

    @property
    def api_host(self) -> str:
        """The host[:port] of the registry's HTTP API (Docker Hub answers at registry-1.docker.io)."""
        return api_host(self.registry)

    def __str__(self) -> str:
        return self.name + self._suffix()

    # --- variants ------------------------------------------------------------

    def with_tag(self, tag: str | None) -> ImageRef:
        return dataclasses.replace(self, tag=tag)

    def with_digest(self, digest: str | None) -> ImageRef:
        return dataclasses.replace(self, digest=digest)

    def bare(self) -> ImageRef:
        """The repository alone, without tag or digest."""
        return dataclasses.replace(self, tag=None, digest=None)

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag is not None else "") + (f"@{self.digest}" if self.digest is not None else "")

    def _text(self) -> str:
        return f"{self.registry}/{self.repository}{self._suffix()}"


@functools.lru_cache(maxsize=8192)
def _parse(text: str) -> ImageRef:
    """Cached: an engine listing is matched against the same few hundred tags for every node of a plan."""
    if not isinstance(text, str) or not text:
        raise InvalidReference(str(text), "it is empty")
    rest, at, digest = text.partition("@")
    if at and not digest:
        raise InvalidReference(text, "nothing follows '@' (a digest is ALGORITHM:HEX)")
    colon, slash = rest.rfind(":"), rest.rfind("/")
    name, tag = (rest[:colon], rest[colon + 1:]) if colon > slash else (rest, None)
    registry, path = split_registry(name)
    if len(name) > NAME_LIMIT:
        raise InvalidReference(text, f"the name is {len(name)} characters long, more than {NAME_LIMIT}")
    try:
        return ImageRef(registry or DOCKER_HUB, path, tag, digest if at else None)
    except InvalidReference as exc:
        raise InvalidReference(text, exc.reason) from None


def split_registry(name: str) -> tuple[str | None, str]:
    """(registry, path) of a name: the first component is a registry only if it has '.' or ':' or is localhost."""
    first, slash, rest = name.partition("/")
    if slash and _is_registry(first):
        return first, rest
    return None, name


def _is_registry(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def _problem(registry: str, repository: str, tag: str | None, digest: str | None) -> str | None:
    """Why these parts make no reference, or None."""
    if not _REGISTRY.fullmatch(registry):
        return f"the registry '{registry}' is not HOST[:PORT]"
    if not _is_registry(registry):
        return f"the registry '{registry}' has no '.' or port and is not localhost: Docker would read it as a Docker Hub namespace"
    if not repository:
        return "it names no repository"
    for component in repository.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            lower = " (repository names are lowercase)" if component.lower() != component else ""
            return f"the path component '{component}' is not {_PATH_GRAMMAR}{lower}"
    if tag is not None and not is_tag(tag):
        return f"the tag '{tag}' is not {TAG_GRAMMAR}"
    if digest is not None:
        return _digest_problem(digest)
    return None


def _digest_problem(digest: str) -> str | None:
    algorithm, colon, encoded = digest.partition(":")
    if not colon or not _ALGORITHM.fullmatch(algorithm) or not encoded:
        return f"the digest '{digest}' is not ALGORITHM:HEX"
    if algorithm not in DIGEST_LENGTHS:
        return f"the digest algorithm '{algorithm}' is not one of {', '.join(DIGEST_LENGTHS)}"
    length = DIGEST_LENGTHS[algorithm]
    if not re.fullmatch(rf"[0-9a-f]{{{length}}}", encoded):
        return f"a {algorithm} digest is {length} lowercase hex digits, not '{encoded}'"
    return None


# --- registries and prefixes -------------------------------------------------------------


def normalize_registry(host: str) -> str:
    """docker.io for every name of Docker Hub's registry; any other host[:port] unchanged."""
    return DOCKER_HUB if host.lower() in DOCKER_HUB_ALIASES else host


def is_docker_hub(host: str) -> bool:
    return normalize_registry(host) == DOCKER_HUB


def same_registry(one: str, other: str) -> bool:
    """The two hosts are one registry (docker.io and index.docker.io are)."""
    return normalize_registry(one) == normalize_registry(other)


def api_host(registry: str) -> str:
    """The host[:port] whose /v2/ API serves `registry`."""
    return DOCKER_HUB_API if is_docker_hub(registry) else registry


def split_host_port(registry: str) -> tuple[str, int | None]:
    """(host, port) of `host[:port]`; an IPv6 address loses its brackets ([::1]:5000 -> ('::1', 5000))."""
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, colon, port = registry.rpartition(":")
    if colon and port.isdigit() and ":" not in host:
        return host, int(port)
    return registry, None


def parse_prefix(text: str) -> tuple[str, str]:
    """`HOST[:PORT][/NAMESPACE]`, or a Docker Hub namespace -> (registry, namespace); where repositories go.

    Unlike a reference, a prefix may be a registry alone (`127.0.0.1:5000`),
    and a one-component namespace on Docker Hub (`myorg`) stays what it is.
    """
    text = text.strip().strip("/")
    first, _, rest = text.partition("/")
    if _is_registry(first):
        return normalize_registry(first), rest
    return DOCKER_HUB, text


def in_registry(registry: str, namespace: str, name: str) -> ImageRef:
    """The repository `name` under `namespace` in `registry` (a namespace may be empty or have several parts)."""
    path = "/".join(part.strip("/") for part in (namespace, name) if part.strip("/"))
    try:
        return ImageRef(registry, path)
    except InvalidReference as exc:
        raise InvalidReference("/".join(p for p in (registry.strip("/"), path) if p), exc.reason, "repository name") from None


def is_tag(text: str) -> bool:
    """`text` is a tag Docker accepts."""
    return bool(_TAG.fullmatch(text))


def is_reference(text: str) -> bool:
    try:
        ImageRef.parse(text)
    except InvalidReference:
        return False
    return True


# --- platforms ---------------------------------------------------------------------------

#: Debian's (and dpkg's) architecture names of OCI platforms; OCI arm variants are folded into their Debian port
_DEBIAN_ARCHITECTURES = {"amd64": "amd64", "arm64": "arm64", "arm/v7": "armhf", "arm/v6": "armel", "386": "i386",
                         "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}
#: `uname -m` of the host -> OCI architecture
_MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm/v7",
             "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
_PLATFORM = re.compile(r"[a-z0-9]+/[a-z0-9]+(?:/v[0-9]+)?")


def is_platform(text: str) -> bool:
    """`text` is an OCI platform as stacks writes it: OS/ARCH[/VARIANT], lowercase (linux/arm64, linux/arm/v7)."""
    return bool(_PLATFORM.fullmatch(text))


def platform_slug(platform: str) -> str:
    """The platform as a tag or file name part: linux/arm64 -> linux-arm64."""
    return platform.replace("/", "-")


def platform_architecture(platform: str) -> str:
    """The OCI architecture (with variant) of a platform: linux/arm/v7 -> arm/v7, linux/arm64 -> arm64."""
    return platform.partition("/")[2]


def debian_architecture(platform: str) -> str:
    """Debian's name of the platform's architecture (mmdebstrap --architectures): linux/arm64 -> arm64."""
    architecture = platform_architecture(platform)
    return _DEBIAN_ARCHITECTURES.get(architecture, architecture)


def platform_of_machine(machine: str, os_name: str = "linux") -> str:
    """The OCI platform of a `uname -m` answer (or an engine's Architecture): x86_64 -> linux/amd64."""
    return f"{os_name}/{_MACHINES.get(machine.lower(), machine.lower())}"
