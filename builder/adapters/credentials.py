"""Registry credentials as a chain of sources, asked in order until one knows the host.

A source is anything with `lookup(host) -> Credentials | None`: the two that
ship are explicit values (STACKS_REGISTRY_USER / STACKS_REGISTRY_PASSWORD,
handed in by the Workspace, which is the only reader of the environment) and
the Docker config (`~/.docker/config.json` or `$DOCKER_CONFIG`, credential
helpers included). A new source (a cloud's token exchange, a vault) is one
more class in the chain. Secrets never appear in a repr or a message.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from builder.reference import normalize_registry

USER_ENV, PASSWORD_ENV = "STACKS_REGISTRY_USER", "STACKS_REGISTRY_PASSWORD"


def hint(host: str = "") -> str:
    """What to do when a registry wants credentials: the one place this advice is written."""
    login = f"`docker login {host}`" if host else "`docker login` for the registry"
    return f"set {USER_ENV} and {PASSWORD_ENV}, or {login}"


class CredentialError(Exception):
    """A source that exists but cannot be read (a broken Docker config, a failing helper)."""


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)  # an identity (refresh) token from a credential helper
    source: str = ""  # where they came from, for messages: "STACKS_REGISTRY_USER", "Docker config"

    def engine_auth(self, host: str) -> dict[str, str]:
        """The auth config the engine expects with a push or pull."""
        if self.token:
            return {"identitytoken": self.token, "serveraddress": host}
        return {"username": self.username, "password": self.password, "serveraddress": host}

    def describe(self) -> str:
        who = f"user '{self.username}'" if self.username else "an identity token"
        return f"{who} (from {self.source})"


class CredentialSource(Protocol):
    def lookup(self, host: str) -> Credentials | None:
        """Credentials for `host`, or None when this source has none for it."""
        ...


@dataclass(frozen=True)
class StaticCredentials:
    """A user and password given explicitly (from the environment): they apply to every host."""

    username: str | None
    password: str | None = field(default=None, repr=False)
    source: str = f"{USER_ENV}/{PASSWORD_ENV}"

    def lookup(self, host: str) -> Credentials | None:
        if self.username and self.password is not None:
            return Credentials(self.username, self.password, source=self.source)
        return None


@dataclass(frozen=True)
class DockerConfigCredentials:
    """What `docker login` stored, through the Docker SDK (config file and credential helpers)."""

    def lookup(self, host: str) -> Credentials | None:
        import docker.auth
        import docker.errors

        try:
            config = docker.auth.load_config()
            entry = config.resolve_authconfig(normalize_registry(host)) or {}
        except docker.errors.DockerException as exc:
            raise CredentialError(f"cannot read credentials for {host} from the Docker config: {type(exc).__name__}") from None
        lookup = {k.lower(): v for k, v in entry.items()}
        if lookup.get("identitytoken"):
            return Credentials(token=lookup["identitytoken"], source="Docker config")
        if lookup.get("username"):
            return Credentials(lookup["username"], lookup.get("password") or "", source="Docker config")
        return None


@dataclass(frozen=True)
class Keychain:
    """Sources in order of precedence; the first that knows a host answers."""

    sources: Sequence[CredentialSource] = ()

    def lookup(self, host: str) -> Credentials | None:
        for source in self.sources:
            found = source.lookup(host)
            if found is not None:
                return found
        return None


def default_keychain(user: str | None = None, password: str | None = None) -> Keychain:
    """Explicit credentials first, then the Docker config."""
    return Keychain((StaticCredentials(user, password), DockerConfigCredentials()))
