"""stacks outdated: pins of fragments and lock against a fake PyPI and npm registry on 127.0.0.1 (no internet)."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from builder.adapters.indexes import IndexUnreachable, PackageIndexes
from builder.app.cli import main
from builder.plan.outdated import check, collect
from builder.specification.lock import LockEntry, lock_text

from .helpers import plan_of

SPEC = """
bases:
  debian: {pull: "debian:12", provides: [shell]}
images:
  app:
    base: debian
    fragments: [{use: installer, params: {version: "4.0.0"}}]
"""
FRAGMENTS = {
    "installer": {
        "meta": {"params": {"version": {"type": "string", "default": "4.6.6"}}},
        "body": 'RUN pip install "jupyterlab=={{ version }}" "six==1.17.0" && npm install -g "tslab@1.0.22" "@scope/kit@2.0.0"\n',
    },
}
ANSWERS = {
    "/pypi/jupyterlab/json": {"info": {"version": "4.6.6"}},
    "/pypi/six/json": {"info": {"version": "1.17.0"}},
    "/pypi/idna/json": {"info": {"version": "3.11"}},
    "/npm/tslab": {"dist-tags": {"latest": "1.0.23"}},
    "/npm/@scope%2Fkit": {"dist-tags": {"latest": "2.0.0-rc.1"}},
}


class FakeIndex:
    """PyPI's JSON API under /pypi and an npm registry under /npm, from ANSWERS; what was asked is kept."""

    def __init__(self) -> None:
        asked = self.asked = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                asked.append(self.path)
                body = ANSWERS.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body or {"error": "not found"}).encode())

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def index():
    server = FakeIndex()
    yield server
    server.close()


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def locked_stack(stack) -> Path:
    path = stack(SPEC, FRAGMENTS)
    (path.parent / "stacks.lock").write_text(lock_text({"app": LockEntry({"idna": "3.9"}, {}, "2026-12-01T10:00:00Z")}))
    return path


def test_fragment_and_lock_pins_are_compared_with_the_newest_releases(stack, index) -> None:
    plan = plan_of(locked_stack(stack))
    indexes = PackageIndexes(index.url + "/simple/", index.url + "/npm/")
    result = check(collect(plan), indexes.latest, IndexUnreachable)
    rows = {(p.manager, p.package): (p.version, p.latest, p.state, sorted(p.sources)) for p in result.pins}
    assert rows == {
        ("pip", "jupyterlab"): ("4.0.0", "4.6.6", "outdated", ["fragment 'installer'"]),  # the param, as rendered
        ("pip", "six"): ("1.17.0", "1.17.0", "current", ["fragment 'installer'"]),
        ("pip", "idna"): ("3.9", "3.11", "outdated", ["stacks.lock (app)"]),  # 3.9 < 3.11 as versions, not as text
        ("npm", "tslab"): ("1.0.22", "1.0.23", "outdated", ["fragment 'installer'"]),
        ("npm", "@scope/kit"): ("2.0.0", "2.0.0-rc.1", "newer", ["fragment 'installer'"]),
    }
    assert result.unreachable == {}
    assert sorted(index.asked) == sorted(ANSWERS)  # each package once, at the mirror's JSON API


def test_a_package_the_index_does_not_have_is_missing(stack, index) -> None:
    plan = plan_of(stack(SPEC.replace(', params: {version: "4.0.0"}', ""), {"installer": {
        "meta": {}, "body": 'RUN pip install "no-such-thing==1.0"\n'}}))
    result = check(collect(plan), PackageIndexes(index.url, index.url + "/npm").latest, IndexUnreachable)
    assert [(p.package, p.state) for p in result.pins] == [("no-such-thing", "missing")]


def test_each_unreachable_index_is_said_once_and_the_other_still_answers(stack, index) -> None:
    plan = plan_of(locked_stack(stack))
    down = closed_port()
    result = check(collect(plan), PackageIndexes(down, index.url + "/npm").latest, IndexUnreachable)
    assert list(result.unreachable) == ["pip"] and f"PyPI at {down} cannot be reached" in result.unreachable["pip"]
    assert {p.package: p.state for p in result.pins if p.manager == "pip"} == {"jupyterlab": "unknown", "six": "unknown",
                                                                               "idna": "unknown"}
    assert {p.package: p.state for p in result.pins if p.manager == "npm"} == {"tslab": "outdated", "@scope/kit": "newer"}


def test_the_command_prints_only_json_and_fails_when_an_index_is_down(stack, index, monkeypatch, capsys) -> None:
    path = locked_stack(stack)
    monkeypatch.setenv("STACKS_PIP_INDEX_URL", index.url + "/simple")
    monkeypatch.setenv("STACKS_NPM_REGISTRY", index.url + "/npm")
    monkeypatch.delenv("STACKS_CA_CERTS", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["outdated", "-f", str(path), "--json"])
    out, err = capsys.readouterr()
    assert exited.value.code == 0, err
    document = json.loads(out)
    assert {row["package"]: row["state"] for row in document["pins"]}["idna"] == "outdated"

    with pytest.raises(SystemExit) as exited:
        main(["outdated", "-f", str(path)])
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["PACKAGE", "MANAGER", "PINNED", "LATEST", "STATE", "PINNED", "BY"]
    assert "six" not in table  # current pins are listed with --all only
    assert "jupyterlab" in table and "5 pins: 3 outdated, 1 current, 1 newer" in table

    monkeypatch.setenv("STACKS_NPM_REGISTRY", closed_port())
    with pytest.raises(SystemExit) as exited:
        main(["outdated", "-f", str(path), "--json"])
    out, err = capsys.readouterr()
    assert exited.value.code == 1
    assert json.loads(out)["unreachable"]["npm"] and err.count("error: npm at http://127.0.0.1:") == 1
