"""The container interface's own logic: the polling loop, the naming and labels, exec with a timeout, version reading."""
from __future__ import annotations

from typing import Any

from builder.adapters.containers import (
    SMOKE_LABEL, VERSIONS, VERSIONS_LABEL, DockerContainer, ExecResult, HealthCheck, ImageFacts, RunSpec, _run_options,
    wait_until, with_timeout,
)
from builder.plan.versions import Probe
from builder.check.versions import PROBE_TIMEOUT, read_versions

from .fakes import FakeContainer, FakeContainers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_until_returns_the_first_answer_and_none_at_the_deadline() -> None:
    clock = Clock()
    answers = iter([None, None, "up"])
    assert wait_until(lambda: next(answers), 10, 0.5, clock=clock, sleep=clock.sleep) == "up"
    assert clock.sleeps == [0.5, 0.5]
    clock = Clock()
    assert wait_until(lambda: None, 3, 1, clock=clock, sleep=clock.sleep) is None
    assert clock.now == 103.0
    clock = Clock()  # counted from `since`: a deadline already passed still asks once
    asked: list[int] = []
    assert wait_until(lambda: asked.append(1), 5, 1, clock=clock, sleep=clock.sleep, since=90.0) is None
    assert asked == [1] and clock.sleeps == []


def test_one_naming_scheme_and_the_purpose_label() -> None:
    options = _run_options(RunSpec("lab-bookworm", "token", environment={"JUPYTER_TOKEN": "t"}, publish=8888))
    assert options["name"].startswith("stacks-smoke-lab-bookworm-token-") and len(options["name"]) == len("stacks-smoke-lab-bookworm-token-") + 6
    assert options["labels"] == {SMOKE_LABEL: "lab-bookworm"}
    assert options["ports"] == {"8888/tcp": ("127.0.0.1", None)} and options["environment"] == {"JUPYTER_TOKEN": "t"}
    assert "network_disabled" not in options and "device_requests" not in options and "command" not in options
    probe = _run_options(RunSpec("lab", "probe", purpose=VERSIONS, entrypoint=["sleep"], command=["infinity"], network=False))
    assert probe["labels"] == {VERSIONS_LABEL: "lab"} and probe["name"].startswith("stacks-versions-lab-probe-")
    assert probe["network_disabled"] is True and probe["entrypoint"] == ["sleep"] and probe["command"] == ["infinity"]


def test_run_options_for_mounts_health_checks_and_gpus() -> None:
    options = _run_options(RunSpec("x", "remap", user="root", mounts={"/tmp/f": "/home/jovyan/m"}, gpu=True,
                                   healthcheck=HealthCheck(["CMD", "true"], 1.0, 5.0, 30.0, 3)))
    assert options["volumes"] == {"/tmp/f": {"bind": "/home/jovyan/m", "mode": "rw"}} and options["user"] == "root"
    assert options["healthcheck"] == {"test": ["CMD", "true"], "interval": 1_000_000_000, "timeout": 5_000_000_000,
                                      "retries": 3, "start_period": 30_000_000_000}
    assert options["device_requests"][0]["Capabilities"] == [["gpu"]]


class SdkContainer:
    """The few attributes of a docker SDK container that DockerContainer reads."""

    def __init__(self, code: int, output: Any) -> None:
        self.code, self.output, self.calls = code, output, []  # type: ignore[var-annotated]
        self.name = "stacks-smoke-x-idle-abc123"

    def exec_run(self, argv: list[str], **kwargs: Any) -> tuple[int, Any]:
        self.calls.append((argv, kwargs))
        return self.code, self.output


def test_exec_wraps_the_command_in_a_timeout_and_says_when_it_hit() -> None:
    sdk = SdkContainer(124, (b"partial", None))
    done = DockerContainer(sdk).exec(["sh", "-c", "sleep 99"], timeout=30, split=True, user="jovyan")
    assert done == ExecResult(124, b"partial", b"", timed_out=True)
    argv, kwargs = sdk.calls[0]
    assert argv == with_timeout(["sh", "-c", "sleep 99"], 30) and argv[3:] == ["30", "sh", "-c", "sleep 99"]
    assert kwargs == {"user": "jovyan", "demux": True, "detach": False}
    plain = DockerContainer(SdkContainer(124, b"both streams")).exec(["true"])
    assert plain == ExecResult(124, b"both streams", b"", timed_out=False)  # no timeout asked: 124 is just a status


def test_image_facts_read_the_command_and_environment() -> None:
    facts = ImageFacts({"Cmd": ["start-notebook.py", "--x"], "Env": ["HOME=/home/jovyan", "A=b=c"]}, {})
    assert facts.command == "start-notebook.py --x" and facts.environment == {"HOME": "/home/jovyan", "A": "b=c"}


# --- version reading ----------------------------------------------------------------------------------------

def _versions_container(spec: RunSpec) -> FakeContainer:
    answers = {
        "python3 --version | cut -d' ' -f2": ExecResult(0, b"\n3.11.2\nmore\n", b""),
        "lab --version": ExecResult(127, b"", b"sh: 1: lab: not found\n"),
        "true": ExecResult(0, b"", b"warned\n"),
    }
    return FakeContainer(spec, on_exec=lambda container, command: answers[command[-1]])


def test_read_versions_runs_every_probe_in_one_offline_container() -> None:
    runner = FakeContainers({}, _versions_container)
    wanted = {name: Probe(name, command, "fragment 'f'") for name, command in
              (("python", "python3 --version | cut -d' ' -f2"), ("lab", "lab --version"), ("quiet", "true"))}
    report = read_versions(runner, "stacks/lab:abc", "lab", wanted)
    assert report.versions == {"python": "3.11.2"}
    assert report.failures == {
        "lab": "exit status 127: sh: 1: lab: not found (command from fragment 'f': lab --version)",
        "quiet": "printed nothing (stderr: warned) (command from fragment 'f': true)",
    }
    (container,) = runner.started
    assert container.spec.purpose == VERSIONS and not container.spec.network and container.removed
    assert sorted(command[-1] for command in container.execs) == sorted(p.command for p in wanted.values())


def test_read_versions_starts_nothing_without_probes() -> None:
    runner = FakeContainers({}, _versions_container)
    assert read_versions(runner, "ref", "lab", {}).versions == {} and runner.started == []


def test_version_commands_run_with_the_probe_timeout() -> None:
    seen: list[float | None] = []

    class Recording(FakeContainer):
        def exec(self, command: list[str], timeout: float | None = None, **kwargs: Any) -> ExecResult:
            seen.append(timeout)
            return ExecResult(0, b"1.0\n")

    runner = FakeContainers({}, lambda spec: Recording(spec))
    read_versions(runner, "ref", "lab", {"x": Probe("x", "echo 1.0", "base 'debian'")})
    assert seen == [PROBE_TIMEOUT]

