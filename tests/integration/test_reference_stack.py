"""The default stacks.yaml, built once per run on the real engine, and what its images promise."""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import stacks

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LAB_BUDGET = 600_000_000

KERNEL_PROBE = """
import sys
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name=sys.argv[1], startup_timeout=60)
try:
    kc.execute(sys.argv[2])
    out = []
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        c = msg["content"]
        if msg["msg_type"] == "stream":
            out.append(c["text"])
        elif msg["msg_type"] in ("execute_result", "display_data"):
            out.append(c["data"].get("text/plain", ""))
        elif msg["msg_type"] == "error":
            out.append("ERROR " + c["ename"] + ": " + c["evalue"])
        elif msg["msg_type"] == "status" and c["execution_state"] == "idle":
            break
    print("".join(out))
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
"""


def _labs(reference: dict) -> list[dict]:
    labs = [image for name, image in reference.items() if name.startswith("lab-")]
    assert labs, "the reference matrix has no lab images"
    return labs


def _wait_for(url: str, seconds: float = 60) -> int:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_every_image_of_the_matrix_builds_within_budget(reference: dict) -> None:
    assert all(image["status"] in ("built", "cached") for image in reference.values())
    for lab in _labs(reference):
        assert lab["size"] < LAB_BUDGET, f"{lab['name']} is {lab['size'] / 1e6:.0f} MB, budget 600 MB"


def test_lab_server_requires_its_token_and_runs_python(reference: dict, client) -> None:
    for lab in _labs(reference):
        container = client.containers.run(lab["ref"], detach=True, environment={"JUPYTER_TOKEN": "s3cret"},
                                          ports={"8888/tcp": ("127.0.0.1", None)})
        try:
            container.reload()
            port = container.ports["8888/tcp"][0]["HostPort"]
            base = f"http://127.0.0.1:{port}"
            assert _wait_for(f"{base}/api/status?token=s3cret") == 200
            assert _wait_for(f"{base}/api/status") == 403
            with urllib.request.urlopen(f"{base}/api/kernelspecs?token=s3cret") as response:
                assert "python3" in json.loads(response.read())["kernelspecs"]
            code, output = container.exec_run(["python", "-c", KERNEL_PROBE, "python3", "print(6 * 7)"])
            assert code == 0 and output.decode().strip().endswith("42"), output.decode()
            assert container.exec_run("id -u").output.decode().strip() == "1000"
        finally:
            container.remove(force=True)


def test_uid_gid_remap_makes_host_files_belong_to_the_host_user(reference: dict, client, tmp_path: Path) -> None:
    lab = _labs(reference)[0]
    shared = tmp_path / "work"
    shared.mkdir()
    os.chmod(shared, 0o777)
    output = client.containers.run(
        lab["ref"], ["start.sh", "bash", "-c", "touch ~/work/made-here && id -u && id -g"], user="root", remove=True,
        environment={"NB_UID": "1234", "NB_GID": "2345"}, volumes={str(shared): {"bind": "/home/jovyan/work", "mode": "rw"}},
    )
    assert output.decode().split() == ["1234", "2345"]
    made = (shared / "made-here").stat()
    assert (made.st_uid, made.st_gid) == (1234, 2345)


def test_stacks_test_passes_every_declared_check_of_the_matrix(reference: dict, reference_dir: Path) -> None:
    # a relative --out, as `make stacks` gives it
    result = stacks("test", "--force", "-f", str(ROOT / "stacks.yaml"), "--only-verified", "--out", reference_dir.name,
                    cwd=reference_dir.parent, timeout=1800)
    assert result.returncode == 0, result.stderr
    checks = json.loads((reference_dir / "test-report.json").read_text())["checks"]
    assert {c["status"] for c in checks} <= {"passed", "not run"}
    # only hardware this machine lacks may leave a check unrun, and it is said which
    for check in checks:
        if check["status"] == "not run":
            assert check["got"].startswith("needs "), check
    kernels = {(c["image"], c["name"]) for c in checks if c["kind"] == "kernel"}
    assert {lab["name"] for lab in _labs(reference)} <= {image for image, _ in kernels}
    # the all-in-one image runs a cell in every kernel whose sources CI reaches
    everything = {name.split()[1] for image, name in kernels if image == "polyglot-all-trixie"}
    assert everything == {"python3", "tslab", "java", "kotlin", "ir", "bash", "cpp17", "gophernotes", "rust"}
    # a child runs its ancestors' checks too
    lab_fragments = {c["fragment"] for c in checks if c["image"] == _labs(reference)[0]["name"]}
    assert {"debian-os", "nb-user", "start-scripts", "python-venv", "jupyterlab", "ipykernel"} <= lab_fragments
    # the browser check keeps what it saw
    shots = {c["image"]: c["artifact"] for c in checks if c["kind"] == "browser" and c["artifact"]}
    assert {lab["name"] for lab in _labs(reference)} <= set(shots), shots
    for artifact in shots.values():
        assert (reference_dir / artifact).read_bytes().startswith(b"\x89PNG"), artifact
    junit = (reference_dir / "junit.xml").read_text()
    assert "<testsuites" in junit and "<failure" not in junit and 'failures="0"' in junit
    # what is inside the all-in-one image, down to the JVM kernels' jars and the Go kernel's modules
    manifest = json.loads((reference_dir / "manifests" / "polyglot-all-trixie.json").read_text())
    found = {(p["ecosystem"], p["name"]) for p in manifest["packages"]}
    assert {("maven", "org.dflib.jjava:jjava-kernel"), ("golang", "github.com/gopherdata/gophernotes"),
            ("pypi", "jupyterlab"), ("deb", "openjdk-21-jdk-headless")} <= found, sorted(found)[:40]
    sbom = json.loads((reference_dir / "manifests" / "polyglot-all-trixie.cdx.json").read_text())
    purls = {c.get("purl", "").split("@")[0] for c in sbom["components"]}
    assert {"pkg:maven/org.dflib.jjava/jjava-kernel", "pkg:golang/github.com/gopherdata/gophernotes"} <= purls
