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
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable
from urllib.parse import urlsplit

import yaml

from builder.errors import Location, Problem, SpecError, did_you_mean, raise_if_any
from builder.spec.models import HubSettings
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
    s, p = hub.settings, hub.hub_params
    data, port = p.get("data", "/srv/jupyterhub/data"), p.get("port", 8000)
    lines = [
        f"# jupyterhub_config.py, written by `stacks hub-config` from {hub.source} (the hub: section).",
        "# Regenerate it rather than editing it: every build changes the image references.",
        "# No secret is in this file: the Hub reads them from its environment when it starts.",
        "import os",
        "import sys",
        "",
        "c = get_config()  # noqa: F821",
        "",
        "",
        "def from_env(name):",
        '    """A value the Hub reads from its environment; stop with a plain message when it is missing."""',
        '    value = os.environ.get(name, "")',
        "    if not value:",
        f'        sys.exit(f"{CONFIG_FILE}: {{name}} is not set; put it in the .env file beside {COMPOSE_FILE} (see {ENV_FILE})")',
        "    return value",
        "",
        "",
        "# The images users choose from: the name in the list -> the exact image.",
        "IMAGES = {",
        *[f"    {i.name!r}: {i.ref!r},{f'  # {i.digest}' if i.digest else ''}" for i in hub.images],
        "}",
        f"DEFAULT_IMAGE = {hub.default!r}",
        "",
        "# --- the Hub and its proxy ---",
        f'c.JupyterHub.bind_url = "http://:{port}"',
        'c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"',
        f"c.JupyterHub.hub_connect_url = {f'http://{s.name}:8081'!r}  # the Hub's name on the network",
        f"c.JupyterHub.cookie_secret_file = {f'{data}/jupyterhub_cookie_secret'!r}",
        f"c.JupyterHub.db_url = {f'sqlite:///{data}/jupyterhub.sqlite'!r}",
        f"c.ConfigurableHTTPProxy.pid_file = {f'{data}/jupyterhub-proxy.pid'!r}",
        *([f"c.JupyterHub.public_url = {s.public_url!r}"] if s.public_url else []),
        "# Restarting the Hub (an upgrade, a new image list) leaves running servers alone.",
        "c.JupyterHub.cleanup_servers = False",
        "",
        "# --- one container per user ---",
        'c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"',
        "c.DockerSpawner.allowed_images = IMAGES",
        "c.DockerSpawner.image = IMAGES[DEFAULT_IMAGE]",
        'c.DockerSpawner.pull_policy = "ifnotpresent"',
        f"c.DockerSpawner.network_name = {s.network!r}",
        "c.DockerSpawner.use_internal_ip = True",
        f"c.DockerSpawner.prefix = {s.prefix!r}",
        f"c.DockerSpawner.remove = {not s.keep_containers!r}  # the user's volume stays either way",
        f"c.DockerSpawner.volumes = {{{s.volume!r}: {s.mount!r}}}",
        f"c.DockerSpawner.notebook_dir = {s.mount!r}",
        "# The container starts as root only so that start.sh can hand the user's new volume to the",
        "# notebook user (CHOWN_EXTRA); it then drops to that user before the server starts. The",
        "# volume is also the working directory, so kernels started without a path write into it.",
        f'c.DockerSpawner.extra_create_kwargs = {{"user": "root", "working_dir": {s.mount!r}, "labels": {{{HUB_LABEL!r}: {s.name!r}}}}}',
        f'c.DockerSpawner.environment = {{"CHOWN_EXTRA": {s.mount!r}}}',
        "c.Spawner.start_timeout = 120",
        "c.Spawner.http_timeout = 120",
        *([f"c.DockerSpawner.mem_limit = {s.mem_limit!r}"] if s.mem_limit else []),
        *([f"c.DockerSpawner.cpu_limit = {s.cpu_limit!r}"] if s.cpu_limit else []),
        *_gpu_lines(hub),
        "",
        "# --- who may log in ---",
        *_auth_lines(hub),
    ]
    return "\n".join(lines) + "\n"


def device_request(hub: HubPlan) -> dict[str, Any]:
    """The DeviceRequest (`docker run --gpus`) as docker-py takes it."""
    gpu = hub.settings.gpu
    assert gpu is not None
    return {"driver": gpu.driver, "count": -1 if gpu.count == "all" else gpu.count, "capabilities": [list(gpu.capabilities)]}


def _gpu_lines(hub: HubPlan) -> list[str]:
    if hub.settings.gpu is None:
        return []
    lines = ["", "# GPUs, as `docker run --gpus` asks for them (needs the NVIDIA container toolkit on the host).",
             f"DEVICE_REQUESTS = [{device_request(hub)!r}]"]
    chosen = [i.name for i in hub.images if i.gpu]
    if len(chosen) == len(hub.images):
        return lines + ['c.DockerSpawner.extra_host_config = {"device_requests": DEVICE_REQUESTS}']
    return lines + [
        f"GPU_IMAGES = {chosen!r}",
        "",
        "",
        "def host_config(spawner):",
        '    """GPUs only for the images in GPU_IMAGES (the name the user picked)."""',
        '    picked = spawner.user_options.get("image") or DEFAULT_IMAGE',
        '    return {"device_requests": DEVICE_REQUESTS} if picked in GPU_IMAGES else {}',
        "",
        "",
        "c.DockerSpawner.extra_host_config = host_config",
    ]


def _auth_lines(hub: HubPlan) -> list[str]:
    s, auth = hub.settings, hub.settings.authenticator
    path = AUTHENTICATORS[auth.kind]
    cls = path.rsplit(".", 1)[1]
    lines = [f"c.JupyterHub.authenticator_class = {path!r}"]
    if auth.kind == "dummy":
        lines += [f"# For tests only: anyone with the shared password {DUMMY_PASSWORD} logs in under any name.",
                  f"c.{cls}.user_password = from_env({DUMMY_PASSWORD!r})",
                  f"c.{cls}.admin_password = os.environ.get({DUMMY_ADMIN_PASSWORD!r}, '')",
                  f"for _name, _least in {DUMMY_MIN_LENGTH!r}.items():",
                  "    if 0 < len(os.environ.get(_name, '')) < _least:",
                  f'        sys.exit(f"{CONFIG_FILE}: {{_name}} must have {{_least}} characters or more (see {ENV_FILE})")']
    else:
        callback = f"{s.public_url.rstrip('/')}/hub/oauth_callback" if s.public_url else None
        lines += [f"c.{cls}.client_id = from_env({CLIENT_ID!r})",
                  f"c.{cls}.client_secret = from_env({CLIENT_SECRET!r})",
                  f"c.{cls}.oauth_callback_url = " + (f"os.environ.get({CALLBACK!r}) or {callback!r}" if callback
                                                      else f"from_env({CALLBACK!r})")]
    if auth.kind == "github" and auth.organizations:
        lines.append(f"c.{cls}.allowed_organizations = {_set(auth.organizations)}")
    if auth.kind == "gitlab":
        lines += [f"c.{cls}.gitlab_url = {auth.url!r}"] if auth.url else []
        lines += [f"c.{cls}.allowed_gitlab_groups = {_set(auth.groups)}"] if auth.groups else []
    if auth.kind == "generic":
        lines += [f"c.{cls}.{key} = {getattr(auth, key)!r}" for key in ("authorize_url", "token_url", "userdata_url", "username_claim")]
        lines += [f"c.{cls}.allowed_groups = {_set(auth.groups)}"] if auth.groups else []
        lines += [f"c.{cls}.auth_state_groups_key = {auth.groups_key!r}"] if auth.groups_key else []
    scope = list(auth.scope) or _needed_scope(auth.kind, bool(auth.organizations), bool(auth.groups))
    if scope:
        lines.append(f"c.{cls}.scope = {scope!r}")
    if auth.login_service:
        lines.append(f"c.{cls}.login_service = {auth.login_service!r}")
    lines += [f"c.Authenticator.admin_users = {_set(s.admins)}",
              f"c.Authenticator.allowed_users = {_set(auth.allowed_users)}",
              f"c.Authenticator.allow_all = {auth.allow_all!r}"]
    return lines


def _needed_scope(kind: str, organizations: bool, groups: bool) -> list[str]:
    """The OAuth scope the membership checks need: GitHub shows private organisation membership only with
    read:org; GitLab's group membership API needs read_api (read_user covers the user alone)."""
    if kind == "github" and organizations:
        return ["read:org"]
    if kind == "gitlab":
        return ["read_api"] if groups else ["read_user"]
    return []


def _set(items: list[str]) -> str:
    """A Python set literal in sorted order, so the same settings always give the same file."""
    return "{" + ", ".join(repr(i) for i in sorted(set(items))) + "}" if items else "set()"


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
    header = (
        f"# compose.yaml, written by `stacks hub-config` from {hub.source} (the hub: section).\n"
        f"# Start: copy {ENV_FILE} to .env, fill it in, then `docker compose up -d` in this folder.\n"
        "# The Hub starts and removes the users' containers through the engine's socket: whoever\n"
        "# controls the Hub controls this host (docs/jupyterhub.md). group_add gives the Hub's user\n"
        "# the group that owns /var/run/docker.sock (DOCKER_GID).\n"
    )
    return header + yaml.safe_dump(compose_document(hub), sort_keys=False, default_flow_style=False, width=1000)


def env_text(hub: HubPlan) -> str:
    lines = [f"# Copy to .env beside {COMPOSE_FILE} and fill in; keep .env out of version control.",
             "# Group id of the Docker socket on this host: stat -c %g /var/run/docker.sock",
             f"DOCKER_GID={hub.docker_gid if hub.docker_gid is not None else ''}"]
    for name, (required, what) in secrets_env(hub).items():
        lines += [f"# {'required' if required else 'optional'}: {what}", f"{name}="]
    return "\n".join(lines) + "\n"


# --- the command ------------------------------------------------------------------


def docker_socket_gid(host: str = "unix:///var/run/docker.sock") -> int | None:
    """The group owning the local engine's socket (`host` as DOCKER_HOST says), which the Hub's user must belong to."""
    path = urlsplit(host).path if host.startswith("unix://") else None
    try:
        return os.stat(path).st_gid if path else None
    except OSError:
        return None
