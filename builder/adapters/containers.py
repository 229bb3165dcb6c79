"""Containers started by stacks to look at a built image: the narrow interface the checks use, and its Docker side.

Checks and version reading never see the docker SDK. They ask a
`ContainerRunner` for the facts of an image and for a `Container` of it with
a `RunSpec`, inside a `with` block: the container is named and labelled by
one scheme (`stacks-<purpose>-<image>-<role>-<random>`, label
`<purpose label>=<image>`), so a crashed run leaves nothing anonymous behind,
and it is removed when the block ends, whatever happened inside. Every wait
goes through `wait_until`, the one polling loop, with the runner's clock, so
a fake runner can make time pass without sleeping.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import docker
import docker.errors
import docker.types

T = TypeVar("T")
SMOKE_LABEL = "io.stacks.smoke"
VERSIONS_LABEL = "io.stacks.versions-probe"
TIMED_OUT = 124  # the exit status of coreutils `timeout` when it had to stop the command
# Runs the command under `timeout` where the image has it (minimal images may not).
_WITH_TIMEOUT = 'if command -v timeout >/dev/null 2>&1; then exec timeout "$0" "$@"; else exec "$@"; fi'


@dataclass(frozen=True)
class Purpose:
    """Why stacks starts a container: gives its name prefix and the label that marks it."""

    prefix: str
    label: str


SMOKE = Purpose("stacks-smoke", SMOKE_LABEL)
VERSIONS = Purpose("stacks-versions", VERSIONS_LABEL)


@dataclass(frozen=True)
class HealthCheck:
    """A HEALTHCHECK to run the container with (seconds; Docker's API wants nanoseconds)."""

    test: list[str]
    interval: float
    timeout: float
    start_period: float
    retries: int


@dataclass(frozen=True)
class RunSpec:
    """How to start one container of an image: `image` is the stacks image name the label carries."""

    image: str
    role: str
    purpose: Purpose = SMOKE
    environment: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] | None = None
    command: list[str] | None = None  # None: the image's own CMD
    user: str | None = None
    publish: int | None = None  # a container port to publish on 127.0.0.1 (a free host port)
    mounts: dict[str, str] = field(default_factory=dict)  # host folder -> container path, read-write
    healthcheck: HealthCheck | None = None
    network: bool = True
    gpu: bool = False
    platform: str | None = None  # OS/ARCH of the image when it is not the engine's (docker run --platform)

    def name(self, suffix: str) -> str:
        return f"{self.purpose.prefix}-{self.image}-{self.role}-{suffix}"


@dataclass(frozen=True)
class ImageFacts:
    """What the checks read of a built image: its config (Cmd, Env, User, Healthcheck, ...) and labels."""

    config: dict[str, Any]
    labels: dict[str, str]

    @property
    def command(self) -> str:
        return " ".join(self.config.get("Cmd") or [])

    @property
    def environment(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config.get("Env") or [] if "=" in item)


@dataclass(frozen=True)
class ExecResult:
    """A finished exec: with `split`, stdout and stderr apart; without, stdout holds both as they came."""

    exit_code: int | None
    stdout: bytes = b""
    stderr: bytes = b""
    timed_out: bool = False

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def error_text(self) -> str:
        return self.stderr.decode(errors="replace")


@dataclass(frozen=True)
class Health:
    status: str  # starting | healthy | unhealthy
    last_output: str


@dataclass(frozen=True)
class State:
    status: str  # created | running | exited | ...
    exit_code: int | None
    health: Health | None  # None: the container runs no health check


class Container(Protocol):
    """A running container of an image under test."""

    @property
    def name(self) -> str: ...

    def exec(self, command: list[str], timeout: float | None = None, *, user: str | None = None,
             split: bool = False, detach: bool = False) -> ExecResult:
        """Run `command` inside; with `timeout`, stopped after that many seconds (`timed_out` says so)."""
        ...

    def logs(self, tail: int | None = 15, stderr: bool = True) -> str: ...

    def state(self) -> State: ...

    def host_port(self, port: int) -> int | None:
        """The 127.0.0.1 port that `port` of the container is published on, None while there is none."""
        ...

    def processes(self) -> list[tuple[str, str, str]]:
        """(pid, uid, command line) of every process inside."""
        ...


class ContainerRunner(Protocol):
    """Starts containers of built images and waits on them."""

    def image(self, ref: str) -> ImageFacts: ...

    def runtimes(self) -> frozenset[str]:
        """The container runtimes of the engine (`nvidia` where GPUs can be handed in)."""
        ...

    def run(self, ref: str, spec: RunSpec) -> AbstractContextManager[Container]:
        """A started container of `ref`; removed (forcefully) when the block ends."""
        ...

    def clock(self) -> float:
        """Seconds on a monotonic clock: what `wait_until` measures its timeouts with."""
        ...

    def wait_until(self, condition: Callable[[], T | None], timeout: float, interval: float,
                   since: float | None = None) -> T | None:
        """The first answer of `condition` that is not None, or None once `timeout` has passed."""
        ...


def wait_until(condition: Callable[[], T | None], timeout: float, interval: float, *,
               clock: Callable[[], float], sleep: Callable[[float], None], since: float | None = None) -> T | None:
    """The one polling loop: asks `condition` at least once, then every `interval` s until `since + timeout`."""
    deadline = (clock() if since is None else since) + timeout
    while True:
        answer = condition()
        if answer is not None:
            return answer
        if clock() >= deadline:
            return None
        sleep(interval)


def wait_for_exit(runner: ContainerRunner, container: Container, timeout: float) -> int | None:
    """The exit status once the container has stopped, None if it still runs after `timeout` s."""
    def exited() -> int | None:
        state = container.state()
        if state.status in ("exited", "dead"):
            return state.exit_code if state.exit_code is not None else -1
        return None

    return runner.wait_until(exited, timeout, 0.5)


def with_timeout(command: list[str], seconds: float) -> list[str]:
    """`command` wrapped so it is stopped after `seconds` (exit 124), where the image has `timeout`."""
    limit = str(int(seconds)) if float(seconds).is_integer() else f"{seconds:.3f}"
    return ["sh", "-c", _WITH_TIMEOUT, limit, *command]


class DockerContainer:
    """`Container` on a docker SDK container object."""

    def __init__(self, container: Any) -> None:
        self._container = container

    @property
    def name(self) -> str:
        return str(self._container.name)

    def exec(self, command: list[str], timeout: float | None = None, *, user: str | None = None,
             split: bool = False, detach: bool = False) -> ExecResult:
        argv = with_timeout(command, timeout) if timeout is not None else command
        code, output = self._container.exec_run(argv, user=user or "", demux=split, detach=detach)
        if split:
            out, err = output or (None, None)
            stdout, stderr = out or b"", err or b""
        else:
            stdout, stderr = (output if isinstance(output, bytes) else b""), b""
        return ExecResult(code, stdout, stderr, timed_out=timeout is not None and code == TIMED_OUT)

    def logs(self, tail: int | None = 15, stderr: bool = True) -> str:
        try:
            options: dict[str, Any] = {"stderr": stderr} if tail is None else {"tail": tail, "stderr": stderr}
            return str(self._container.logs(**options).decode(errors="replace").rstrip())
        except Exception as exc:  # noqa: BLE001 - the container may be gone already
            return f"(no logs: {exc})"

    def state(self) -> State:
        self._container.reload()
        state = self._container.attrs.get("State") or {}
        health = state.get("Health")
        log = (health or {}).get("Log") or [{}]
        return State(
            str(self._container.status), state.get("ExitCode"),
            Health(str(health.get("Status", "none")), str(log[-1].get("Output", "")).strip()) if health is not None else None,
        )

    def host_port(self, port: int) -> int | None:
        self._container.reload()
        bound = (self._container.ports or {}).get(f"{port}/tcp")
        return int(bound[0]["HostPort"]) if bound else None

    def processes(self) -> list[tuple[str, str, str]]:
        rows = self._container.top(ps_args="-o pid,uid,args").get("Processes") or []
        return [(str(pid), str(uid), str(args)) for pid, uid, args in rows]


class DockerContainers:
    """`ContainerRunner` on a docker SDK client: the only place checks' containers are created."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client

    def image(self, ref: str) -> ImageFacts:
        image = self._client.images.get(ref)
        return ImageFacts(image.attrs.get("Config") or {}, dict(image.labels or {}))

    def runtimes(self) -> frozenset[str]:
        return frozenset(self._client.info().get("Runtimes") or {})

    @contextmanager
    def run(self, ref: str, spec: RunSpec) -> Iterator[Container]:
        container = self._client.containers.run(ref, detach=True, **_run_options(spec))
        try:
            yield DockerContainer(container)
        finally:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass

    def clock(self) -> float:
        return time.monotonic()

    def wait_until(self, condition: Callable[[], T | None], timeout: float, interval: float,
                   since: float | None = None) -> T | None:
        return wait_until(condition, timeout, interval, clock=time.monotonic, sleep=time.sleep, since=since)


def _run_options(spec: RunSpec) -> dict[str, Any]:
    """The docker SDK's keyword arguments for `spec`."""
    options: dict[str, Any] = {
        "name": spec.name(secrets.token_hex(3)), "labels": {spec.purpose.label: spec.image},
        "environment": dict(spec.environment),
    }
    if spec.entrypoint is not None:
        options["entrypoint"] = spec.entrypoint
    if spec.command is not None:
        options["command"] = spec.command
    if spec.user is not None:
        options["user"] = spec.user
    if spec.publish is not None:
        options["ports"] = {f"{spec.publish}/tcp": ("127.0.0.1", None)}
    if spec.mounts:
        options["volumes"] = {host: {"bind": inside, "mode": "rw"} for host, inside in spec.mounts.items()}
    if spec.healthcheck is not None:
        check = spec.healthcheck
        options["healthcheck"] = {"test": check.test, "interval": _nanoseconds(check.interval),
                                  "timeout": _nanoseconds(check.timeout), "retries": check.retries,
                                  "start_period": _nanoseconds(check.start_period)}
    if not spec.network:
        options["network_disabled"] = True
    if spec.platform is not None:
        options["platform"] = spec.platform
    if spec.gpu:
        options["device_requests"] = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return options


def _nanoseconds(seconds: float) -> int:
    """Docker's API takes health-check durations in nanoseconds."""
    return int(seconds * 1_000_000_000)
