"""Two platforms of one stack side by side on one engine: linux/amd64 natively, linux/arm64 under QEMU.

A bootstrapped Debian minbase and one small child, built for both platforms
by one `stacks build`: every node gets a hash and a local tag per platform,
each image runs as its own architecture (`docker run IMAGE uname -m`), the
arm64 image passes `stacks test --platform linux/arm64` (checks executed in
the emulated container), and a second build of both builds nothing.

Needs QEMU user emulation registered with binfmt_misc (scripts/ensure-engine.sh);
about 6 minutes on a busy 2-core machine the first time (two mmdebstraps), under
a minute once the bases exist.
"""
from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import docker
import pytest

from builder.adapters.emulation import Emulation

from .conftest import PREFIX, stacks, write_fragment

PLATFORMS = ("linux/amd64", "linux/arm64")
MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}


@pytest.fixture(scope="module")
def two_platforms(tmp_path_factory, client: docker.DockerClient) -> Path:
    problem = Emulation().problem("linux/arm64", "linux/amd64")
    if problem is not None:
        pytest.fail(problem)
    folder = tmp_path_factory.mktemp("platforms")
    (folder / "stacks.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        settings:
          local_prefix: {PREFIX}
        bases:
          debian:
            bootstrap: {{suite: bookworm, variant: minbase}}
            provides: ["os=debian", apt]
            platforms: [linux/amd64, linux/arm64]
        images:
          plat-child:
            base: debian
            fragments: [arch-note]
        """))
    # a nonce per run: the child is built (not found from an earlier run), the base is shared with earlier runs
    write_fragment(folder, "arch-note", "COPY {{ here }}/nonce /etc/nonce\nRUN uname -m > /etc/built-on\n", """\
        checks:
          - name: the image was built on its own architecture
            run: "test \\"$(cat /etc/built-on)\\" = \\"$(uname -m)\\" && uname -m"
            expect: "^(x86_64|aarch64)$"
        """, {"nonce": f"{uuid.uuid4()}\n"})
    built = stacks("build", "--platform", "linux/amd64", "--platform", "linux/arm64", cwd=folder, timeout=2400)
    assert built.returncode == 0, built.stderr
    return folder


def _report(folder: Path) -> dict[str, dict]:
    rows = json.loads((folder / "report.json").read_text())["images"]
    return {row["name"]: row for row in rows}


def test_each_platform_has_its_own_hash_tag_and_architecture(two_platforms: Path, client: docker.DockerClient) -> None:
    amd, arm = _report(two_platforms / "build"), _report(two_platforms / "build" / "linux-arm64")
    assert set(amd) == set(arm) == {"debian", "plat-child"}
    for name in amd:
        assert amd[name]["platform"] == "linux/amd64" and arm[name]["platform"] == "linux/arm64"
        assert amd[name]["hash"] != arm[name]["hash"]
        assert amd[name]["ref"] == f"{PREFIX}/{name}:{amd[name]['hash'][:12]}"
        assert arm[name]["ref"] == f"{PREFIX}/{name}:linux-arm64-{arm[name]['hash'][:12]}"
    for platform, rows in (("linux/amd64", amd), ("linux/arm64", arm)):
        ref = rows["plat-child"]["ref"]
        assert client.images.get(ref).attrs["Architecture"] == platform.split("/")[1]
        said = client.containers.run(ref, ["uname", "-m"], remove=True, platform=platform).decode().strip()
        assert said == MACHINES[platform]
    assert client.images.get(f"{PREFIX}/plat-child:linux-arm64").id == client.images.get(arm["plat-child"]["ref"]).id
    assert client.images.get(f"{PREFIX}/plat-child:latest").id == client.images.get(amd["plat-child"]["ref"]).id


def test_the_foreign_image_passes_its_checks_under_emulation(two_platforms: Path) -> None:
    tested = stacks("test", "--platform", "linux/arm64", "--force", cwd=two_platforms, timeout=900)
    assert tested.returncode == 0, tested.stderr
    assert "under QEMU emulation, timeouts x10" in tested.stderr
    report = json.loads((two_platforms / "build" / "linux-arm64" / "test-report.json").read_text())
    assert "QEMU" in report["note"]
    ran = [c for c in report["checks"] if c["name"] == "the image was built on its own architecture"]
    assert [(c["status"], c["got"].strip()[-7:]) for c in ran] == [("passed", "aarch64")]


def test_a_second_build_of_both_platforms_builds_nothing(two_platforms: Path) -> None:
    again = stacks("build", cwd=two_platforms, env={"STACKS_PLATFORM": "linux/amd64,linux/arm64"}, timeout=600)
    assert again.returncode == 0, again.stderr
    for folder in (two_platforms / "build", two_platforms / "build" / "linux-arm64"):
        assert {row["status"] for row in _report(folder).values()} == {"cached"}
    # that build left one receipt for both platforms: the same command again plans nothing, and writes both reports
    for folder in (two_platforms / "build", two_platforms / "build" / "linux-arm64"):
        (folder / "report.json").unlink()
    answered = stacks("build", cwd=two_platforms, env={"STACKS_PLATFORM": "linux/amd64,linux/arm64"}, timeout=600)
    assert answered.returncode == 0 and "nothing changed since the build of" in answered.stderr, answered.stderr
    for folder, platform in ((two_platforms / "build", "linux/amd64"), (two_platforms / "build" / "linux-arm64", "linux/arm64")):
        assert {(row["status"], row["platform"]) for row in _report(folder).values()} == {("cached", platform)}
