"""Start-time behaviour of images with the docker-stacks start scripts, from outside the container.

The image must name a non-root default user. Started as root with NB_UID,
NB_GID and GRANT_SUDO, start.sh must drop to the requested ids (so a file
written to a bind-mounted host folder belongs to them on the host) and open
sudo. The thorough matrix of start options lives in the integration tests;
these are the promises every such image keeps.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from builder.adapters.containers import ContainerRunner, RunSpec, wait_for_exit
from builder.check.options import CheckOptions
from builder.check.result import CheckResult
from builder.check.target import Target, provider

REMAP_UID, REMAP_GID = 4321, 4322
REMAP_TIMEOUT = 120.0  # seconds for start.sh to remap the ids and run the script


def start_checks(target: Target, runner: ContainerRunner, options: CheckOptions) -> list[CheckResult]:
    node = target.node
    fragment = provider(node, "start-scripts") or "?"
    default = CheckResult(node.name, "the image runs as a non-root user by default", fragment, "start",
                          expected="USER set to a name or uid other than root/0")
    user = (target.facts.config.get("User") or "").split(":")[0]
    default.verdict(user not in ("", "0", "root"), f"USER {user or '(unset: root)'}")
    return [default, *_remap_checks(target, runner, fragment)]


def _remap_checks(target: Target, runner: ContainerRunner, fragment: str) -> list[CheckResult]:
    node = target.node
    owned = CheckResult(node.name, "NB_UID/NB_GID remap: files on a bind-mounted host folder belong to the requested ids",
                        fragment, "start", expected=f"id {REMAP_UID}:{REMAP_GID} inside, file owned by {REMAP_UID}:{REMAP_GID} on the host")
    sudo = CheckResult(node.name, "GRANT_SUDO=yes gives the user passwordless sudo", fragment, "start",
                       expected="`sudo -n id -u` prints 0")
    init = CheckResult(node.name, "tini is PID 1 under the image's entry point", fragment, "start",
                       expected="/proc/1/comm is tini in a container started with a command of its own")
    home = target.facts.environment.get("HOME", "/home/jovyan")
    folder = Path(tempfile.mkdtemp(prefix="stacks-smoke-mount-"))
    os.chmod(folder, 0o777)  # the container's root must be able to write here whatever the host's user is
    try:
        with owned.timed():
            script = (f'touch "{home}/smoke-mount/made-here" && echo "ids $(id -u):$(id -g)" && echo "sudo $(sudo -n id -u 2>&1)"'
                      ' && echo "pid1 $(cat /proc/1/comm)"')
            output = _run_to_end(runner, target, RunSpec(  # the way users run it: the entry point does the rest
                node.name, "remap", command=["bash", "-c", script], user="root",
                environment={"NB_UID": str(REMAP_UID), "NB_GID": str(REMAP_GID), "GRANT_SUDO": "yes"},
                mounts={str(folder): f"{home}/smoke-mount"},
            ))
            made = folder / "made-here"
            on_host = f"{made.stat().st_uid}:{made.stat().st_gid}" if made.exists() else "no file on the host"
            inside = next((line[4:] for line in output.splitlines() if line.startswith("ids ")), "?")
            owned.verdict(inside == on_host == f"{REMAP_UID}:{REMAP_GID}", f"id {inside} inside, {on_host} on the host")
            sudo_said = next((line[5:] for line in output.splitlines() if line.startswith("sudo ")), output[-300:])
            sudo.verdict(sudo_said.strip() == "0", f"sudo -n id -u: {sudo_said.strip()}")
            pid1 = next((line[5:] for line in output.splitlines() if line.startswith("pid1 ")), "?").strip()
            init.verdict(pid1 == "tini", f"PID 1 is {pid1}")
        sudo.seconds = init.seconds = owned.seconds  # one container answers all three
        for other in (sudo, init):
            if owned.status == "failed" and other.got == "":
                other.got = f"not checked: {owned.got}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return [owned, sudo, init]


def _run_to_end(runner: ContainerRunner, target: Target, spec: RunSpec) -> str:
    """What the container printed on stdout; raises when it did not exit with status 0 in time."""
    with runner.run(target.node.local_ref, spec) as container:
        code = wait_for_exit(runner, container, REMAP_TIMEOUT)
        if code != 0:
            what = f"still running after {REMAP_TIMEOUT:.0f} s" if code is None else f"exited with status {code}"
            raise RuntimeError(f"the {spec.role} container {what}; last log lines:\n{container.logs()}")
        return container.logs(tail=None, stderr=False)
