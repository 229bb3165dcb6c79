"""A stack built, tested and answered as a no-op on an engine reachable only through a named docker context.

A second dockerd (its own data, exec root, containerd namespace, socket and
bridge; no iptables, so it leaves the host's firewall to the first) is
made the current context of a throw-away docker config. `stacks` runs with
no DOCKER_HOST: the Docker SDK, the BuildKit CLI, the testinfra checks and
the no-op's socket reader must all reach the second engine, and the default
engine must not see any of it.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from .conftest import write_fragment

pytestmark = pytest.mark.integration
CLI = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else (shutil.which("docker") or "docker")


@pytest.fixture(scope="module")
def second_engine() -> Iterator[str]:
    """A second dockerd on its own socket (unix://...); skipped when this machine cannot run one."""
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        pytest.skip("a second engine needs dockerd and root")
    bridge = f"stk{uuid.uuid4().hex[:8]}"  # BuildKit's RUN steps need a bridge; the default one is the first engine's
    subnet = _free_subnet()
    made = subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"a second engine needs its own bridge: ip link add failed: {made.stderr.strip()}")
    subprocess.run(["ip", "addr", "add", f"{subnet}.1/24", "dev", bridge], check=True)
    subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
    folder = Path(tempfile.mkdtemp(prefix="stacks-eng2-"))  # short: a socket path has at most 107 characters
    host = f"unix://{folder}/docker.sock"
    log = (folder / "dockerd.log").open("w")
    name = folder.name.replace("-", "")
    proc = subprocess.Popen(
        [dockerd, "--data-root", str(folder / "data"), "--exec-root", str(folder / "exec"),
         "--pidfile", str(folder / "docker.pid"), "-H", host, f"--bridge={bridge}", "--iptables=false", "--ip-masq=false",
         "--ip-forward=false", "--containerd-namespace", name, "--containerd-plugins-namespace", f"{name}p"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = docker.DockerClient(base_url=host, timeout=30)  # asks the daemon's version at once
                client.ping()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (folder / "dockerd.log").read_text()[-2000:]
                    pytest.skip(f"a second dockerd could not start here (exit {proc.poll()}): {tail}")
                time.sleep(0.3)
        client.close()
        yield host
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        subprocess.run(["umount", "-R", str(folder / "exec")], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)


def _free_subnet() -> str:
    """A 10.213.x.0/24 no route of this host uses."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=False).stdout
    for third in random.sample(range(256), 256):
        if f"10.213.{third}." not in routes:
            return f"10.213.{third}"
    pytest.skip("no free 10.213.x.0/24 subnet for the second engine's bridge")


@pytest.fixture
def stack(tmp_path: Path) -> tuple[Path, str]:
    """root (a bootstrapped bookworm and a marker) -> side (a RUN step and testinfra checks); a fresh prefix."""
    prefix = f"stacksctx{uuid.uuid4().hex[:8]}"
    (tmp_path / "stacks.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        settings:
          local_prefix: {prefix}
        bases:
          debian:
            bootstrap: {{suite: bookworm}}
            provides: ["os=debian", apt]
        images:
          root:
            base: debian
            fragments: [marker]
          side:
            parent: root
            fragments: [note]
        """))
    write_fragment(tmp_path, "marker", "COPY {{ here }}/marker.txt /etc/stacks-marker\n", "",
                   {"marker.txt": f"root {uuid.uuid4()}\n"})
    write_fragment(tmp_path, "note", "RUN echo hello > /etc/stacks-note\nENV STACKS_NOTE=written\n", """\
        checks:
          - name: the note is written
            file: {path: /etc/stacks-note, type: file, contains: "^hello$"}
          - name: the variable is set
            env: {STACKS_NOTE: "^written$"}
          - name: root owns the note
            run: "stat -c %U /etc/stacks-note"
            expect: "^root$"
        """)
    return tmp_path, prefix


def run_stacks(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "builder", *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=900)


def test_build_test_and_no_op_reach_only_the_current_contexts_engine(second_engine: str, stack: tuple[Path, str],
                                                                      client: docker.DockerClient, tmp_path: Path) -> None:
    folder, prefix = stack
    config = tmp_path / "docker-config"
    for args in (["context", "create", "second", "--docker", f"host={second_engine}"], ["context", "use", "second"]):
        subprocess.run([CLI, "--config", str(config), *args], check=True, capture_output=True)
    assert json.loads((config / "config.json").read_text())["currentContext"] == "second"
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY",
                                                              "DOCKER_CERT_PATH")}
    env.update(DOCKER_CONFIG=str(config), XDG_CACHE_HOME=str(tmp_path / "cache"), STACKS_DOCKER_CLI=CLI)

    built = run_stacks("build", "side", cwd=folder, env=env)
    assert built.returncode == 0, built.stderr[-4000:]
    assert "building with BuildKit" in built.stderr, built.stderr[-2000:]  # the CLI path, not the SDK's classic builder
    assert f"at {second_engine} (from docker context 'second' ({config / 'config.json'}))" in built.stderr
    report = json.loads((folder / "build" / "report.json").read_text())
    refs = {image["name"]: image["ref"] for image in report["images"]}
    hashes = {image["hash"] for image in report["images"] if image["name"] in ("root", "side")}  # the base is shared

    second = docker.DockerClient(base_url=second_engine, timeout=60)
    try:
        assert second.images.get(refs["side"]).labels["io.stacks.hash"] in hashes
        assert second.images.get(refs["root"]) is not None

        tested = run_stacks("test", "side", cwd=folder, env=env)
        checks = json.loads((folder / "build" / "test-report.json").read_text())["checks"]
        by_name = {c["name"]: c["status"] for c in checks if c["image"] == "side"}
        assert tested.returncode == 0, tested.stderr[-4000:] + json.dumps(checks, indent=1)[-4000:]
        assert {by_name[n] for n in ("the note is written", "the variable is set", "root owns the note")} == {"passed"}

        again = run_stacks("build", "side", cwd=folder, env=env)
        assert again.returncode == 0, again.stderr[-4000:]
        assert "nothing changed since the build of" in again.stderr, again.stderr[-2000:]  # the receipt, from the socket

        leaked = [i.tags for i in client.images.list(all=True)
                  if any(t.startswith(prefix) for t in i.tags) or i.labels.get("io.stacks.hash") in hashes]
        assert leaked == [], "the default engine saw the build"
        assert not client.containers.list(all=True, filters={"name": f"stacks-smoke-{prefix}"})
    finally:
        second.close()
