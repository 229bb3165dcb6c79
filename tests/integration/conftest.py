"""Integration fixtures: a real Docker engine and a small real stack.

These tests never mock Docker. If no engine answers they fail, loudly:
`make test` starts one (scripts/ensure-engine.sh) on a Debian machine.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import docker
import pytest

PREFIX = "stackstest"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def reference_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reference")


@pytest.fixture(scope="session")
def reference(reference_dir: Path, client) -> dict:
    """The project's own stacks.yaml, every verified image built once per test session.

    Returns {variant name: build-report row}; a row's "ref" is the local image reference.
    """
    out = reference_dir
    result = stacks("build", "-f", str(ROOT / "stacks.yaml"), "--only-verified", "--out", str(out), cwd=ROOT, timeout=3600)
    report = json.loads((out / "report.json").read_text())
    assert result.returncode == 0, result.stderr + (out / "report.md").read_text()
    return {image["name"]: image for image in report["images"]}


@pytest.fixture(scope="session")
def client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"integration tests need a running Docker engine (run `make test`): {exc}")
    return client


class RegistryServer:
    """Debian's docker-registry on 127.0.0.1 (optionally with htpasswd auth, or any `auth:` section; deletes
    through the API allowed unless `delete` is False), stoppable by a test."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None, auth: str = "", delete: bool = True):
        exe = shutil.which("docker-registry")
        if exe is None:
            pytest.fail("integration tests need Debian's docker-registry (installed by scripts/ensure-engine.sh)")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.data = folder, folder / "data"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        if users:
            htpasswd = folder / "htpasswd"
            htpasswd.write_text("".join(_htpasswd_line(user, password) for user, password in users.items()))
            auth = f"auth:\n  htpasswd: {{realm: stacks-test, path: {htpasswd}}}\n"
        (folder / "config.yml").write_text(textwrap.dedent(f"""\
            version: 0.1
            log: {{level: warn}}
            storage:
              filesystem: {{rootdirectory: {self.data}}}
              delete: {{enabled: {str(delete).lower()}}}
            http:
              addr: {self.host}
            """) + auth)
        self.proc = subprocess.Popen([exe, "serve", str(folder / "config.yml")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    pytest.fail("docker-registry did not start")
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def _htpasswd_line(user: str, password: str) -> str:
    """A bcrypt entry (the only kind docker-registry accepts), from apache2-utils' htpasswd."""
    exe = shutil.which("htpasswd")
    if exe is None:
        pytest.fail("integration tests need htpasswd (apache2-utils, installed by scripts/ensure-engine.sh)")
    out = subprocess.run([exe, "-nbB", user, password], capture_output=True, text=True, check=True).stdout
    return out.strip() + "\n"


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> str:
    """A real registry (Debian's docker-registry) on 127.0.0.1, for pull and push tests."""
    server = RegistryServer(tmp_path_factory.mktemp("registry"))
    yield server.host
    server.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory) -> RegistryServer:
    """A real registry on 127.0.0.1 that requires a login (htpasswd): user `stacks`, password in `.users`."""
    users = {"stacks": f"pw-{uuid.uuid4().hex[:12]}"}
    server = RegistryServer(tmp_path_factory.mktemp("auth-registry"), users)
    server.users = users  # type: ignore[attr-defined]
    yield server
    server.stop()


def write_fragment(root: Path, name: str, body: str, meta: str = "", files: dict[str, str] | None = None) -> None:
    folder = root / "fragments" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fragment.yaml").write_text(f"name: {name}\ndescription: test fragment {name}.\n" + textwrap.dedent(meta))
    (folder / "Dockerfile.j2").write_text(textwrap.dedent(body))
    for path, text in (files or {}).items():
        (folder / path).write_text(text)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A stack on a bootstrapped bookworm: root -> (pyapp, side, broken -> after-broken)."""
    (tmp_path / "stacks.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        settings:
          local_prefix: {PREFIX}
        bases:
          debian:
            bootstrap: {{suite: bookworm}}
            provides: ["os=debian", apt]
        images:
          root:
            base: debian
            fragments: [marker]
          pyapp:
            parent: root
            fragments: [pip-tool]
          side:
            parent: root
            fragments:
              - use: note
                params: {{text: hello}}
          broken:
            parent: root
            fragments: [fails]
          after-broken:
            parent: broken
            fragments: [marker2]
        """))
    # A fresh nonce per test: images are content addressed, so without it a test would find
    # the images an earlier run left behind and prove nothing.
    write_fragment(tmp_path, "marker", "COPY {{ here }}/marker.txt /etc/stacks-marker\n",
                   "provides: [marker]\n", {"marker.txt": f"root {uuid.uuid4()}\n"})
    write_fragment(tmp_path, "marker2", "RUN echo child > /etc/stacks-child\n")
    write_fragment(tmp_path, "pip-tool", """\
        RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null \\
            && python3 -m venv /opt/tool && /opt/tool/bin/pip install --no-cache-dir -q six==1.16.0 \\
            && rm -rf /var/lib/apt/lists/*
        """, "requires: [marker]\n")
    write_fragment(tmp_path, "note", "RUN echo {{ text }} > /etc/stacks-note\n",
                   "params:\n  text: {type: string}\n")
    write_fragment(tmp_path, "fails", "RUN echo about to fail && exit 3\n")
    return tmp_path


def stacks(*args: str, cwd: Path, env: dict | None = None, timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "builder", *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )


def report(folder: Path) -> dict:
    return json.loads((folder / "build" / "report.json").read_text())


def statuses(folder: Path) -> dict[str, str]:
    return {image["name"]: image["status"] for image in report(folder)["images"]}
