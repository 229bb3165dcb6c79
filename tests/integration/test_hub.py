"""A multi-user JupyterHub from the matrix, end to end on the real engine.

A temporary stacks.yaml reuses the repository's fragments with the same base
and chain as the project's stacks.yaml (so its images share the cache) and adds
a hub image and a `hub:` section. `stacks hub-config` writes the configuration
and compose file; the Hub is started exactly as compose.yaml describes it
(socket, configuration, state volume, network, port on 127.0.0.1), and a user
goes through what people do in a browser: log in, pick an image from the
form, wait for the server, run a cell through the Hub's URL, save a file,
stop the server. The GPU case runs its own Hub: there is no GPU here, so it
checks that the container DockerSpawner created carries the device request
(HostConfig.DeviceRequests) and that the engine, not the configuration,
refused to start it.

Every container, network and volume a test creates carries a per-run name
and is removed afterwards.
"""
from __future__ import annotations

import html
import json
import re
import secrets
import socket
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests
import websocket
import yaml

from builder.outputs.hub_config import HUB_LABEL
from builder.plan.plan import load_plan

from .conftest import ROOT, stacks

pytestmark = pytest.mark.integration
RUN = f"hubtest-{secrets.token_hex(3)}"
PASSWORD = f"pw-{secrets.token_urlsafe(12)}"
BOOKWORM, TRIXIE = "singleuser-bookworm", "singleuser-trixie"
MOUNT = "/home/jovyan/work"

#: foundation -> python -> lab -> singleuser and python -> hub, as in the project's stacks.yaml (same hashes)
STACK = textwrap.dedent(f"""\
    version: 1
    settings:
      fragments: [{ROOT / 'fragments'}]
    axes:
      os:
        bookworm: {{python: "3.11", node: "18", jdk: "17"}}
        trixie: {{python: "3.13", node: "20", jdk: "21"}}
    bases:
      debian:
        bootstrap: {{suite: "{{{{ os }}}}", variant: minbase}}
        provides: ["os=debian", apt]
        platforms: [linux/amd64, linux/arm64]
    images:
      foundation:
        base: debian
        axes: [os]
        fragments: [debian-os, nb-user, start-scripts]
      python:
        parent: foundation
        fragments:
          - use: python-venv
            params: {{version: "{{{{ os.python }}}}"}}
      lab:
        parent: python
        fragments: [jupyterlab, ipykernel]
      singleuser:
        parent: lab
        fragments: [jupyterhub-singleuser]
      hub:
        parent: python
        exclude: [{{os: trixie}}]
        fragments:
          - use: node
            params: {{version: "{{{{ os.node }}}}"}}
          - jupyterhub-hub
    """)


def hub_section(name: str, port: int, **extra: object) -> str:
    section = {
        "image": "hub", "offer": ["singleuser"], "default": BOOKWORM,
        "name": name, "network": name, "prefix": name, "volume": f"{name}-user-{{username}}",
        "address": "127.0.0.1", "port": port, "admins": ["boss"],
        "authenticator": {"kind": "dummy", "allow_all": True}, **extra,
    }
    return yaml.safe_dump({"hub": section}, sort_keys=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory, client) -> Path:
    """The temporary stack with its single-user images and the hub image built."""
    folder = tmp_path_factory.mktemp("hub-stack")
    (folder / "stacks.yaml").write_text(STACK)
    result = stacks("build", "-f", str(folder / "stacks.yaml"), "singleuser", "hub", "--out", str(folder / "build"),
                    cwd=folder, timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder


def configure(built: Path, name: str, **extra: object) -> tuple[Path, int]:
    """A stacks file with a hub: section, and `stacks hub-config` run on it; returns (output folder, port)."""
    port = free_port()
    spec = built / f"{name}.yaml"
    spec.write_text(STACK + hub_section(name, port, **extra))
    out = built / name
    result = stacks("hub-config", "-f", str(spec), "--out", str(out), cwd=built, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, port


# --- starting the Hub the way compose.yaml says ----------------------------------------------


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?message}; a missing required value fails the test."""
    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if env.get(name):
            return env[name]
        assert op != ":?", f"compose.yaml requires {name}: {arg}"
        return arg

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


@dataclass
class Hub:
    name: str
    url: str
    container: object
    compose: dict
    config: str

    def logs(self) -> str:
        return self.container.logs().decode(errors="replace")[-6000:]  # type: ignore[attr-defined]


def compose_up(client: docker.DockerClient, folder: Path, env: dict[str, str]) -> object:
    """`docker compose up -d` for the one service of compose.yaml, through the SDK (no compose CLI needed)."""
    document = yaml.safe_load((folder / "compose.yaml").read_text())
    assert list(document["services"]) == ["hub"]
    service = document["services"]["hub"]
    for network in document["networks"].values():
        client.networks.create(network["name"], labels={"io.stacks.test": RUN})
    for volume in document["volumes"].values():
        client.volumes.create(volume["name"], labels={"io.stacks.test": RUN})
    volumes = []
    for item in service["volumes"]:
        source, rest = item.split(":", 1)
        if source.startswith("./"):
            source = str((folder / source).resolve())
        elif not source.startswith("/"):
            source = document["volumes"][source]["name"]
        volumes.append(f"{source}:{rest}")
    address, host_port, container_port = service["ports"][0].rsplit(":", 2)
    return client.containers.run(
        service["image"], name=service["container_name"], detach=True,
        group_add=[interpolate(g, env) for g in service["group_add"]],
        volumes=volumes, network=document["networks"][service["networks"][0]]["name"],
        ports={f"{container_port}/tcp": (address, int(host_port))},
        environment={k: interpolate(v, env) for k, v in service["environment"].items()},
        labels={"io.stacks.test": RUN},
    )


def wait_healthy(hub: Hub, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hub.container.reload()  # type: ignore[attr-defined]
        assert hub.container.status == "running", "the Hub container stopped:\n" + hub.logs()  # type: ignore[attr-defined]
        try:
            if requests.get(hub.url + "/hub/health", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(1)
    pytest.fail(f"the Hub did not answer on {hub.url} within {timeout:.0f} s:\n{hub.logs()}")


def remove_everything(client: docker.DockerClient, name: str) -> None:
    """The Hub, its users' containers, its network and every volume named after it."""
    for container in client.containers.list(all=True, filters={"label": f"{HUB_LABEL}={name}"}):
        container.remove(force=True)
    for container in client.containers.list(all=True, filters={"name": f"^/{name}$"}):
        container.remove(force=True)
    for network in client.networks.list(names=[name]):
        network.remove()
    for volume in client.volumes.list(filters={"name": name}):
        if volume.name.startswith(name):
            volume.remove(force=True)


@pytest.fixture(scope="module")
def hub(built: Path, client) -> Hub:
    name = f"{RUN}-main"
    out, port = configure(built, name)
    container = compose_up(client, out, {"JUPYTERHUB_DUMMY_PASSWORD": PASSWORD})
    handle = Hub(name, f"http://127.0.0.1:{port}", container, yaml.safe_load((out / "compose.yaml").read_text()),
                 (out / "jupyterhub_config.py").read_text())
    try:
        wait_healthy(handle)
        yield handle
    finally:
        remove_everything(client, name)


# --- a user in a browser ------------------------------------------------------------------------


class Browser:
    """What a user's browser does with the Hub: cookies, the _xsrf form field and header."""

    def __init__(self, hub: Hub, user: str):
        self.hub, self.user, self.session = hub, user, requests.Session()

    def login(self, password: str) -> requests.Response:
        page = self.session.get(self.hub.url + "/hub/login", timeout=30)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        assert xsrf, page.text[:2000]
        return self.session.post(self.hub.url + "/hub/login?next=", timeout=30, allow_redirects=False,
                                 data={"username": self.user, "password": password, "_xsrf": xsrf.group(1)})

    @property
    def xsrf(self) -> str:
        return self.session.cookies.get("_xsrf", path="/hub/") or ""

    def options(self) -> list[str]:
        """The images the spawn form offers, in its order."""
        page = self.session.get(f"{self.hub.url}/hub/spawn/{self.user}", timeout=30)
        assert page.status_code == 200, page.text[:2000]
        return re.findall(r'<option value="([^"]+)"', page.text)

    def spawn(self, image: str) -> requests.Response:
        return self.session.post(f"{self.hub.url}/hub/spawn/{self.user}", data={"image": image, "_xsrf": self.xsrf},
                                 timeout=60, allow_redirects=False)

    def api(self, method: str, path: str, **kwargs: object) -> requests.Response:
        return self.session.request(method, f"{self.hub.url}/hub/api{path}", headers={"X-XSRFToken": self.xsrf},
                                    timeout=60, **kwargs)  # type: ignore[arg-type]

    def server(self) -> dict:
        reply = self.api("GET", f"/users/{self.user}")
        assert reply.status_code == 200, reply.text
        return reply.json().get("servers", {}).get("", {})

    def wait_ready(self, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server()
            if server.get("ready"):
                return server
            if not server:
                pytest.fail(f"{self.user}'s server failed to start:\n{self.hub.logs()}")
            time.sleep(1)
        pytest.fail(f"{self.user}'s server was not ready after {timeout:.0f} s:\n{self.hub.logs()}")

    def token(self) -> str:
        reply = self.api("POST", f"/users/{self.user}/tokens", json={"note": "hub test", "expires_in": 3600})
        assert reply.status_code == 201, reply.text
        return reply.json()["token"]


def execute(hub: Hub, user: str, token: str, code: str, notebook: bool = True) -> str:
    """Run `code` in a notebook kernel of the user's server, through the Hub's URL (REST + websocket);
    `notebook=False`: in a kernel started without a path (`POST /api/kernels`), as scripts do."""
    headers = {"Authorization": f"token {token}"}
    base = f"{hub.url}/user/{user}/api"
    if notebook:
        reply = requests.post(base + "/sessions", headers=headers, timeout=60,
                              json={"path": "hub-check.ipynb", "type": "notebook", "name": "", "kernel": {"name": "python3"}})
        assert reply.status_code == 201, reply.text
        kernel = reply.json()["kernel"]["id"]
    else:
        reply = requests.post(base + "/kernels", headers=headers, timeout=60, json={"name": "python3"})
        assert reply.status_code == 201, reply.text
        kernel = reply.json()["id"]
    ws = websocket.create_connection(f"{hub.url.replace('http', 'ws', 1)}/user/{user}/api/kernels/{kernel}/channels",
                                     header=[f"Authorization: token {token}"], timeout=120)
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": user, "session": uuid.uuid4().hex,
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    output = []
    try:
        while True:
            message = json.loads(ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                output.append(content["text"])
            elif kind == "error":
                output.append(f"{content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(output)
    finally:
        ws.close()


def volume_listing(client: docker.DockerClient, image: str, volume: str) -> str:
    """`stat` of every file in a volume, read by a throwaway container."""
    return client.containers.run(image, ["sh", "-c", "cd /v && stat -c '%n %u %s' * && cat from-kernel.txt && echo"], remove=True,
                                 entrypoint=[], volumes={volume: {"bind": "/v", "mode": "ro"}},
                                 labels={"io.stacks.test": RUN}).decode()


# --- the tests ------------------------------------------------------------------------------------


def test_config_offers_every_single_user_variant_by_name_and_exact_reference(hub: Hub, built: Path) -> None:
    plan = load_plan(built / f"{hub.name}.yaml")
    images = {n.name: n.local_ref for n in plan.images() if n.image == "singleuser"}
    assert set(images) == {BOOKWORM, TRIXIE}
    for name, ref in images.items():
        assert re.search(rf"^    '{name}': '{re.escape(ref)}',$", hub.config, re.M), hub.config
    assert hub.compose["services"]["hub"]["image"] == plan["hub-bookworm"].local_ref
    assert PASSWORD not in hub.config and PASSWORD not in json.dumps(hub.compose)


def test_wrong_password_is_refused(hub: Hub) -> None:
    reply = Browser(hub, "mallory").login("not-the-password")
    assert reply.status_code == 403, (reply.status_code, reply.headers.get("location"))
    assert "Invalid username or password" in reply.text


def test_user_logs_in_picks_an_image_runs_a_cell_keeps_files_in_own_volume(hub: Hub, client, built: Path) -> None:
    user = "alice"
    browser = Browser(hub, user)
    assert browser.login(PASSWORD).status_code == 302
    assert browser.options() == [BOOKWORM, TRIXIE]

    reply = browser.spawn(TRIXIE)  # not the default: the choice must be what runs
    assert reply.status_code == 302, reply.text[:2000]
    server = browser.wait_ready()
    assert server["url"] == f"/user/{user}/"
    assert server["user_options"] == {"image": TRIXIE}

    container = client.containers.get(f"{hub.name}-{user}")
    trixie_ref = load_plan(built / f"{hub.name}.yaml")[TRIXIE].local_ref
    assert container.attrs["Config"]["Image"] == trixie_ref
    assert container.labels[HUB_LABEL] == hub.name
    assert hub.name in container.attrs["NetworkSettings"]["Networks"]
    volume = f"{hub.name}-user-{user}"
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    assert mounts[MOUNT]["Type"] == "volume" and mounts[MOUNT]["Name"] == volume

    token = browser.token()
    printed = execute(hub, user, token, "import os\nopen('from-kernel.txt', 'w').write('written by a kernel')\n"
                                        "print(6 * 7, os.getcwd(), os.getuid())")
    assert printed.strip() == f"42 {MOUNT} 1000", printed
    # A kernel started without a path must also run in the volume, or what it writes is lost on restart.
    printed = execute(hub, user, token, "import os\nopen('from-rest-kernel.txt', 'w').write('x')\nprint(os.getcwd())", notebook=False)
    assert printed.strip() == MOUNT, printed
    saved = requests.put(f"{hub.url}/user/{user}/api/contents/notes.txt", headers={"Authorization": f"token {token}"},
                         json={"type": "file", "format": "text", "content": "saved from the browser"}, timeout=60)
    assert saved.status_code == 201, saved.text
    listing = volume_listing(client, trixie_ref, volume)
    assert re.search(r"^from-kernel\.txt 1000 \d+$", listing, re.M), listing
    assert re.search(r"^notes\.txt 1000 \d+$", listing, re.M), listing
    assert re.search(r"^from-rest-kernel\.txt 1000 \d+$", listing, re.M), listing
    assert listing.rstrip().endswith("written by a kernel")

    stopped = browser.api("DELETE", f"/users/{user}/server")
    assert stopped.status_code in (202, 204), stopped.text
    deadline = time.monotonic() + 120
    while browser.server() and time.monotonic() < deadline:
        time.sleep(1)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(f"{hub.name}-{user}")
    assert client.volumes.get(volume).name == volume
    assert "written by a kernel" in volume_listing(client, trixie_ref, volume)


def test_gpu_device_request_reaches_the_container_for_the_chosen_images(built: Path, client) -> None:
    """GPUs only for the trixie image; the container is kept so the engine's record of it can be read."""
    name = f"{RUN}-gpu"
    out, port = configure(built, name, keep_containers=True,
                          gpu={"count": "all", "capabilities": ["gpu"], "images": [TRIXIE]})
    container = compose_up(client, out, {"JUPYTERHUB_DUMMY_PASSWORD": PASSWORD})
    hub = Hub(name, f"http://127.0.0.1:{port}", container, {}, (out / "jupyterhub_config.py").read_text())
    try:
        wait_healthy(hub)
        seen = {}
        for user, image in (("gpu", TRIXIE), ("cpu", BOOKWORM)):
            browser = Browser(hub, user)
            assert browser.login(PASSWORD).status_code == 302
            reply = browser.spawn(image)
            if user == "cpu":
                assert reply.status_code == 302, reply.text[:2000]
                browser.wait_ready()
            deadline = time.monotonic() + 240
            while browser.server().get("pending") and time.monotonic() < deadline:
                time.sleep(1)
            spawned = client.containers.get(f"{name}-{user}")
            seen[user] = (spawned.attrs["HostConfig"].get("DeviceRequests"), spawned.status, browser.server(), reply)
        requested, status, server, reply = seen["gpu"]
        assert [{k: r[k] for k in ("Driver", "Count", "Capabilities")} for r in requested or []] == \
            [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}], requested
        assert not (requested[0].get("DeviceIDs") or requested[0].get("Options"))
        if status != "running":  # no GPU runtime on this engine: it refused to start the container, and the user is told
            assert status == "created" and not server.get("ready"), (status, server)
            # a quick refusal comes back on the spawn request itself; a slower one after the redirect to the pending page
            assert reply.status_code == 302 or (reply.status_code == 500 and "error starting server gpu" in html.unescape(reply.text)), \
                (reply.status_code, reply.text[-3000:])
            logs = container.logs().decode(errors="replace")
            assert 'could not select device driver "" with capabilities: [[gpu]]' in logs, logs[-6000:]
        cpu_requested, cpu_status, cpu_server, _ = seen["cpu"]
        assert not cpu_requested and cpu_status == "running" and cpu_server.get("ready"), seen["cpu"][:3]
    finally:
        remove_everything(client, name)
