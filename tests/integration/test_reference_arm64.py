"""The project's own Debian chain for linux/arm64, built and smoke-tested under QEMU on an amd64 engine.

debian (mmdebstrap --architectures=arm64) -> foundation -> python -> lab of
the reference stacks.yaml, bookworm variant: `stacks build --platform
linux/arm64 lab-bookworm` builds the chain, `stacks test --platform
linux/arm64` runs every check of the three images in arm64 containers (the
Python kernel really executes, the server and the browser check included),
and the lab image is used the way a user on an arm64 machine would:
`docker run --platform linux/arm64 IMAGE python ...`.

The chain is what CI proves for arm64; the rest of the matrix is planned for
arm64 but built only on demand (docs/platforms.md, docs/testing.md). About
13 minutes on a quiet 2-core machine (docs/benchmarks.md).
"""
from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from builder.adapters.emulation import Emulation

from .conftest import ROOT, stacks

pytestmark = pytest.mark.integration
CHAIN = ("foundation-bookworm", "python-bookworm", "lab-bookworm")


@pytest.fixture(scope="module")
def arm64_chain(tmp_path_factory) -> Path:
    problem = Emulation().problem("linux/arm64", "linux/amd64")
    if problem is not None:
        pytest.fail(problem)
    out = tmp_path_factory.mktemp("reference-arm64")
    built = stacks("build", "-f", str(ROOT / "stacks.yaml"), "--platform", "linux/arm64", "--out", str(out),
                   "lab-bookworm", cwd=ROOT, timeout=3600)
    assert built.returncode == 0, built.stderr
    return out / "linux-arm64"


def test_the_chain_is_built_for_arm64(arm64_chain: Path, client: docker.DockerClient) -> None:
    rows = {row["name"]: row for row in json.loads((arm64_chain / "report.json").read_text())["images"]}
    assert set(rows) == {"debian-bookworm", *CHAIN}
    for row in rows.values():
        assert row["platform"] == "linux/arm64"
        assert client.images.get(row["ref"]).attrs["Architecture"] == "arm64"


def test_every_check_of_the_chain_passes_under_emulation(arm64_chain: Path) -> None:
    # --force: a record of an earlier run on this machine proves the image, not this run's checks
    tested = stacks("test", "-f", str(ROOT / "stacks.yaml"), "--platform", "linux/arm64", "--force", "--out",
                    str(arm64_chain.parent), *CHAIN, cwd=ROOT, timeout=3600)
    assert tested.returncode == 0, tested.stderr
    report = json.loads((arm64_chain / "test-report.json").read_text())
    assert "QEMU" in report["note"]
    failed = [c for c in report["checks"] if c["status"] == "failed"]
    assert not failed, failed
    kernels = [c for c in report["checks"] if c["image"] == "lab-bookworm" and c["kind"] == "kernel"]
    assert kernels and all(c["status"] == "passed" for c in kernels)


def test_the_lab_image_runs_python_as_aarch64(arm64_chain: Path, client: docker.DockerClient) -> None:
    rows = {row["name"]: row for row in json.loads((arm64_chain / "report.json").read_text())["images"]}
    said = client.containers.run(
        rows["lab-bookworm"]["ref"], ["python", "-c", "import platform, jupyterlab; print(platform.machine(), jupyterlab.__version__)"],
        remove=True, platform="linux/arm64").decode().split()
    assert said[0] == "aarch64" and said[1].startswith("4.")
