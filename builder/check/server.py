"""The Jupyter server of an image, started the way users start it, checked from outside over HTTP.

For an image that provides `jupyter-server` the default command must start a
server that answers on its port, refuses requests without the token, accepts
them with it, lists every declared kernel over the REST API, does not run
as root, and turns healthy under the image's own HEALTHCHECK; started with
JUPYTER_PASSWORD instead, login must work with that password and only with it.

An image that provides `jupyterhub-singleuser` is started as a spawner
would start it, against a stand-in Hub API (probes/hub_stub.py) run inside
the container: the server must answer at its prefix, refuse requests the Hub
does not vouch for and accept a token the Hub knows. If its default command
is the single-user server, starting it without a Hub must fail and say what
is missing.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests

from builder.check.result import CheckResult
from builder.adapters.docker import Engine
from builder.plan.plan import Node
from builder.check.probes import HUB_STUB

START_TIMEOUT = 120.0
HUB_PORT = 8081
HUB_USER = "smoke"
SMOKE_LABEL = "io.stacks.smoke"
# The image's HEALTHCHECK, probed faster than images declare it (seconds).
HEALTH_INTERVAL, HEALTH_TIMEOUT, HEALTH_START_PERIOD, HEALTH_RETRIES = 1.0, 5.0, 30.0, 3
# How long a check waits for 'healthy' or 'unhealthy', counted from the container's start.
HEALTH_WAIT = HEALTH_START_PERIOD + HEALTH_RETRIES * (HEALTH_INTERVAL + HEALTH_TIMEOUT) + 15


@dataclass
class Server:
    """A running container of the image with its server published on 127.0.0.1."""

    container: Any
    base_url: str  # http://127.0.0.1:<port><prefix>, ending in /
    started_at: float  # time.monotonic() when the container was asked to start
    token: str = ""
    kernelspecs: dict[str, Any] = field(default_factory=dict)

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {token}"} if token else {}
        return _session().get(self.base_url + path, headers=headers, timeout=15, allow_redirects=False, **kwargs)


def provider(node: Node, capability: str) -> str | None:
    """The fragment of the image's chain that provides `capability` (the last one wins)."""
    found = None
    for applied in node.chain:
        if any(p.name == capability for p in applied.provides):
            found = applied.name
    return found


def image_config(engine: Engine, node: Node) -> dict[str, Any]:
    return engine.client.images.get(node.local_ref).attrs.get("Config") or {}


def server_port(config: dict[str, Any]) -> int:
    """JUPYTER_PORT of the image, else its first exposed port, else 8888."""
    env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    if env.get("JUPYTER_PORT", "").isdigit():
        return int(env["JUPYTER_PORT"])
    exposed = [p.split("/")[0] for p in (config.get("ExposedPorts") or {})]
    return int(exposed[0]) if exposed and exposed[0].isdigit() else 8888


@contextmanager
def started(engine: Engine, node: Node, role: str, env: dict[str, str], prefix: str = "/",
            fast_health: bool = True, **run: Any) -> Iterator[Server]:
    """Start the image with its default command (or `run` overrides); always removed afterwards."""
    config = image_config(engine, node)
    port = server_port(config)
    options: dict[str, Any] = {}
    if fast_health and config.get("Healthcheck", {}).get("Test"):
        # The image's own test, probed every second instead of every 15 s.
        options["healthcheck"] = {"test": config["Healthcheck"]["Test"], "interval": _nanoseconds(HEALTH_INTERVAL),
                                  "timeout": _nanoseconds(HEALTH_TIMEOUT), "retries": HEALTH_RETRIES,
                                  "start_period": _nanoseconds(HEALTH_START_PERIOD)}
    launched = time.monotonic()
    container = engine.client.containers.run(
        node.local_ref, detach=True, environment=env, ports={f"{port}/tcp": ("127.0.0.1", None)},
        labels={SMOKE_LABEL: node.name}, name=f"stacks-smoke-{node.name}-{role}-{secrets.token_hex(3)}",
        **options, **run,
    )
    try:
        yield Server(container, f"http://127.0.0.1:{_host_port(container, port)}{prefix}", launched, env.get("JUPYTER_TOKEN", ""))
    finally:
        container.remove(force=True)


def _nanoseconds(seconds: float) -> int:
    """Docker's API takes health-check durations in nanoseconds."""
    return int(seconds * 1_000_000_000)


def _host_port(container: Any, port: int) -> str:
    deadline = time.monotonic() + 10
    while True:
        container.reload()
        bound = (container.ports or {}).get(f"{port}/tcp")
        if bound:
            return bound[0]["HostPort"]
        if container.status == "exited" or time.monotonic() > deadline:
            return "0"  # the wait for an answer reports the exit and the logs
        time.sleep(0.2)


def wait_until_answering(server: Server, timeout: float = START_TIMEOUT) -> tuple[bool, str]:
    """(answered, what happened): polls `<base>api` until it answers 200, the container exits, or time is up."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = server.get("api")
            if response.status_code == 200:
                return True, f"200 from {server.base_url}api: {response.text[:200]}"
            last = f"{response.status_code} from {server.base_url}api"
        except requests.RequestException as exc:
            last = f"{type(exc).__name__}"
        server.container.reload()
        if server.container.status == "exited":
            return False, f"the container exited ({_exit_code(server.container)}); last log lines:\n{_logs(server.container)}"
        time.sleep(0.5)
    return False, f"{last} after {timeout:.0f} s; last log lines:\n{_logs(server.container)}"


def standalone_checks(engine: Engine, node: Node, kernels: list[str],
                      while_up: Callable[[Server], list[CheckResult]] | None = None) -> list[CheckResult]:
    """Token and password servers of one image, started side by side."""
    fragment = provider(node, "jupyter-server") or "?"
    token, password = secrets.token_hex(16), secrets.token_hex(8)
    new = _factory(node.name, fragment)
    results: list[CheckResult] = []
    with started(engine, node, "token", {"JUPYTER_TOKEN": token}) as server, \
            started(engine, node, "password", {"JUPYTER_PASSWORD": password}) as locked:
        port = server_port(image_config(engine, node))
        up = new(f"the default command starts a server answering on port {port}", f"200 from <server>/api within {START_TIMEOUT:.0f} s")
        with up.timed():
            up.verdict(*wait_until_answering(server))
        results.append(up)
        if up.status != "passed":
            return results  # every later check needs the server; the failure above says why
        results += [_token_refusal(new, server), _token_accepted(new, server), _kernels_listed(new, server, kernels),
                    _not_root(new, server), *_health(new, server)]
        if while_up is not None:
            results += while_up(server)
        results += _password_checks(new, locked, password)
    return results


def hub_checks(engine: Engine, node: Node, kernels: list[str]) -> list[CheckResult]:
    """The single-user server as a Hub spawner starts it, against the stand-in Hub."""
    fragment = provider(node, "jupyterhub-singleuser") or "?"
    new = _factory(node.name, fragment)
    results: list[CheckResult] = []
    command = " ".join(image_config(engine, node).get("Cmd") or [])
    if "singleuser" in command:
        results.append(_refuses_without_hub(new, engine, node))
    port = server_port(image_config(engine, node))
    user_token, prefix = secrets.token_hex(16), f"/user/{HUB_USER}/"
    env = hub_environment(port, prefix)
    with started(engine, node, "hub", env, prefix=prefix) as server:
        server.container.exec_run(["python", "-c", HUB_STUB, str(HUB_PORT), HUB_USER, user_token], detach=True)
        server.token = user_token
        up = new(f"the default command starts the single-user server at {prefix} (stand-in Hub)",
                 f"200 from <server>{prefix}api within {START_TIMEOUT:.0f} s")
        with up.timed():
            up.verdict(*wait_until_answering(server))
        results.append(up)
        if up.status != "passed":
            return results
        results += [_token_refusal(new, server, hub=True), _token_accepted(new, server, hub=True),
                    _kernels_listed(new, server, kernels), _not_root(new, server), *_health(new, server)]
    return results


def hub_environment(port: int, prefix: str) -> dict[str, str]:
    """What a JupyterHub spawner sets, pointing at the stand-in Hub inside the container."""
    return {
        "JUPYTERHUB_API_TOKEN": secrets.token_hex(16),
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{HUB_PORT}/hub/api",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_USER": HUB_USER,
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:{port}{prefix}",
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{HUB_USER}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": f'["access:servers!server={HUB_USER}/", "access:servers!user={HUB_USER}"]',
    }


def _factory(image: str, fragment: str) -> Callable[[str, str], CheckResult]:
    return lambda name, expected: CheckResult(image, name, fragment, "server", expected=expected)


def _token_refusal(new: Callable, server: Server, hub: bool = False) -> CheckResult:
    who = "the Hub does not vouch for" if hub else "without the token"
    result = new(f"requests {who} are refused", "401 or 403 for /api/kernelspecs with no token and with a wrong one")
    with result.timed():
        codes = [server.get("api/kernelspecs").status_code, server.get("api/kernelspecs", token="wrong-" + server.token).status_code]
        result.verdict(all(code in (401, 403) for code in codes), f"no token: {codes[0]}, wrong token: {codes[1]}")
    return result


def _token_accepted(new: Callable, server: Server, hub: bool = False) -> CheckResult:
    what = "a token the Hub knows" if hub else "the token"
    result = new(f"requests with {what} are accepted", "200 for /api/kernelspecs with the token")
    with result.timed():
        response = server.get("api/kernelspecs", token=server.token)
        if response.status_code == 200:
            server.kernelspecs = response.json().get("kernelspecs", {})
        result.verdict(response.status_code == 200, f"{response.status_code}: {response.text[:300]}")
    return result


def _kernels_listed(new: Callable, server: Server, kernels: list[str]) -> CheckResult:
    result = new("the REST API lists every declared kernel", f"/api/kernelspecs has {', '.join(kernels) or '(none declared)'}")
    with result.timed():
        listed = sorted(server.kernelspecs)
        result.verdict(bool(listed) and set(kernels) <= set(listed), f"listed: {', '.join(listed) or 'nothing'}")
    return result


def _not_root(new: Callable, server: Server) -> CheckResult:
    result = new("the server does not run as root", "the jupyter process has a non-zero uid")
    with result.timed():
        processes = server.container.top(ps_args="-o pid,uid,args").get("Processes") or []
        jupyter = [(uid, args) for _, uid, args in processes if "jupyter" in args and "healthcheck" not in args]
        result.verdict(bool(jupyter) and all(uid.strip() != "0" for uid, _ in jupyter),
                       "; ".join(f"uid {uid}: {args[:120]}" for uid, args in jupyter) or "no jupyter process")
    return result


def _health(new: Callable, server: Server) -> list[CheckResult]:
    """The image's HEALTHCHECK command (probed every second here) must report healthy.

    Docker ignores failed probes during the start period, so a probe that always
    fails turns 'unhealthy' only after the start period and its retries: the wait
    runs from the container's start until then, plus a margin.
    """
    state = (server.container.attrs.get("State") or {}).get("Health")
    if state is None:
        return []
    result = new("the image's health check reports healthy", f"health status 'healthy' within {HEALTH_WAIT:.0f} s")
    with result.timed():
        deadline, status = server.started_at + HEALTH_WAIT, "starting"
        while time.monotonic() < deadline:
            server.container.reload()
            health = server.container.attrs["State"].get("Health") or {}
            status = health.get("Status", "none")
            if status in ("healthy", "unhealthy"):
                break
            time.sleep(1)
        log = (server.container.attrs["State"].get("Health") or {}).get("Log") or [{}]
        result.verdict(status == "healthy", f"{status}; last probe: {str(log[-1].get('Output', '')).strip()[-300:]}")
    return [result]


def _password_checks(new: Callable, server: Server, password: str) -> list[CheckResult]:
    accepted = new("login with the password set at start works", "after POST /login with it, 200 for /api/kernelspecs")
    refused = new("login without that password is refused", "403 for /api/kernelspecs with no login and after a wrong password")
    with accepted.timed():
        up, how = wait_until_answering(server)
        if not up:
            accepted.verdict(False, how)
            refused.verdict(False, f"not checked: {how}")
            return [accepted, refused]
        with refused.timed():
            wrong = _login(server, "not-" + password)
            refused.verdict(wrong == (401, 403), f"login answered {wrong[0]}, then /api/kernelspecs {wrong[1]}")
        right = _login(server, password)
        accepted.verdict(right[1] == 200, f"login answered {right[0]}, then /api/kernelspecs {right[1]}")
    return [accepted, refused]


def _login(server: Server, password: str) -> tuple[int, int]:
    """(status of POST /login, status of /api/kernelspecs in the same session)."""
    session = _session()
    session.get(server.base_url + "login", timeout=15)
    xsrf = session.cookies.get("_xsrf", "")
    posted = session.post(server.base_url + "login", data={"password": password, "_xsrf": xsrf},
                          allow_redirects=False, timeout=15)
    after = session.get(server.base_url + "api/kernelspecs", headers={"X-XSRFToken": xsrf}, timeout=15)
    return posted.status_code, after.status_code


def _refuses_without_hub(new: Callable, engine: Engine, node: Node) -> CheckResult:
    result = new("without a Hub the default command stops and says what is missing",
                 "a non-zero exit within 60 s and a log line naming a JUPYTERHUB_ variable")
    with result.timed():
        container = engine.client.containers.run(node.local_ref, detach=True, labels={SMOKE_LABEL: node.name},
                                                 name=f"stacks-smoke-{node.name}-nohub-{secrets.token_hex(3)}")
        try:
            code = container.wait(timeout=60).get("StatusCode")
            logs = _logs(container, 5)
            result.verdict(code != 0 and "JUPYTERHUB_" in logs, f"exit {code}; last log lines:\n{logs}")
        finally:
            container.remove(force=True)
    return result


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # a proxy from the environment must not see (or break) loopback requests
    return session


def _exit_code(container: Any) -> str:
    return f"exit {(container.attrs.get('State') or {}).get('ExitCode', '?')}"


def _logs(container: Any, lines: int = 15) -> str:
    try:
        return container.logs(tail=lines).decode(errors="replace").rstrip()
    except Exception as exc:  # noqa: BLE001 - the container may be gone already
        return f"(no logs: {exc})"
