"""Check suites against a fake of the container interface: which suites an image gets, and their verdicts."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from builder.adapters.containers import SMOKE_LABEL, ExecResult, ImageFacts, RunSpec, State
from builder.check import server as server_check
from builder.check import start as start_check
from builder.check.options import CheckOptions
from builder.check.probes import HUB_STUB
from builder.check.result import CheckResult
from builder.check.server_process import HEALTH_WAIT, START_TIMEOUT
from builder.check.smoke import smoke_image
from builder.check.suites import suites_for
from builder.check.target import Target
from builder.plan.plan import HASH_LABEL, Node

from .fakes import FakeContainer, FakeContainers, StubJupyter, exited, healthy_after
from .helpers import plan_of

FRAGMENTS = {
    "server": {"meta": {"provides": ["jupyter-server"]}},
    "lab": {"meta": {"provides": ["jupyterlab"], "requires": ["jupyter-server"]}},
    "hub": {"meta": {"provides": ["jupyterhub-singleuser"], "requires": ["jupyter-server"]}},
    "starts": {"meta": {"provides": ["start-scripts"]}},
    "probe": {"meta": {"checks": [{"name": "says hi", "run": "echo hi", "expect": "^hi$"},
                                  {"name": "sees a gpu", "run": "nvidia-smi -L", "needs": ["gpu"]},
                                  {"name": "flavour", "label": {"flavour": "^vanilla$"}}],
                       "kernel": {"name": "python3", "language": "python", "snippet": "print(6*7)", "expect": "^42$"}}},
}
SPEC = """
    bases:
      debian: {pull: "debian:12"}
    images:
      plain: {base: debian, fragments: [os, probe]}
      notebook: {base: debian, fragments: [os, starts, server]}
      lab: {base: debian, fragments: [os, server, lab]}
      single: {base: debian, fragments: [os, server, hub]}
    """
SERVER_CHECKS = [
    "the default command starts a server answering on port 8888",
    "requests without the token are refused",
    "requests with the token are accepted",
    "the REST API lists every declared kernel",
    "the server does not run as root",
    "login with the password set at start works",
    "login without that password is refused",
]


@pytest.fixture
def nodes(stack) -> dict[str, Node]:
    plan = plan_of(stack(SPEC, FRAGMENTS))
    return {name: plan[name] for name in ("plain", "notebook", "lab", "single")}


def target(node: Node, kernels: list[str] | None = None, **config: object) -> Target:
    return Target(node, ImageFacts(dict(config), {HASH_LABEL: node.hash}), kernels if kernels is not None else ["python3"])


def jupyter_container(stub: StubJupyter, states: Callable[[float], State] = lambda now: State("running", None, None),
                      procs: list[tuple[str, str, str]] | None = None) -> Callable[[RunSpec], FakeContainer]:
    """Containers whose server is `stub`; the Hub stand-in's token is registered when the check starts it."""
    def on_exec(container: FakeContainer, command: list[str]) -> ExecResult:
        if HUB_STUB in command:
            stub.tokens.add(command[-1])
        return ExecResult(0)

    def make(spec: RunSpec) -> FakeContainer:
        stub.register(spec)
        return FakeContainer(spec, port=stub.port, states=states, on_exec=on_exec, log_text="server log line",
                             procs=procs if procs is not None else [("7", "1000", "/opt/venv/bin/python jupyter-lab")])
    return make


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


# --- which suites an image gets -------------------------------------------------------------------------------

@pytest.mark.parametrize("image, cmd, suites", [
    ("plain", ["bash"], ["declared"]),
    ("notebook", ["start-notebook.py"], ["declared", "start", "server"]),
    ("lab", ["start-notebook.py"], ["declared", "server"]),
    ("single", ["start-singleuser.py"], ["declared", "hub"]),  # its server cannot start without a Hub
    ("single", ["start-notebook.py"], ["declared", "hub", "server"]),
])
def test_suites_are_chosen_by_capabilities_and_default_command(nodes, image, cmd, suites) -> None:
    assert [s.name for s in suites_for(target(nodes[image], Cmd=cmd))] == suites


def test_smoke_image_runs_the_suites_in_registry_order(nodes) -> None:
    with StubJupyter() as stub:
        runner = FakeContainers({nodes["notebook"].local_ref: ImageFacts({"Cmd": ["start-notebook.py"], "User": "1000"}, {})},
                                jupyter_container(stub))
        heard: list[str] = []
        results = smoke_image(runner, nodes["notebook"], CheckOptions(), on_suite=heard.append)
    assert heard[0].startswith("declared checks") and heard[1:] == ["start scripts (user, umask, hooks)", "server"]
    assert runner.roles() == ["idle", "remap", "token", "password"]
    assert [r.kind for r in results][:2] == ["label", "start"] and results[-1].kind == "server"
    assert all(c.removed for c in runner.started)


# --- the idle container: declared checks, kernels, identity -------------------------------------------------

def test_idle_container_runs_declared_checks_and_kernels(nodes) -> None:
    def on_exec(container: FakeContainer, command: list[str]) -> ExecResult:
        if command[:2] == ["sh", "-c"]:
            return ExecResult(0, b"hi\n")
        return ExecResult(0, b"kernel warming up\n" + json.dumps({"output": "42\n", "error": None}).encode())

    node = nodes["plain"]
    runner = FakeContainers({node.local_ref: ImageFacts({"Cmd": ["bash"]}, {HASH_LABEL: node.hash, "flavour": "chocolate"})},
                            lambda spec: FakeContainer(spec, on_exec=on_exec))
    results = by_name(smoke_image(runner, node, CheckOptions(hardware=frozenset())))
    (idle,) = runner.started
    assert idle.spec.role == "idle" and idle.spec.command == ["infinity"] and not idle.spec.gpu and idle.removed
    assert results["the image carries the planned content hash"].status == "passed"
    assert results["says hi"].status == "passed"
    assert results["kernel python3 runs its snippet"].status == "passed"
    assert results["sees a gpu"].status == "not run" and "gpu" in results["sees a gpu"].got
    assert results["flavour"].status == "failed" and "chocolate" in results["flavour"].got
    assert idle.execs[0][:2] == ["sh", "-c"] or idle.execs[1][:2] == ["sh", "-c"]


def test_idle_container_gets_the_gpu_only_when_the_machine_has_one(nodes) -> None:
    node = nodes["plain"]
    runner = FakeContainers({node.local_ref: ImageFacts({}, {})}, lambda spec: FakeContainer(spec))
    results = by_name(smoke_image(runner, node, CheckOptions(hardware=frozenset({"gpu"}))))
    assert runner.started[0].spec.gpu and results["sees a gpu"].status != "not run"


def test_a_run_check_that_times_out_fails_saying_so(nodes) -> None:
    node = nodes["plain"]
    runner = FakeContainers({node.local_ref: ImageFacts({}, {})},
                            lambda spec: FakeContainer(spec, on_exec=lambda c, cmd: ExecResult(124, b"", b"", timed_out=True)))
    said = by_name(smoke_image(runner, node))["says hi"]
    assert said.status == "failed" and said.got.startswith("timed out after 120 s")


def test_a_kernel_that_cannot_start_fails_with_its_error(nodes) -> None:
    node = nodes["plain"]
    runner = FakeContainers({node.local_ref: ImageFacts({}, {})}, lambda spec: FakeContainer(
        spec, on_exec=lambda c, cmd: ExecResult(1, b"Traceback\nNo such file: python-removed\n")))
    kernel = by_name(smoke_image(runner, node))["kernel python3 runs its snippet"]
    assert kernel.status == "failed" and kernel.got.startswith("exit 1: ") and "python-removed" in kernel.got


# --- the standalone server ---------------------------------------------------------------------------------

def test_a_good_server_passes_every_check(nodes) -> None:
    with StubJupyter() as stub:
        runner = FakeContainers({}, jupyter_container(stub))
        results = server_check.standalone_checks(target(nodes["lab"]), runner, CheckOptions())
    assert [(r.name, r.status) for r in results] == [(name, "passed") for name in SERVER_CHECKS]
    token, password = runner.started
    assert (token.spec.role, token.spec.publish, token.spec.purpose.label) == ("token", 8888, SMOKE_LABEL)
    assert "JUPYTER_PASSWORD" in password.spec.environment and token.removed and password.removed


def test_a_server_that_ignores_the_token_is_refused_a_pass(nodes) -> None:
    with StubJupyter() as stub:
        stub.ignore_token = True
        results = by_name(server_check.standalone_checks(target(nodes["lab"]), FakeContainers({}, jupyter_container(stub)),
                                                         CheckOptions()))
    refused = results["requests without the token are refused"]
    assert refused.status == "failed" and refused.got == "no token: 200, wrong token: 200"
    assert results["requests with the token are accepted"].status == "passed"


def test_an_unlisted_kernel_and_a_root_server_fail(nodes) -> None:
    with StubJupyter() as stub:
        runner = FakeContainers({}, jupyter_container(stub, procs=[("1", "0", "jupyter-lab --allow-root")]))
        results = by_name(server_check.standalone_checks(target(nodes["lab"], ["python3", "ir"]), runner, CheckOptions()))
    assert results["the REST API lists every declared kernel"].status == "failed"
    root = results["the server does not run as root"]
    assert root.status == "failed" and root.got == "uid 0: jupyter-lab --allow-root"


def test_a_server_that_never_answers_times_out_with_a_message(nodes) -> None:
    with StubJupyter() as stub:
        stub.api_status = 503
        runner = FakeContainers({}, jupyter_container(stub))
        results = server_check.standalone_checks(target(nodes["lab"]), runner, CheckOptions())
    (up,) = results  # nothing that needs the server is reported
    assert up.status == "failed" and up.got.startswith(f"503 from http://127.0.0.1:{stub.port}/api after {START_TIMEOUT:.0f} s")
    assert "server log line" in up.got and runner.now >= START_TIMEOUT


def test_a_server_that_exits_reports_its_exit_and_logs(nodes) -> None:
    runner = FakeContainers({}, lambda spec: FakeContainer(spec, port=None, states=exited(3), log_text="refuses to start"))
    (up,) = server_check.standalone_checks(target(nodes["lab"]), runner, CheckOptions())
    assert up.status == "failed" and "the container exited (exit 3)" in up.got and "refuses to start" in up.got


@pytest.mark.parametrize("after, final, status, got", [
    (10.0, "healthy", "passed", "healthy; last probe: probe said so"),
    (40.0, "unhealthy", "failed", "unhealthy; last probe: probe said so"),
    (HEALTH_WAIT + 100, "healthy", "failed", "starting; last probe: probe said so"),  # never settles in time
])
def test_the_health_check_verdict_follows_the_health_status(nodes, after, final, status, got) -> None:
    with StubJupyter() as stub:
        runner = FakeContainers({}, jupyter_container(stub, states=healthy_after(after, final)))
        results = by_name(server_check.standalone_checks(
            target(nodes["lab"], Healthcheck={"Test": ["CMD", "true"]}), runner, CheckOptions()))
    health = results["the image's health check reports healthy"]
    assert (health.status, health.got) == (status, got)
    assert runner.started[0].spec.healthcheck is not None and runner.started[0].spec.healthcheck.interval == 1.0


def test_the_health_wait_counts_from_the_container_start(nodes) -> None:
    with StubJupyter() as stub:
        runner = FakeContainers({}, jupyter_container(stub, states=healthy_after(10_000)))
        stub.ready = lambda: runner.now >= 50  # the server takes 50 s to answer
        results = by_name(server_check.standalone_checks(
            target(nodes["lab"], Healthcheck={"Test": ["CMD", "true"]}), runner, CheckOptions()))
    assert results["the image's health check reports healthy"].got.startswith("starting")
    assert HEALTH_WAIT <= runner.now < HEALTH_WAIT + 5  # not 50 s more


def test_a_server_that_lets_any_password_in_fails_the_refusal(nodes) -> None:
    with StubJupyter() as stub:
        stub.any_password = True
        results = by_name(server_check.standalone_checks(target(nodes["lab"]), FakeContainers({}, jupyter_container(stub)),
                                                         CheckOptions()))
    refused = results["login without that password is refused"]
    assert refused.status == "failed" and refused.got == "login answered 302, then /api/kernelspecs 200"
    assert results["login with the password set at start works"].status == "passed"


def test_no_health_check_no_health_result(nodes) -> None:
    with StubJupyter() as stub:
        results = server_check.standalone_checks(target(nodes["lab"]), FakeContainers({}, jupyter_container(stub)),
                                                 CheckOptions())
    assert "the image's health check reports healthy" not in by_name(results)


def test_while_up_runs_against_the_token_server(nodes) -> None:
    seen: list[str] = []
    with StubJupyter() as stub:
        server_check.standalone_checks(target(nodes["lab"]), FakeContainers({}, jupyter_container(stub)), CheckOptions(),
                                       while_up=lambda server: seen.append(server.token) or [])
    assert len(seen) == 1 and seen[0] in stub.tokens


# --- the single-user server against the stand-in Hub -------------------------------------------------------

def test_the_single_user_server_accepts_the_hub_token_and_stops_without_a_hub(nodes) -> None:
    with StubJupyter() as stub:
        make = jupyter_container(stub)

        def factory(spec: RunSpec) -> FakeContainer:
            if spec.role == "nohub":
                return FakeContainer(spec, states=exited(1), log_text="JUPYTERHUB_API_TOKEN env is required")
            return make(spec)

        runner = FakeContainers({}, factory)
        results = server_check.hub_checks(target(nodes["single"], Cmd=["start-singleuser.py"]), runner, CheckOptions())
    assert [(r.name, r.status) for r in results][:4] == [
        ("without a Hub the default command stops and says what is missing", "passed"),
        ("the default command starts the single-user server at /user/smoke/ (stand-in Hub)", "passed"),
        ("requests the Hub does not vouch for are refused", "passed"),
        ("requests with a token the Hub knows are accepted", "passed"),
    ]
    hub = runner.started[1]
    assert hub.spec.environment["JUPYTERHUB_SERVICE_PREFIX"] == "/user/smoke/" and HUB_STUB in hub.execs[0]


def test_a_single_user_server_that_runs_without_a_hub_fails_after_the_timeout(nodes) -> None:
    runner = FakeContainers({}, lambda spec: FakeContainer(spec, log_text="serving anyway"))
    result = server_check._refuses_without_hub(server_check._factory("single", "hub"), runner,
                                               target(nodes["single"], Cmd=["start-singleuser.py"]))
    assert result.status == "failed" and result.got.startswith("still running after 60 s") and runner.now >= 60


# --- start-time contract ------------------------------------------------------------------------------------

def _remap_container(write_file: bool, code: int = 0, said: str = "ids 4321:4322\nsudo 0\npid1 tini\n") -> Callable[[RunSpec], FakeContainer]:
    def make(spec: RunSpec) -> FakeContainer:
        (folder,) = spec.mounts
        if write_file:
            made = Path(folder) / "made-here"
            made.write_text("")
            os.chown(made, start_check.REMAP_UID, start_check.REMAP_GID)
        return FakeContainer(spec, states=exited(code), stdout_text=said, log_text="start.sh: " + said)
    return make


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another uid needs root")
def test_start_checks_pass_when_the_ids_are_remapped(nodes) -> None:
    runner = FakeContainers({}, _remap_container(write_file=True))
    results = start_check.start_checks(target(nodes["notebook"], User="1000", Env=["HOME=/home/jovyan"]), runner, CheckOptions())
    assert [r.status for r in results] == ["passed", "passed", "passed", "passed"]
    (remap,) = runner.started
    assert remap.spec.user == "root" and list(remap.spec.mounts.values()) == ["/home/jovyan/smoke-mount"]
    assert remap.spec.command[:2] == ["bash", "-c"]  # as users run it: the entry point starts start.sh
    assert remap.spec.environment == {"NB_UID": "4321", "NB_GID": "4322", "GRANT_SUDO": "yes"}


def test_start_checks_fail_for_root_a_missing_file_and_a_broken_sudo(nodes) -> None:
    runner = FakeContainers({}, _remap_container(write_file=False, said="ids 4321:4322\nsudo sudo: a password is required\npid1 sleep\n"))
    default, owned, sudo, init = start_check.start_checks(target(nodes["notebook"], User="root"), runner, CheckOptions())
    assert (default.status, default.got) == ("failed", "USER root")
    assert owned.status == "failed" and owned.got == "id 4321:4322 inside, no file on the host on the host"
    assert sudo.status == "failed" and sudo.got == "sudo -n id -u: sudo: a password is required"
    assert init.status == "failed" and init.got == "PID 1 is sleep"


def test_a_remap_container_that_fails_fails_both_checks_with_its_logs(nodes) -> None:
    runner = FakeContainers({}, _remap_container(write_file=False, code=1, said="start.sh: bad uid"))
    _, owned, sudo, init = start_check.start_checks(target(nodes["notebook"], User="1000"), runner, CheckOptions())
    assert owned.status == "failed" and "exited with status 1" in owned.got and "bad uid" in owned.got
    assert sudo.status == "failed" and sudo.got == f"not checked: {owned.got}"
    assert init.status == "failed" and init.got == f"not checked: {owned.got}"
