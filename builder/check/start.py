"""Start-time behaviour of images with the docker-stacks start scripts, from outside the container.

The image must name a non-root default user. Started as root with NB_UID,
NB_GID and GRANT_SUDO, start.sh must drop to the requested ids (so a file
written to a bind-mounted host folder belongs to them on the host) and open
sudo. The thorough matrix of start options lives in the integration tests;
these are the promises every such image keeps.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

from builder.check.result import CheckResult
from builder.adapters.docker import Engine
from builder.plan.plan import Node
from builder.check.server import SMOKE_LABEL, image_config, provider

REMAP_UID, REMAP_GID = 4321, 4322


def start_checks(engine: Engine, node: Node) -> list[CheckResult]:
    fragment = provider(node, "start-scripts") or "?"
    config = image_config(engine, node)
    default = CheckResult(node.name, "the image runs as a non-root user by default", fragment, "start",
                          expected="USER set to a name or uid other than root/0")
    user = (config.get("User") or "").split(":")[0]
    default.verdict(user not in ("", "0", "root"), f"USER {user or '(unset: root)'}")
    return [default, *_remap_checks(engine, node, fragment)]


def _remap_checks(engine: Engine, node: Node, fragment: str) -> list[CheckResult]:
    owned = CheckResult(node.name, "NB_UID/NB_GID remap: files on a bind-mounted host folder belong to the requested ids",
                        fragment, "start", expected=f"id {REMAP_UID}:{REMAP_GID} inside, file owned by {REMAP_UID}:{REMAP_GID} on the host")
    sudo = CheckResult(node.name, "GRANT_SUDO=yes gives the user passwordless sudo", fragment, "start",
                       expected="`sudo -n id -u` prints 0")
    env = dict(item.split("=", 1) for item in image_config(engine, node).get("Env") or [] if "=" in item)
    home = env.get("HOME", "/home/jovyan")
    folder = Path(tempfile.mkdtemp(prefix="stacks-smoke-mount-"))
    os.chmod(folder, 0o777)  # the container's root must be able to write here whatever the host's user is
    try:
        with owned.timed():
            script = f'touch "{home}/smoke-mount/made-here" && echo "ids $(id -u):$(id -g)" && echo "sudo $(sudo -n id -u 2>&1)"'
            output = engine.client.containers.run(
                node.local_ref, ["start.sh", "bash", "-c", script], user="root", remove=True,
                environment={"NB_UID": str(REMAP_UID), "NB_GID": str(REMAP_GID), "GRANT_SUDO": "yes"},
                volumes={str(folder): {"bind": f"{home}/smoke-mount", "mode": "rw"}},
                labels={SMOKE_LABEL: node.name}, name=f"stacks-smoke-{node.name}-remap-{secrets.token_hex(3)}",
            ).decode(errors="replace")
            made = folder / "made-here"
            on_host = f"{made.stat().st_uid}:{made.stat().st_gid}" if made.exists() else "no file on the host"
            inside = next((line[4:] for line in output.splitlines() if line.startswith("ids ")), "?")
            owned.verdict(inside == on_host == f"{REMAP_UID}:{REMAP_GID}", f"id {inside} inside, {on_host} on the host")
            sudo_said = next((line[5:] for line in output.splitlines() if line.startswith("sudo ")), output[-300:])
            sudo.verdict(sudo_said.strip() == "0", f"sudo -n id -u: {sudo_said.strip()}")
        sudo.seconds = owned.seconds  # one container answers both
        if owned.status == "failed" and sudo.got == "":
            sudo.got = f"not checked: {owned.got}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return [owned, sudo]

