"""Where the user's state lives, where the engine listens, and what child processes inherit.

Everything here is read from one environment snapshot (a mapping handed in,
never `os.environ` itself), so the Workspace and the no-op answer of `stacks
build` (`builder.app.noop`) agree, and tests give a dict. Kept free of heavy
imports: the no-op answer needs these before anything else is loaded.

The engine is found the way the docker CLI finds it, once, and then handed
to every client explicitly (docs/architecture.md, "The composition root"):

1. DOCKER_HOST (with DOCKER_TLS_VERIFY, DOCKER_TLS and DOCKER_CERT_PATH);
2. DOCKER_CONTEXT, a context name;
3. `currentContext` of config.json in the docker config folder
   (DOCKER_CONFIG, else ~/.docker);
4. the default socket, unix:///var/run/docker.sock; when that file does not
   exist but the rootless engine's socket $XDG_RUNTIME_DIR/docker.sock does,
   the rootless socket (where the CLI would fail, stacks finds the only
   engine there is, and hands the same address to the CLI).

A context named "default" is step 4. A named context is read from
contexts/meta/<sha256 of the name>/meta.json (Endpoints.docker.Host,
SkipTLSVerify) with its TLS files in contexts/tls/<sha256>/docker/.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from builder.adapters.engine_address import DEFAULT_HOST, EngineAddress

# What a child process (docker CLI, Chromium) inherits besides the engine's address: the program search path,
# the user's home and docker config (credentials, CLI plugins such as buildx), language, time zone, temporary
# folder, proxies (the CLI and BuildKit's front end fetch through them), the ssh agent (ssh:// engines) and the
# runtime folder (rootless engines). Anything else (BUILDX_BUILDER, DOCKER_CONTEXT, tokens of other tools)
# stays out: a child must not reach another builder or engine, nor see secrets it has no use for.
CHILD_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TZ", "TMPDIR", "LANG", "LANGUAGE",
    "DOCKER_CONFIG", "SSH_AUTH_SOCK", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
    "SSL_CERT_FILE", "SSL_CERT_DIR",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
})
CHILD_PREFIXES = ("LC_",)
DEFAULT_CONTEXT = "default"
DEFAULT_SOCKET = Path(DEFAULT_HOST.removeprefix("unix://"))


def cache_dir(env: Mapping[str, str]) -> Path:
    """The user's cache (XDG): engine probe answers, per-hash locks, test records, build receipts."""
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stacks"


def docker_config_dir(env: Mapping[str, str]) -> Path:
    """The docker CLI's config folder: DOCKER_CONFIG, else ~/.docker."""
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"])
    return Path(env.get("HOME") or Path.home()) / ".docker"


def engine_address(env: Mapping[str, str], default_socket: Path = DEFAULT_SOCKET) -> EngineAddress:
    """The one engine of this run (see the module's docstring for the order); a missing or malformed context
    is a SpecError naming the file."""
    if env.get("DOCKER_HOST"):
        return _from_docker_host(env)
    config = docker_config_dir(env)
    name: str | None
    if env.get("DOCKER_CONTEXT"):
        name, origin = env["DOCKER_CONTEXT"], "DOCKER_CONTEXT"
    else:
        name, origin = _current_context(config / "config.json"), str(config / "config.json")
    if name and name != DEFAULT_CONTEXT:
        return _from_context(config, name, origin)
    return _default(env, default_socket)


def child_environment(env: Mapping[str, str], address: EngineAddress) -> dict[str, str]:
    """What a child process gets: the names of CHILD_NAMES that are set, and the engine's address."""
    kept = {k: v for k, v in env.items() if k in CHILD_NAMES or k.startswith(CHILD_PREFIXES)}
    return {**kept, **address.cli_env()}


def _from_docker_host(env: Mapping[str, str]) -> EngineAddress:
    """DOCKER_HOST as the docker CLI and SDK read it: TLS when DOCKER_TLS_VERIFY, DOCKER_TLS or DOCKER_CERT_PATH
    is set (certificates from DOCKER_CERT_PATH, else the config folder)."""
    verify = bool(env.get("DOCKER_TLS_VERIFY"))
    tls = verify or bool(env.get("DOCKER_TLS")) or bool(env.get("DOCKER_CERT_PATH"))
    cert_path = (env.get("DOCKER_CERT_PATH") or str(docker_config_dir(env))) if tls else None
    return EngineAddress(env["DOCKER_HOST"], "DOCKER_HOST", tls, verify, cert_path)


def _default(env: Mapping[str, str], default_socket: Path) -> EngineAddress:
    rootless = Path(env["XDG_RUNTIME_DIR"]) / "docker.sock" if env.get("XDG_RUNTIME_DIR") else None
    if not default_socket.exists() and rootless is not None and rootless.exists():
        return EngineAddress(f"unix://{rootless}", f"the rootless engine's socket ({default_socket} does not exist)")
    return EngineAddress(f"unix://{default_socket}", "the default socket")


def _current_context(config_file: Path) -> str | None:
    """`currentContext` of the docker config, None without a config file or without that key."""
    try:
        text = config_file.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _bad(config_file, f"cannot read the docker config: {exc.strerror}") from None
    data = _json(config_file, text)
    if not isinstance(data, dict):
        raise _bad(config_file, "the docker config is not a JSON object")
    name = data.get("currentContext")
    if name is not None and not isinstance(name, str):
        raise _bad(config_file, f"currentContext must be a context name, not {json.dumps(name)}")
    return name or None


def _from_context(config: Path, name: str, origin: str) -> EngineAddress:
    """The docker endpoint of context `name`, as `docker context create` stored it."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / digest / "meta.json"
    try:
        text = meta.read_text()
    except FileNotFoundError:
        raise _bad(None, f"docker context '{name}' (named by {origin}) does not exist: no {meta}",
                   hint="`docker context ls` lists the contexts; `docker context use default` goes back to the local engine") from None
    except OSError as exc:
        raise _bad(meta, f"cannot read docker context '{name}': {exc.strerror}") from None
    data = _json(meta, text)
    endpoint = _get(data, "Endpoints", "docker")
    host = _get(endpoint, "Host")
    if not isinstance(host, str) or not host:
        raise _bad(meta, f"docker context '{name}' has no Endpoints.docker.Host (an engine address such as unix:///path)")
    skip_verify = _get(endpoint, "SkipTLSVerify") is True
    tls_dir = config / "contexts" / "tls" / digest / "docker"
    tls = tls_dir.is_dir() or skip_verify
    return EngineAddress(host, f"docker context '{name}' ({origin})", tls, tls and not skip_verify,
                         str(tls_dir) if tls_dir.is_dir() else None)


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise _bad(path, f"not valid JSON: {getattr(exc, 'msg', exc)}", line=line) from None


def _bad(path: Path | None, message: str, hint: str | None = None, line: int | None = None) -> Exception:
    from builder.errors import Location, Problem, SpecError  # only on the way to an error: the no-op stays light

    return SpecError([Problem(message, Location(path, line) if path else None, hint)])
