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
from collections.abc import Callable

from builder.adapters.containers import ContainerRunner, Health, RunSpec, wait_for_exit
from builder.check.options import CheckOptions
from builder.check.probes import HUB_STUB
from builder.check.result import CheckResult
from builder.check.server_process import session as new_session
from builder.check.server_process import (
    HEALTH_WAIT, START_TIMEOUT, Server, server_port, started, wait_until_answering,
)
from builder.check.target import Target, provider

HUB_PORT = 8081
HUB_USER = "smoke"
NO_HUB_TIMEOUT = 60.0
WhileUp = Callable[[Server], list[CheckResult]]
New = Callable[[str, str], CheckResult]


def standalone_checks(target: Target, runner: ContainerRunner, options: CheckOptions,
                      while_up: WhileUp | None = None) -> list[CheckResult]:
    """Token and password servers of one image, started side by side; `while_up` runs against the token server."""
    fragment = provider(target.node, "jupyter-server") or "?"
    token, password = secrets.token_hex(16), secrets.token_hex(8)
    new = _factory(target.node.name, fragment)
    results: list[CheckResult] = []
    with started(runner, target, "token", {"JUPYTER_TOKEN": token}) as server, \
            started(runner, target, "password", {"JUPYTER_PASSWORD": password}) as locked:
        port = server_port(target.facts.config)
        up = new(f"the default command starts a server answering on port {port}", f"200 from <server>/api within {START_TIMEOUT:.0f} s")
        with up.timed():
            up.verdict(*wait_until_answering(server))
        results.append(up)
        if up.status != "passed":
            return results  # every later check needs the server; the failure above says why
        results += [_token_refusal(new, server), _token_accepted(new, server), _kernels_listed(new, server, target.kernels),
                    _not_root(new, server), *_health(new, server)]
        if while_up is not None:
            results += while_up(server)
        results += _password_checks(new, locked, password)
    return results


def hub_checks(target: Target, runner: ContainerRunner, options: CheckOptions) -> list[CheckResult]:
    """The single-user server as a Hub spawner starts it, against the stand-in Hub."""
    fragment = provider(target.node, "jupyterhub-singleuser") or "?"
    new = _factory(target.node.name, fragment)
    results: list[CheckResult] = []
    if "singleuser" in target.facts.command:
        results.append(_refuses_without_hub(new, runner, target))
    port = server_port(target.facts.config)
    user_token, prefix = secrets.token_hex(16), f"/user/{HUB_USER}/"
    env = hub_environment(port, prefix)
    with started(runner, target, "hub", env, prefix=prefix) as server:
        server.container.exec(["python", "-c", HUB_STUB, str(HUB_PORT), HUB_USER, user_token], detach=True)
        server.token = user_token
        up = new(f"the default command starts the single-user server at {prefix} (stand-in Hub)",
                 f"200 from <server>{prefix}api within {START_TIMEOUT:.0f} s")
        with up.timed():
            up.verdict(*wait_until_answering(server))
        results.append(up)
        if up.status != "passed":
            return results
        results += [_token_refusal(new, server, hub=True), _token_accepted(new, server, hub=True),
                    _kernels_listed(new, server, target.kernels), _not_root(new, server), *_health(new, server)]
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


def _factory(image: str, fragment: str) -> New:
    return lambda name, expected: CheckResult(image, name, fragment, "server", expected=expected)


def _token_refusal(new: New, server: Server, hub: bool = False) -> CheckResult:
    who = "the Hub does not vouch for" if hub else "without the token"
    result = new(f"requests {who} are refused", "401 or 403 for /api/kernelspecs with no token and with a wrong one")
    with result.timed():
        codes = [server.get("api/kernelspecs").status_code, server.get("api/kernelspecs", token="wrong-" + server.token).status_code]
        result.verdict(all(code in (401, 403) for code in codes), f"no token: {codes[0]}, wrong token: {codes[1]}")
    return result


def _token_accepted(new: New, server: Server, hub: bool = False) -> CheckResult:
    what = "a token the Hub knows" if hub else "the token"
    result = new(f"requests with {what} are accepted", "200 for /api/kernelspecs with the token")
    with result.timed():
        response = server.get("api/kernelspecs", token=server.token)
        if response.status_code == 200:
            server.kernelspecs = response.json().get("kernelspecs", {})
        result.verdict(response.status_code == 200, f"{response.status_code}: {response.text[:300]}")
    return result


def _kernels_listed(new: New, server: Server, kernels: list[str]) -> CheckResult:
    result = new("the REST API lists every declared kernel", f"/api/kernelspecs has {', '.join(kernels) or '(none declared)'}")
    with result.timed():
        listed = sorted(server.kernelspecs)
        result.verdict(bool(listed) and set(kernels) <= set(listed), f"listed: {', '.join(listed) or 'nothing'}")
    return result


def _not_root(new: New, server: Server) -> CheckResult:
    result = new("the server does not run as root", "the jupyter process has a non-zero uid")
    with result.timed():
        processes = server.container.processes()
        jupyter = [(uid, args) for _, uid, args in processes if "jupyter" in args and "healthcheck" not in args]
        result.verdict(bool(jupyter) and all(uid.strip() != "0" for uid, _ in jupyter),
                       "; ".join(f"uid {uid}: {args[:120]}" for uid, args in jupyter) or "no jupyter process")
    return result


def _health(new: New, server: Server) -> list[CheckResult]:
    """The image's HEALTHCHECK command (probed every second here) must report healthy.

    Docker ignores failed probes during the start period, so a probe that always
    fails turns 'unhealthy' only after the start period and its retries: the wait
    runs from the container's start until then, plus a margin.
    """
    if server.container.state().health is None:
        return []
    result = new("the image's health check reports healthy", f"health status 'healthy' within {HEALTH_WAIT:.0f} s")
    with result.timed():
        def settled() -> Health | None:
            health = server.container.state().health
            return health if health is not None and health.status in ("healthy", "unhealthy") else None

        final = server.runner.wait_until(settled, HEALTH_WAIT, 1.0, since=server.started_at) \
            or server.container.state().health or Health("none", "")
        result.verdict(final.status == "healthy", f"{final.status}; last probe: {final.last_output[-300:]}")
    return [result]


def _password_checks(new: New, server: Server, password: str) -> list[CheckResult]:
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
    session = new_session()
    session.get(server.base_url + "login", timeout=15)
    xsrf = session.cookies.get("_xsrf", "")
    posted = session.post(server.base_url + "login", data={"password": password, "_xsrf": xsrf},
                          allow_redirects=False, timeout=15)
    after = session.get(server.base_url + "api/kernelspecs", headers={"X-XSRFToken": xsrf}, timeout=15)
    return posted.status_code, after.status_code


def _refuses_without_hub(new: New, runner: ContainerRunner, target: Target) -> CheckResult:
    result = new("without a Hub the default command stops and says what is missing",
                 f"a non-zero exit within {NO_HUB_TIMEOUT:.0f} s and a log line naming a JUPYTERHUB_ variable")
    with result.timed():
        with runner.run(target.node.local_ref, RunSpec(target.node.name, "nohub")) as container:
            code = wait_for_exit(runner, container, NO_HUB_TIMEOUT)
            logs = container.logs(5)
        if code is None:
            result.verdict(False, f"still running after {NO_HUB_TIMEOUT:.0f} s; last log lines:\n{logs}")
        else:
            result.verdict(code != 0 and "JUPYTERHUB_" in logs, f"exit {code}; last log lines:\n{logs}")
    return result
