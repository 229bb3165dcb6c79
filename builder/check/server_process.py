"""A Jupyter server of the image under test, started in a container and reached over HTTP on 127.0.0.1.

Shared by the server checks (token, password, Hub) and anything that needs a
live server while it runs (the browser check): where the server listens,
how to start it with the image's own health check probed fast, and how to
wait until it answers.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests

from builder.adapters.containers import Container, ContainerRunner, HealthCheck, ImageFacts, RunSpec
from builder.check.target import Target

START_TIMEOUT = 120.0
PORT_TIMEOUT = 10.0  # how long the published port may take to appear
# The image's HEALTHCHECK, probed faster than images declare it (seconds).
HEALTH_INTERVAL, HEALTH_TIMEOUT, HEALTH_START_PERIOD, HEALTH_RETRIES = 1.0, 5.0, 30.0, 3
# How long a check waits for 'healthy' or 'unhealthy', counted from the container's start.
HEALTH_WAIT = HEALTH_START_PERIOD + HEALTH_RETRIES * (HEALTH_INTERVAL + HEALTH_TIMEOUT) + 15


@dataclass
class Server:
    """A running container of the image with its server published on 127.0.0.1."""

    runner: ContainerRunner
    container: Container
    base_url: str  # http://127.0.0.1:<port><prefix>, ending in /
    started_at: float  # runner.clock() when the container was asked to start
    token: str = ""
    kernelspecs: dict[str, Any] = field(default_factory=dict)

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {token}"} if token else {}
        return session().get(self.base_url + path, headers=headers, timeout=15, allow_redirects=False, **kwargs)


def server_port(config: dict[str, Any]) -> int:
    """JUPYTER_PORT of the image, else its first exposed port, else 8888."""
    env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    if env.get("JUPYTER_PORT", "").isdigit():
        return int(env["JUPYTER_PORT"])
    exposed = [p.split("/")[0] for p in (config.get("ExposedPorts") or {})]
    return int(exposed[0]) if exposed and exposed[0].isdigit() else 8888


def fast_healthcheck(facts: ImageFacts) -> HealthCheck | None:
    """The image's own health test, probed every second instead of every 15 s (None: it declares none)."""
    test = (facts.config.get("Healthcheck") or {}).get("Test")
    if not test:
        return None
    return HealthCheck(list(test), HEALTH_INTERVAL, HEALTH_TIMEOUT, HEALTH_START_PERIOD, HEALTH_RETRIES)


@contextmanager
def started(runner: ContainerRunner, target: Target, role: str, env: dict[str, str], prefix: str = "/",
            fast_health: bool = True) -> Iterator[Server]:
    """Start the image with its default command; the container is removed afterwards."""
    port = server_port(target.facts.config)
    spec = RunSpec(target.node.name, role, environment=env, publish=port,
                   healthcheck=fast_healthcheck(target.facts) if fast_health else None)
    launched = runner.clock()
    with runner.run(target.node.local_ref, spec) as container:
        host = _host_port(runner, container, port)
        yield Server(runner, container, f"http://127.0.0.1:{host}{prefix}", launched, env.get("JUPYTER_TOKEN", ""))


def _host_port(runner: ContainerRunner, container: Container, port: int) -> int:
    """The published port; 0 when the container exited first (the wait for an answer reports the exit and the logs)."""
    def bound() -> int | None:
        found = container.host_port(port)
        if found is not None:
            return found
        return 0 if container.state().status == "exited" else None

    return runner.wait_until(bound, PORT_TIMEOUT, 0.2) or 0


def wait_until_answering(server: Server, timeout: float = START_TIMEOUT) -> tuple[bool, str]:
    """(answered, what happened): polls `<base>api` until it answers 200, the container exits, or time is up."""
    last = ["no answer"]

    def answered() -> tuple[bool, str] | None:
        try:
            response = server.get("api")
            if response.status_code == 200:
                return True, f"200 from {server.base_url}api: {response.text[:200]}"
            last[0] = f"{response.status_code} from {server.base_url}api"
        except requests.RequestException as exc:
            last[0] = f"{type(exc).__name__}"
        state = server.container.state()
        if state.status == "exited":
            code = "?" if state.exit_code is None else state.exit_code
            return False, f"the container exited (exit {code}); last log lines:\n{server.container.logs()}"
        return None

    outcome = server.runner.wait_until(answered, timeout, 0.5)
    return outcome or (False, f"{last[0]} after {timeout:.0f} s; last log lines:\n{server.container.logs()}")


def session() -> requests.Session:
    """A session that ignores proxies from the environment: they must not see (or break) loopback requests."""
    fresh = requests.Session()
    fresh.trust_env = False
    return fresh
