"""The build receipt: what makes a no-op build provably a no-op, and the engine socket it asks."""
from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest

from builder.adapters.engine_address import EngineAddress
from builder.adapters.engine_socket import ask, images_of
from builder.app import noop
from builder.cache.receipt import Receipt, ReceiptNode, ReceiptStore, inputs_digest, invocation_key, still_true

H = "ab" * 32


def tree(root: Path) -> Path:
    (root / "frag" / "files").mkdir(parents=True)
    (root / "stacks.yaml").write_text("version: 1\n")
    (root / "frag" / "Dockerfile.j2").write_text("RUN true\n")
    (root / "frag" / "files" / "a.txt").write_text("a\n")
    return root


def digest(root: Path) -> str:
    return inputs_digest([root / "stacks.yaml", root / "frag"])


@pytest.mark.parametrize("change", [
    lambda r: (r / "frag" / "Dockerfile.j2").write_text("RUN false\n"),
    lambda r: (r / "frag" / "files" / "b.txt").write_text("new\n"),
    lambda r: (r / "frag" / "files" / "a.txt").rename(r / "frag" / "files" / "c.txt"),
    lambda r: (r / "frag" / "files" / "a.txt").unlink(),
    lambda r: (r / "stacks.yaml").write_text("version: 1 \n"),
    lambda r: (r / "stacks.yaml").unlink(),
    lambda r: (r / "frag" / "link").symlink_to("files"),
])
def test_any_change_under_the_inputs_changes_the_digest(tmp_path: Path, change) -> None:
    root = tree(tmp_path)
    before = digest(root)
    change(root)
    assert digest(root) != before


def test_bytecode_and_tool_caches_are_not_inputs(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = digest(root)
    (root / "frag" / "__pycache__").mkdir()
    (root / "frag" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (root / "frag" / "y.pyc").write_bytes(b"\0")
    os.utime(root / "frag" / "Dockerfile.j2", (1, 1))  # a touch is no change
    assert digest(root) == before


def test_a_link_counts_by_its_target_not_what_it_points_at(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "link").symlink_to("one")
    before = inputs_digest([tmp_path])
    (tmp_path / "link").unlink()
    (tmp_path / "link").symlink_to("two")
    assert inputs_digest([tmp_path]) != before


def test_the_invocation_is_the_command_line_the_folder_and_the_relevant_environment(tmp_path: Path, monkeypatch) -> None:
    env = {"STACKS_CA_CERTS": "/a.pem", "DOCKER_HOST": "unix:///x", "TERM": "xterm"}
    key = invocation_key({"argv": ["build"]}, env)
    assert invocation_key({"argv": ["build"]}, {**env, "TERM": "dumb", "COLUMNS": "80"}) == key
    assert invocation_key({"argv": ["build"]}, {**env, "STACKS_CA_CERTS": "/b.pem"}) != key
    assert invocation_key({"argv": ["build"]}, {**env, "STACKS_ONLY_VERIFIED": "1"}) != key
    assert invocation_key({"argv": ["build"]}, {**env, "DOCKER_HOST": "unix:///y"}) != key
    assert invocation_key({"argv": ["build", "lab"]}, env) != key
    monkeypatch.chdir(tmp_path)
    assert invocation_key({"argv": ["build"]}, env) != key


def node(name: str = "lab", image_id: str = "sha256:1", platform: str = "linux/amd64") -> ReceiptNode:
    return ReceiptNode(name, "image", "python", H, f"stacks/{name}:{H[:12]}", image_id,
                       (f"stacks/{name}:{H[:12]}", f"stacks/{name}:latest"), {"io.stacks.hash": H}, 10, None, platform)


def receipt(*nodes: ReceiptNode) -> Receipt:
    return Receipt("key", ("/x",), "d", nodes, ("note",), "engine", "20.10", "stacks.yaml",
                   {"linux/amd64": "build", "linux/arm64": "build/linux-arm64"}, 2, 1.0)


def row(image_id: str = "sha256:1", tags=(f"stacks/lab:{H[:12]}", "stacks/lab:latest"), label: str = H) -> dict:
    return {"Id": image_id, "RepoTags": list(tags), "Labels": {"io.stacks.hash": label}, "Size": 10}


def test_the_images_must_be_the_very_ones_the_build_left() -> None:
    r = receipt(node())
    assert still_true(r, [row(), row("sha256:other", ("x:1",))])
    assert not still_true(r, [row("sha256:2")])  # rebuilt or re-tagged: another image under the tag
    assert not still_true(r, [row(tags=(f"stacks/lab:{H[:12]}",))])  # `latest` moved away
    assert not still_true(r, [row(label="cd" * 32)])
    assert not still_true(r, [])  # removed


def test_a_receipt_survives_the_round_trip_and_garbage_is_no_receipt() -> None:
    r = receipt(node(), node("hub", "sha256:2"), node("lab", "sha256:3", "linux/arm64"))
    assert Receipt.from_json(r.to_json()) == r
    assert Receipt.from_json(json.dumps({**json.loads(r.to_json()), "format": 1})) is None  # one report folder only
    for broken in ("", "[]", "{}", '{"format": 99}', json.dumps({**json.loads(r.to_json()), "nodes": [{}]}), "\xff"):
        assert Receipt.from_json(broken) is None


def test_the_store_answers_only_for_its_own_invocation(tmp_path: Path) -> None:
    store = ReceiptStore(tmp_path / "receipts")
    assert store.load("key") is None
    store.save(receipt(node()))
    assert store.load("key") == receipt(node())
    (tmp_path / "receipts" / "other.json").write_text(receipt(node()).to_json())  # copied under another name
    assert store.load("other") is None
    store.drop("key")
    store.drop("key")
    assert store.load("key") is None
    assert [p.name for p in (tmp_path / "receipts").iterdir()] == ["other.json"]  # no temporary files left


@pytest.mark.parametrize("argv,answerable", [
    (["build"], True), (["build", "--only-verified", "lab"], True), (["build", "--explain"], False),
    (["build", "--help"], False), (["test"], False), ([], False), (["push", "build"], False),
    (["build", "--no-cache", "lab"], False),
])
def test_only_plain_builds_are_answered_from_a_receipt(argv, answerable) -> None:
    assert noop.applies(argv) is answerable


class FakeDaemonSocket:
    """A Unix socket that answers one request per connection the way dockerd does for HTTP/1.0."""

    def __init__(self, path: Path, answers: dict[str, bytes]):
        self.path, self.answers, self.requests = path, answers, []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                request = conn.recv(65536).decode()
                self.requests.append(request)
                conn.sendall(self.answers.get(request.split()[1], b"HTTP/1.0 404 Not Found\r\n\r\n{}"))

    def close(self) -> None:
        self.server.close()


def http(body: object, status: str = "200 OK", headers: str = "Content-Type: application/json") -> bytes:
    return f"HTTP/1.0 {status}\r\n{headers}\r\n\r\n{json.dumps(body)}".encode()


PING = "/_ping"


def ping(server: str = "Docker/20.10.24 (linux)") -> bytes:
    return f"HTTP/1.0 200 OK\r\nApi-Version: 1.41\r\nServer: {server}\r\n\r\nOK".encode()


def test_the_engine_socket_reads_the_listing_and_the_daemon(tmp_path: Path) -> None:
    engine = FakeDaemonSocket(tmp_path / "docker.sock", {"/images/json": http([row()]), PING: ping()})
    host = EngineAddress(f"unix://{tmp_path / 'docker.sock'}")
    try:
        daemon, listing = ask(host, PING), ask(host, "/images/json")  # both sent before either is read
        assert images_of(listing.json()) == [row()] and daemon.header("Server") == "Docker/20.10.24 (linux)"
        assert daemon.header("server") == "Docker/20.10.24 (linux)" and daemon.header("Missing") is None
        assert all(r.startswith("GET /") and " HTTP/1.0\r\n" in r for r in engine.requests)
        assert ask(host, "/nothing").json() is None  # an error status
    finally:
        engine.close()


def test_the_engine_socket_gives_up_on_what_it_cannot_read(tmp_path: Path) -> None:
    engine = FakeDaemonSocket(tmp_path / "docker.sock", {
        "/chunked": http([], headers="Transfer-Encoding: chunked"),
        "/broken": b"HTTP/1.0 200 OK\r\n\r\n{not json",
        "/empty": b""})
    host = EngineAddress(f"unix://{tmp_path / 'docker.sock'}")
    try:
        assert ask(host, "/chunked").json() is None
        assert ask(host, "/broken").json() is None
        assert ask(host, "/empty").json() is None
    finally:
        engine.close()
    assert ask(EngineAddress(f"unix://{tmp_path / 'nobody-listens.sock'}"), PING).header("Server") is None
    assert ask(EngineAddress("ssh://user@host"), PING).json() is None  # only the Docker SDK speaks SSH
    assert ask(EngineAddress("tcp://127.0.0.1:2376", tls=True), PING).json() is None  # nor TLS
    assert images_of({"message": "x"}) is None


def test_a_receipt_answers_the_same_build_and_nothing_else(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = tree(tmp_path / "project")
    engine = FakeDaemonSocket(tmp_path / "docker.sock", {"/images/json": http([row()]), PING: ping()})
    env = {"DOCKER_HOST": f"unix://{tmp_path / 'docker.sock'}", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = ["build", "--out", "out"]
    inputs = (str(root / "stacks.yaml"), str(root / "frag"))
    kept = Receipt(invocation_key(noop._invocation(argv, env["DOCKER_HOST"]), env), inputs, inputs_digest(Path(p) for p in inputs), (node(),),
                   ("--only-verified: leaving out 1 unverified image: x",), "Docker engine 20.10", "Docker/20.10.24 (linux)",
                   "stacks.yaml", {"linux/amd64": "out"}, 2, 1.0)
    ReceiptStore(tmp_path / "cache" / "stacks" / "receipts").save(kept)
    said: list[str] = []
    try:
        assert noop.answer(argv, env, said.append) == 0
        written = json.loads((tmp_path / "out" / "report.json").read_text())
        assert [(i["name"], i["status"], i["size"]) for i in written["images"]] == [("lab", "cached", 10)]
        assert written["engine"] == "Docker engine 20.10" and written["jobs"] == 2
        assert said[:2] == ["Docker engine 20.10", "--only-verified: leaving out 1 unverified image: x"]
        assert said[-1].startswith("nothing changed since the build of ")
        assert noop.answer(["build", "--out", "out", "lab"], env, said.append) is None  # another command line
        assert noop.answer(argv, {**env, "STACKS_PIP_INDEX_URL": "http://m"}, said.append) is None  # another setting
        engine.answers[PING] = ping("Docker/28.0.1 (linux)")
        assert noop.answer(argv, env, said.append) is None  # another daemon
        engine.answers[PING] = ping()
        (root / "frag" / "Dockerfile.j2").write_text("RUN edited\n")
        assert noop.answer(argv, env, said.append) is None  # an input changed
    finally:
        engine.close()


def test_a_receipt_of_two_platforms_writes_each_platform_its_own_report(tmp_path: Path, monkeypatch) -> None:
    """`stacks build --platform linux/amd64 --platform linux/arm64` with nothing changed: both reports, no planning."""
    monkeypatch.chdir(tmp_path)
    root = tree(tmp_path / "project")
    arm = row("sha256:3", ("stacks/lab:arm", "stacks/lab:arm-latest"))
    engine = FakeDaemonSocket(tmp_path / "docker.sock", {"/images/json": http([row(), arm]), PING: ping()})
    env = {"DOCKER_HOST": f"unix://{tmp_path / 'docker.sock'}", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = ["build", "--platform", "linux/amd64", "--platform", "linux/arm64"]
    inputs = (str(root / "stacks.yaml"),)
    arm_node = ReceiptNode("lab", "image", "python", H, "stacks/lab:arm", "sha256:3", ("stacks/lab:arm", "stacks/lab:arm-latest"),
                           {"io.stacks.hash": H}, 30, None, "linux/arm64")
    kept = Receipt(invocation_key(noop._invocation(argv, env["DOCKER_HOST"]), env), inputs,
                   inputs_digest(Path(p) for p in inputs), (node(), arm_node), (), "Docker engine 20.10",
                   "Docker/20.10.24 (linux)", "stacks.yaml", {"linux/amd64": "build", "linux/arm64": "build/linux-arm64"})
    ReceiptStore(tmp_path / "cache" / "stacks" / "receipts").save(kept)
    said: list[str] = []
    try:
        assert noop.answer(argv, env, said.append) == 0
        for folder, platform, size in (("build", "linux/amd64", 10), ("build/linux-arm64", "linux/arm64", 10)):
            written = json.loads((tmp_path / folder / "report.json").read_text())
            assert written["platform"] == platform
            assert [(i["name"], i["status"], i["platform"], i["size"]) for i in written["images"]] == [
                ("lab", "cached", platform, size)]
        assert sum(line.startswith("report: ") for line in said) == 2
        engine.answers["/images/json"] = http([row()])  # the arm64 image is gone: the full build runs
        assert noop.answer(argv, env, said.append) is None
    finally:
        engine.close()


def test_the_no_op_path_loads_no_heavy_library() -> None:
    """What `stacks build` imports before it knows there is work: the standard library and these modules only."""
    import subprocess
    import sys

    code = ("import sys, builder.app.entry, builder.app.noop, builder.reports.report, builder.plan.sizes; "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('click', 'docker', 'requests', 'pydantic', 'jinja2', 'networkx', 'yaml', 'http'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_a_receipt_that_cannot_be_used_falls_back_to_the_full_build(monkeypatch) -> None:
    from builder.app import entry

    ran: list[list[str]] = []
    monkeypatch.setattr(noop, "answer", lambda argv, env, say: 1 / 0)
    monkeypatch.setattr("builder.app.cli.main", lambda args: ran.append(args))
    entry.main(["build", "--only-verified"])
    assert ran == [["build", "--only-verified"]]
