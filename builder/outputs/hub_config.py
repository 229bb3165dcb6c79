"""`stacks hub-config`: a multi-user JupyterHub over the images this matrix built.

The `hub:` section of stacks.yaml names the image that runs the Hub and the
images users may choose from; this module turns it into three files for the
operator: `jupyterhub_config.py` (DockerSpawner with the offered images by
readable name -> exact reference, per-user volumes, the network, optional GPU
device requests, admins and an authenticator), `compose.yaml` (the Hub with
the Docker socket, the network and a state volume) and `env.example` (the
secrets the Hub reads from its environment when it starts: they are never
written into the generated files).

References are exact: the content-addressed local tag (`stacks/<name>:<hash>`)
by default, or, given the JSON manifest `stacks push` writes, the immutable
registry tag each image was pushed under (with its digest beside it).
Choosing what to offer and which reference to use is pure; only the check
that the images exist asks the Docker engine, and is skipped with a warning
when no engine answers (a configuration written on another machine).

The files are Jinja2 templates shipped in the package (`builder/_data/hub/`):
this module decides every value, the templates only lay them out, and every
value that came from stacks.yaml, a fragment or a manifest passes a filter
that keeps it a value (a Python literal, one comment line, YAML from PyYAML).
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable
from urllib.parse import urlsplit

import jinja2
import yaml

from builder.errors import Location, Problem, SpecError, did_you_mean, raise_if_any
from builder.specification.builtin import DATA
from builder.specification.models import HubSettings
from builder.plan.plan import Node, Plan

SINGLEUSER = "jupyterhub-singleuser"
HUB = "jupyterhub-hub"
HUB_LABEL = "io.stacks.hub"  # on every user container, value: the Hub's name
CONFIG_FILE, COMPOSE_FILE, ENV_FILE = "jupyterhub_config.py", "compose.yaml", "env.example"
CLIENT_ID, CLIENT_SECRET, CALLBACK = "OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_CALLBACK_URL"
DUMMY_PASSWORD, DUMMY_ADMIN_PASSWORD = "JUPYTERHUB_DUMMY_PASSWORD", "JUPYTERHUB_DUMMY_ADMIN_PASSWORD"
# SharedPasswordAuthenticator refuses shorter passwords when the Hub starts (a crash loop under compose).
DUMMY_MIN_LENGTH = {DUMMY_PASSWORD: 8, DUMMY_ADMIN_PASSWORD: 32}
AUTHENTICATORS = {
    "github": "oauthenticator.github.GitHubOAuthenticator",
    "gitlab": "oauthenticator.gitlab.GitLabOAuthenticator",
    "generic": "oauthenticator.generic.GenericOAuthenticator",
    "dummy": "jupyterhub.authenticators.shared.SharedPasswordAuthenticator",
}
TEMPLATES = DATA / "hub"  # jupyterhub_config.py.j2, compose.yaml.j2, env.example.j2
Say = Callable[[str], None]


@dataclass(frozen=True)
class Offered:
    """One entry of the image list users see."""

    name: str  # shown in the list and sent back by the form: the variant name
    ref: str  # what DockerSpawner runs
    digest: str | None = None  # the registry digest, when the manifest gives one
    gpu: bool = False


@dataclass(frozen=True)
class HubPlan:
    """Everything the generated files say, decided before any file is written."""

    settings: HubSettings
    hub_ref: str
    hub_params: dict[str, Any]  # the jupyterhub-hub fragment's params (port, config, data folders)
    images: tuple[Offered, ...]
    default: str
    source: str  # the stacks file, named in the headers
    docker_gid: int | None = None


# --- what is offered, and under which reference (pure) ------------------------


def choose(plan: Plan, settings: HubSettings, refs: dict[str, tuple[str, str | None]],
           built: Callable[[str], bool] | None = None) -> tuple[Node, list[Node], list[Node], Node]:
    """(hub node, offered nodes, nodes that get GPUs, default node), or SpecError naming the hub: keys at fault.

    `refs` maps variant names to (reference, digest) from a push manifest; `built(ref)` says whether
    the engine has an image (None: unknown, nothing is checked). Without `offer`, every image with
    jupyterhub-singleuser in its chain is offered, as far as it is built or pushed.
    """
    problems: list[Problem] = []
    images = plan.images()
    hub = _resolve(plan, settings.image, ("hub", "image"), problems, one=True)
    if hub and not _has(hub[0], HUB):
        problems.append(Problem(f"hub.image: '{hub[0].name}' has no {HUB} fragment in its chain", _where(plan, "hub", "image"),
                                f"images that have it: {', '.join(n.name for n in images if _has(n, HUB)) or 'none'}"))
    def available(n: Node) -> bool:
        return n.name in refs or built is None or built(n.local_ref)
    if settings.offer:
        offered = _unique(n for i, entry in enumerate(settings.offer)
                          for n in _resolve(plan, entry, ("hub", "offer", i), problems))
        for node in offered:
            if not _has(node, SINGLEUSER):
                problems.append(Problem(f"hub.offer: '{node.name}' cannot be spawned: it has no {SINGLEUSER} fragment",
                                        _where(plan, "hub", "offer"), f"add {SINGLEUSER} to its fragments or to a child image"))
    else:
        offered = [n for n in images if _has(n, SINGLEUSER) and available(n)]
        if not offered and not problems:
            candidates = [n.image for n in images if _has(n, SINGLEUSER) and n.image]
            problems.append(Problem(
                f"no single-user image to offer: none of the images with {SINGLEUSER} is built", _where(plan, "hub"),
                f"run `stacks build {' '.join(dict.fromkeys(candidates))}`" if candidates
                else f"add an image with the {SINGLEUSER} fragment to stacks.yaml"))
    for node in offered + hub:
        if not available(node):
            problems.append(Problem(f"image '{node.name}' is not built ({node.local_ref} is not in the engine)",
                                    _where(plan, "hub"), f"run `stacks build {node.name}` first"))
    gpu = offered
    if settings.gpu is not None and settings.gpu.images:
        gpu = _unique(n for i, entry in enumerate(settings.gpu.images) for n in _resolve(plan, entry, ("hub", "gpu", "images", i), problems))
        problems += [Problem(f"hub.gpu.images: '{n.name}' is not offered", _where(plan, "hub", "gpu", "images"),
                             f"offered: {', '.join(o.name for o in offered)}") for n in gpu if n not in offered]
    default = offered[:1]
    if settings.default is not None:
        default = _resolve(plan, settings.default, ("hub", "default"), problems, one=True)
        if default and default[0] not in offered:
            problems.append(Problem(f"hub.default: '{default[0].name}' is not offered", _where(plan, "hub", "default")))
    raise_if_any(problems)
    return hub[0], offered, (gpu if settings.gpu is not None else []), default[0]


def _resolve(plan: Plan, name: str, path: tuple, problems: list[Problem], one: bool = False) -> list[Node]:
    """A variant name, or an image definition: all its variants (`one`: the default one, the first)."""
    images = plan.images()
    exact = [n for n in images if n.name == name]
    matched = exact or [n for n in images if n.image == name]
    if not matched:
        known = sorted({n.name for n in images} | {n.image or "" for n in images})
        problems.append(Problem(f"{'.'.join(map(str, path))}: no image or variant named '{name}'",
                                _where(plan, *path), did_you_mean(name, known)))
    return matched[:1] if one else matched


def _has(node: Node, fragment: str) -> bool:
    return any(applied.name == fragment for applied in node.chain)


def _params(node: Node, fragment: str) -> dict[str, Any]:
    return next((dict(a.params) for a in reversed(node.chain) if a.name == fragment), {})


def _unique(nodes: Any) -> list[Node]:
    return list({n.name: n for n in nodes}.values())


def _where(plan: Plan, *path: Any) -> Location:
    return plan.spec.where(*path)


def manifest_refs(path: Path) -> dict[str, tuple[str, str | None]]:
    """variant name -> (repository:immutable tag, digest) for every image a push manifest says is in the registry.

    An immutable tag (content hash or commit) is used rather than `repo@digest` because DockerSpawner
    splits a reference at its last ':' to pull it; the digest goes beside it in the generated file.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError([Problem(f"cannot read the push manifest: {exc}", Location(path))]) from None
    refs: dict[str, tuple[str, str | None]] = {}
    for entry in document.get("images", []):
        states = entry.get("tag_status", {})
        there = [t for t in entry.get("immutable", []) + entry.get("tags", []) if states.get(t) in ("pushed", "unchanged")]
        if there:
            refs[entry["image"]] = (f"{entry['repository']}:{there[0]}", entry.get("digest"))
    return refs


def hub_plan(plan: Plan, settings: HubSettings, refs: dict[str, tuple[str, str | None]],
             built: Callable[[str], bool] | None = None, docker_gid: int | None = None) -> HubPlan:
    hub, offered, gpu, default = choose(plan, settings, refs, built)

    def ref(node: Node) -> tuple[str, str | None]:
        return refs.get(node.name, (node.local_ref, None))

    images = tuple(Offered(n.name, *ref(n), gpu=n in gpu) for n in offered)
    return HubPlan(settings, ref(hub)[0], _params(hub, HUB), images, default.name, str(plan.spec.path), docker_gid)


def version_warnings(plan: Plan, hub: HubPlan) -> list[str]:
    """JupyterHub wants the Hub and the single-user servers on the same major version."""
    hub_version = str(hub.hub_params.get("version", ""))
    warnings = []
    for image in hub.images:
        theirs = str(_params(plan[image.name], SINGLEUSER).get("version", ""))
        if theirs.split(".")[0] != hub_version.split(".")[0]:
            warnings.append(f"{image.name} has jupyterhub {theirs}, the Hub {hub_version}: use the same major version")
    auth = hub.settings.authenticator
    if auth.kind != "dummy" and not (auth.allow_all or auth.allowed_users or auth.organizations or auth.groups):
        warnings.append("hub.authenticator allows nobody but the admins: set allowed_users, organizations, groups or allow_all")
    if auth.kind == "dummy":
        warnings.append("hub.authenticator.kind is dummy: one shared password, for tests only")
    return warnings


# --- the generated files (pure) -------------------------------------------------


def config_text(hub: HubPlan) -> str:
    """jupyterhub_config.py, from its template: the layout is the template's, the values are decided here."""
    s, p, auth = hub.settings, hub.hub_params, hub.settings.authenticator
    data, port = p.get("data", "/srv/jupyterhub/data"), p.get("port", 8000)
    chosen = [i.name for i in hub.images if i.gpu]
    return _render(CONFIG_FILE, {
        "source": hub.source,
        "images": hub.images,
        "default": hub.default,
        "bind_url": f"http://:{port}",
        "hub_connect_url": f"http://{s.name}:8081",
        "data": str(data),
        "s": s,
        "labels": {HUB_LABEL: s.name},
        "device_request": device_request(hub) if s.gpu is not None else None,
        "gpu_images": None if len(chosen) == len(hub.images) else chosen,
        "auth": auth,
        "authenticator_class": AUTHENTICATORS[auth.kind],
        "cls": AUTHENTICATORS[auth.kind].rsplit(".", 1)[1],
        "env": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "callback": CALLBACK,
                "dummy_password": DUMMY_PASSWORD, "dummy_admin_password": DUMMY_ADMIN_PASSWORD},
        "dummy_min_length": DUMMY_MIN_LENGTH,
        "callback": f"{s.public_url.rstrip('/')}/hub/oauth_callback" if s.public_url else None,
        "scope": list(auth.scope) or _needed_scope(auth.kind, bool(auth.organizations), bool(auth.groups)),
    })


def device_request(hub: HubPlan) -> dict[str, Any]:
    """The DeviceRequest (`docker run --gpus`) as docker-py takes it."""
    gpu = hub.settings.gpu
    assert gpu is not None
    return {"driver": gpu.driver, "count": -1 if gpu.count == "all" else gpu.count, "capabilities": [list(gpu.capabilities)]}


def _needed_scope(kind: str, organizations: bool, groups: bool) -> list[str]:
    """The OAuth scope the membership checks need: GitHub shows private organisation membership only with
    read:org; GitLab's group membership API needs read_api (read_user covers the user alone)."""
    if kind == "github" and organizations:
        return ["read:org"]
    if kind == "gitlab":
        return ["read_api"] if groups else ["read_user"]
    return []


def secrets_env(hub: HubPlan) -> dict[str, tuple[bool, str]]:
    """Environment variable -> (required, what it is) for the Hub container."""
    s = hub.settings
    if s.authenticator.kind == "dummy":
        return {DUMMY_PASSWORD: (True, f"the shared password ({DUMMY_MIN_LENGTH[DUMMY_PASSWORD]} characters or more); tests only"),
                DUMMY_ADMIN_PASSWORD: (False, f"the admins' password, {DUMMY_MIN_LENGTH[DUMMY_ADMIN_PASSWORD]} characters or more"
                                       " (the Hub refuses to start with a shorter one), different from the shared one;"
                                       " empty: admins cannot log in")}
    return {CLIENT_ID: (True, f"client id of the OAuth app registered with {s.authenticator.kind}"),
            CLIENT_SECRET: (True, "its client secret"),
            CALLBACK: (s.public_url is None, "https://<your hub>/hub/oauth_callback, as registered with the app"
                       + (f" (default {s.public_url.rstrip('/')}/hub/oauth_callback)" if s.public_url else ""))}


def password_problems(plan: Plan, hub: HubPlan, env: dict[str, str]) -> list[Problem]:
    """The dummy authenticator's passwords, when this environment (or the .env beside the files) sets them:
    too short ones are refused now rather than by a Hub that then restarts forever."""
    if hub.settings.authenticator.kind != "dummy":
        return []
    return [Problem(f"{name} has {len(env[name])} characters; the Hub needs {least} or more", _where(plan, "hub", "authenticator"),
                    f"set a longer one (e.g. `openssl rand -hex {least // 2 + 8}`) in the environment or .env")
            for name, least in DUMMY_MIN_LENGTH.items() if 0 < len(env.get(name, "")) < least]


def dotenv(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))
    return {k.strip(): v.strip().strip("'\"") for k, v in pairs}


def compose_document(hub: HubPlan) -> dict[str, Any]:
    """The compose file: the Hub with the Docker socket, its configuration, a state volume and the network."""
    s, p = hub.settings, hub.hub_params
    data_volume = f"{s.name}-data"
    gid = f"${{DOCKER_GID:-{hub.docker_gid}}}" if hub.docker_gid is not None else "${DOCKER_GID:?set DOCKER_GID in .env}"
    environment = {name: f"${{{name}:?set {name} in .env}}" if required else f"${{{name}:-}}"
                   for name, (required, _) in secrets_env(hub).items()}
    service = {
        "image": hub.hub_ref,
        "container_name": s.name,
        "restart": "unless-stopped",
        "group_add": [gid],
        "volumes": [
            "/var/run/docker.sock:/var/run/docker.sock",
            f"./{CONFIG_FILE}:{p.get('config', '/srv/jupyterhub/jupyterhub_config.py')}:ro",
            f"{data_volume}:{p.get('data', '/srv/jupyterhub/data')}",
        ],
        "networks": [s.network],
        "ports": [f"{s.address}:{s.port}:{p.get('port', 8000)}"],
        "environment": environment,
    }
    return {
        "services": {"hub": service},
        "networks": {s.network: {"name": s.network}},
        "volumes": {data_volume: {"name": data_volume}},
    }


def compose_text(hub: HubPlan) -> str:
    return _render(COMPOSE_FILE, {"source": hub.source, "document": compose_document(hub)})


def env_text(hub: HubPlan) -> str:
    return _render(ENV_FILE, {"docker_gid": hub.docker_gid, "secrets": secrets_env(hub)})


# --- the templates ------------------------------------------------------------------
# Trusted templates (shipped with the tool) with untrusted values (stacks.yaml, its fragments, a push
# manifest): no value reaches Python source or a comment line except through the filters below.


def python_literal(value: Any) -> str:
    """`py`: a Python literal that evaluates to `value` (str, number, bool, None, and lists and dicts of them)."""
    return repr(value)


def python_string(value: str) -> str:
    """`pystr`: a double-quoted Python string literal (repr's escapes, in the quotes the file uses for URLs)."""
    text = repr(str(value))
    # repr chooses single quotes unless the text has ' and no "; with no quote of either kind inside, swapping is exact
    return f'"{text[1:-1]}"' if text.startswith("'") and '"' not in value and "'" not in value else text


def python_set(items: list[str]) -> str:
    """`pyset`: a set literal in sorted order, so the same settings always give the same file."""
    return "{" + ", ".join(repr(i) for i in sorted(set(items))) + "}" if items else "set()"


def comment_text(value: Any) -> str:
    """`comment`: text for the rest of a comment line; anything that could end the line (or hide) is shown as repr."""
    text = str(value)
    return text if text.isprintable() else repr(text)


def yaml_text(document: Any) -> str:
    """`yaml`: a YAML document from PyYAML, which quotes whatever needs it (without its final newline)."""
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=1000).rstrip("\n")


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined, autoescape=False,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(py=python_literal, pystr=python_string, pyset=python_set, comment=comment_text, yaml=yaml_text)
    return environment


def _render(name: str, context: dict[str, Any]) -> str:
    """Render builder/_data/hub/<name>.j2."""
    return _environment().get_template(f"{name}.j2").render(context)


# --- the command ------------------------------------------------------------------


def docker_socket_gid(host: str = "unix:///var/run/docker.sock") -> int | None:
    """The group owning the local engine's socket (`host` as DOCKER_HOST says), which the Hub's user must belong to."""
    path = urlsplit(host).path if host.startswith("unix://") else None
    try:
        return os.stat(path).st_gid if path else None
    except OSError:
        return None
