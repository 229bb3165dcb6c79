"""Real builds on the real engine: order, skipping, failures, secrets, concurrency, interrupts."""
from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from .conftest import PREFIX, report, stacks, statuses, write_fragment

pytestmark = pytest.mark.integration


def test_cold_build_then_noop_then_one_fragment_edited(tiny: Path, client) -> None:
    first = stacks("build", "pyapp", "side", cwd=tiny)
    assert first.returncode == 0, first.stderr
    assert set(statuses(tiny)) == {"debian", "root", "pyapp", "side"}
    assert statuses(tiny)["pyapp"] in ("built", "cached")
    for image in report(tiny)["images"]:
        labels = client.images.get(image["ref"]).labels
        assert labels["io.stacks.hash"] == image["hash"]
    side = client.containers.run(report(tiny)["images"][-1]["ref"], "cat /etc/stacks-note /etc/stacks-marker", remove=True)
    assert side.decode().split()[:2] == ["hello", "root"]

    started = time.monotonic()
    second = stacks("build", "pyapp", "side", cwd=tiny)
    noop_seconds = time.monotonic() - started
    assert second.returncode == 0, second.stderr
    assert set(statuses(tiny).values()) == {"cached"}
    print(f"no-op run: {noop_seconds:.2f}s")

    (tiny / "fragments" / "note" / "Dockerfile.j2").write_text("RUN echo {{ text }} edited > /etc/stacks-note\n")
    explained = stacks("plan", "--explain", cwd=tiny)
    assert "side (linux/amd64): build: fragment 'note' changed" in explained.stdout, explained.stdout
    assert "pyapp (linux/amd64): cached" in explained.stdout
    third = stacks("build", "pyapp", "side", cwd=tiny)
    assert third.returncode == 0, third.stderr
    assert statuses(tiny) == {"debian": "cached", "root": "cached", "pyapp": "cached", "side": "built"}


def test_a_build_with_nothing_to_do_is_answered_from_its_receipt_until_anything_changes(tiny: Path, client) -> None:
    """The receipt (docs/cache.md): same command, inputs and images -> no planning, no click, the same report."""
    def build() -> tuple[str, dict[str, str]]:
        done = stacks("build", "side", cwd=tiny, env={"PYTHONPROFILEIMPORTTIME": "1"})
        assert done.returncode == 0, done.stderr
        answered = "nothing changed since the build of" in done.stderr
        assert answered == (" click\n" not in done.stderr and " builder.plan.render\n" not in done.stderr)
        return ("receipt" if answered else "full"), statuses(tiny)

    assert build()[0] == "full"
    full = {i["name"]: (i["hash"], i["ref"], i["size"]) for i in report(tiny)["images"]}
    assert build() == ("receipt", {"debian": "cached", "root": "cached", "side": "cached"})
    assert {i["name"]: (i["hash"], i["ref"], i["size"]) for i in report(tiny)["images"]} == full

    client.images.remove(f"{PREFIX}/side:latest")  # a tag the build keeps: the full path puts it back
    assert build()[0] == "full" and f"{PREFIX}/side:latest" in client.images.get(full["side"][1]).tags
    assert build()[0] == "receipt"

    for tag in client.images.get(full["side"][1]).tags:  # the image itself gone
        client.images.remove(tag)
    assert build() == ("full", {"debian": "cached", "root": "cached", "side": "built"})
    assert build()[0] == "receipt"

    (tiny / "fragments" / "note" / "Dockerfile.j2").write_text("RUN echo {{ text }} edited > /etc/stacks-note\n")
    assert build() == ("full", {"debian": "cached", "root": "cached", "side": "built"})
    assert build()[0] == "receipt"
    done = stacks("build", "side", cwd=tiny, env={"STACKS_PIP_INDEX_URL": "http://127.0.0.1:1/simple"})
    assert "nothing changed" not in done.stderr  # another setting: planned again


def test_failure_skips_descendants_and_independent_branches_finish(tiny: Path) -> None:
    result = stacks("build", cwd=tiny)
    assert result.returncode == 1
    state = statuses(tiny)
    assert state["broken"] == "failed"
    assert state["after-broken"] == "skipped"
    assert state["side"] in ("built", "cached") and state["pyapp"] in ("built", "cached")
    failed = next(i for i in report(tiny)["images"] if i["name"] == "broken")
    assert "exit 3" in failed["step"]
    assert any("about to fail" in line for line in failed["log_tail"])
    markdown = (tiny / "build" / "report.md").read_text()
    assert "## broken failed" in markdown and "exit 3" in markdown
    assert "FAILED broken" in result.stderr


def _self_signed_cert(folder: Path) -> tuple[Path, str]:
    key, cert = folder / "test-ca.key", folder / "test-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=stacks-test-ca"], check=True, capture_output=True,
    )
    body = "".join(cert.read_text().splitlines()[1:-1])
    return cert, body[40:100]  # a slice of the certificate's base64 that no other file has


def test_ca_certificates_reach_builds_but_never_a_layer(tiny: Path, client) -> None:
    cert, marker = _self_signed_cert(tiny)
    write_fragment(tiny, "pip-tool", """\
        RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null \\
            && python3 -m venv /opt/tool && /opt/tool/bin/pip install --no-cache-dir -q six==1.16.0 \\
            && grep -c "BEGIN C[E]RTIFICATE" "$PIP_CERT" && rm -rf /var/lib/apt/lists/*
        """, "requires: [marker]\n")
    extra = ["--ca-cert", str(cert)]
    host_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if host_bundle.is_file():
        extra += ["--ca-cert", str(host_bundle)]
    result = stacks("build", "pyapp", *extra, cwd=tiny, env={"STACKS_CA_CERTS": ""})
    assert result.returncode == 0, result.stderr + (tiny / "build" / "logs" / "pyapp.log").read_text()
    ref = next(i["ref"] for i in report(tiny)["images"] if i["name"] == "pyapp")
    image = client.images.get(ref)
    history = " ".join(str(layer) for layer in image.history())
    assert marker not in history
    assert "BEGIN CERTIFICATE" not in history
    assert not any("CERT" in e or "CA_BUNDLE" in e for e in image.attrs["Config"].get("Env") or [])
    container = client.containers.create(ref)
    try:
        stream = io.BytesIO(b"".join(container.export()))
    finally:
        container.remove()
    with tarfile.open(fileobj=stream) as tar:
        for member in tar:
            if member.isfile() and member.size < 5_000_000:
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                assert marker.encode() not in data, f"CA certificate found in {member.name}"


def test_two_runs_at_once_build_each_image_once(tiny: Path, client) -> None:
    write_fragment(tiny, "note", "RUN sleep 3 && echo {{ text }} concurrent-$(date +%N) > /etc/stacks-note\n",
                   "params:\n  text: {type: string}\n")
    command = [sys.executable, "-m", "builder", "build", "side", "--out"]
    runs = [subprocess.Popen(command + [f"build{i}"], cwd=tiny, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in (1, 2)]
    codes = [run.wait(timeout=900) for run in runs]
    assert codes == [0, 0], [run.stderr.read() for run in runs]  # type: ignore[union-attr]
    reports = [json.loads((tiny / f"build{n}" / "report.json").read_text())["images"] for n in (1, 2)]
    side = [next(i for i in images if i["name"] == "side") for images in reports]
    assert sorted(i["status"] for i in side) == ["built", "cached"]
    assert side[0]["hash"] == side[1]["hash"]
    assert len(client.images.list(filters={"label": f"io.stacks.hash={side[0]['hash']}"})) == 1


def test_interrupt_stops_cleanly_and_tags_nothing(tiny: Path, client) -> None:
    write_fragment(tiny, "note", "RUN echo slow-start && sleep 120 && echo {{ text }} > /etc/stacks-note\n",
                   "params:\n  text: {type: string}\n")
    proc = subprocess.Popen([sys.executable, "-m", "builder", "build", "side"], cwd=tiny,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tiny / "build" / "logs" / "side.log"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (log.exists() and "slow-start" in log.read_text()):
        time.sleep(0.5)
    assert log.exists() and "slow-start" in log.read_text(), "the slow build never started"
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    assert code == 130, proc.stderr.read()  # type: ignore[union-attr]
    image = next(i for i in report(tiny)["images"] if i["name"] == "side")
    assert image["status"] == "cancelled"
    assert not client.images.list(filters={"label": f"io.stacks.hash={image['hash']}"})
    assert not [t for i in client.images.list(name=f"{PREFIX}/side") for t in i.tags if image["hash"][:12] in t]


def test_classic_builder_fallback_builds_without_buildkit_flags(tiny: Path, client) -> None:
    result = stacks("build", "side", cwd=tiny, env={"STACKS_BUILDER": "classic", "STACKS_CA_CERTS": ""})
    assert result.returncode == 0, result.stderr
    assert "classic builder" in result.stderr
    dockerfile = (tiny / "build" / "contexts" / "side" / "Dockerfile").read_text()
    assert "--mount" not in dockerfile and "ARG PIP_CERT" in dockerfile
    side = next(i for i in report(tiny)["images"] if i["name"] == "side")
    assert client.images.get(side["ref"]).labels["io.stacks.hash"] == side["hash"]


def test_classic_builder_refuses_to_bake_ca_certificates(tiny: Path) -> None:
    cert = Path("/etc/ssl/certs/ca-certificates.crt")
    if not cert.is_file():
        cert = tiny / "fragments" / "marker" / "marker.txt"
    result = stacks("build", "side", "--ca-cert", str(cert), cwd=tiny, env={"STACKS_BUILDER": "classic"})
    assert result.returncode == 2  # bad input (README: exit codes)
    assert "need BuildKit" in result.stderr


def test_pulled_base_is_fetched_once_then_reused(tiny: Path, client, registry: str) -> None:
    assert stacks("build", "debian", cwd=tiny).returncode == 0
    source = client.images.get(next(i["ref"] for i in report(tiny)["images"] if i["name"] == "debian"))
    remote = f"{registry}/{PREFIX}/debian:bookworm"
    source.tag(remote)
    for line in client.images.push(remote, stream=True, decode=True):
        assert "error" not in line, line
    client.images.remove(remote)
    spec = (tiny / "stacks.yaml").read_text().replace("bootstrap: {suite: bookworm}", f"pull: {remote}")
    (tiny / "stacks.yaml").write_text(spec)
    first = stacks("build", "side", cwd=tiny)
    assert first.returncode == 0, first.stderr
    assert statuses(tiny)["debian"] == "built"  # pulled
    assert client.images.get(remote)
    second = stacks("build", "side", cwd=tiny)
    assert second.returncode == 0, second.stderr
    assert statuses(tiny) == {"debian": "cached", "root": "cached", "side": "cached"}


def test_stacks_test_fails_on_broken_promises_and_says_what_came_back(tiny: Path) -> None:
    write_fragment(tiny, "note", "RUN echo {{ text }} > /etc/stacks-note\n", """\
        params:
          text: {type: string}
        kernel: {name: python3, language: python, snippet: "print(6 * 7)", expect: "42"}
        checks:
          - {name: note is written, run: "cat /etc/stacks-note", expect: "^hello$"}
          - {name: note says goodbye, run: "cat /etc/stacks-note", expect: "goodbye"}
          - {name: gpu visible, run: "nvidia-smi", needs: [gpu]}
        """)
    assert stacks("build", "side", cwd=tiny).returncode == 0
    result = stacks("test", "side", cwd=tiny)
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads((tiny / "build" / "test-report.json").read_text())["checks"]}
    assert checks["note is written"]["status"] == "passed"
    assert checks["note says goodbye"]["status"] == "failed"
    assert "goodbye" in checks["note says goodbye"]["expected"] and "hello" in checks["note says goodbye"]["got"]
    assert checks["gpu visible"]["status"] == "not run"
    kernel = checks["kernel python3 runs its snippet"]
    assert kernel["status"] == "failed" and kernel["got"]  # listed, but nothing can run it in this image
    junit = (tiny / "build" / "junit.xml").read_text()
    assert junit.count("<failure") == 2 and junit.count("<skipped") == 1
    assert "note says goodbye (note): expected" in result.stderr
    assert "[0/1] testing side: declared checks, kernel python3" in result.stderr  # progress, as `stacks build` gives
    assert "[1/1] FAILED side: " in result.stderr
