"""Where the user's state lives and where the engine listens, read from one environment snapshot.

Kept free of heavy imports: the no-op answer of `stacks build`
(`builder.app.noop`) needs both before anything else is loaded.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def cache_dir(env: Mapping[str, str]) -> Path:
    """The user's cache (XDG): engine probe answers, per-hash locks, test records, build receipts."""
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stacks"


def docker_host(env: Mapping[str, str]) -> str:
    """Where the engine listens (DOCKER_HOST, as the Docker SDK reads it)."""
    return env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def docker_tls(env: Mapping[str, str]) -> bool:
    """The engine is reached over TLS (then only the Docker SDK talks to it)."""
    return bool(env.get("DOCKER_TLS_VERIFY") or env.get("DOCKER_CERT_PATH"))
