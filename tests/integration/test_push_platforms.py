"""`stacks push` of two platforms: one tag serves both, as an OCI index in a real registry.

The two-platform stack of test_platforms.py (its fixture: a bootstrapped
bookworm minbase and one small child, built for linux/amd64 natively and
linux/arm64 under QEMU; the bases are shared with that module) is tested
for both platforms, pushed with `--platform linux/amd64 --platform
linux/arm64` to Debian's docker-registry on 127.0.0.1, and then used the way
users do: `docker pull --platform P TAG` and `docker run --platform P TAG
uname -m` answer each platform's own machine. A second push changes nothing.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import docker
import pytest
import requests

from .conftest import RegistryServer, stacks
from .test_platforms import MACHINES, PLATFORMS, two_platforms  # noqa: F401  (the module's fixture, reused)

pytestmark = pytest.mark.integration
INDEX = "application/vnd.oci.image.index.v1+json"
BOTH = {"STACKS_PLATFORM": ",".join(PLATFORMS), "STACKS_PUSH_ATTEMPTS": "2", "STACKS_PUSH_BACKOFF": "0.2"}


@pytest.fixture
def server(tmp_path: Path, client: docker.DockerClient):
    registry = RegistryServer(tmp_path / "registry")
    yield registry
    registry.stop()
    for image in client.images.list():  # the references the push and the pulls left on local images
        for tag in image.tags:
            if tag.startswith(f"{registry.host}/"):
                client.images.remove(tag)


def docker_cli(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_one_tag_serves_both_platforms_and_each_runs_as_its_own_machine(two_platforms: Path,  # noqa: F811
                                                                           server: RegistryServer) -> None:
    tested = stacks("test", cwd=two_platforms, env=BOTH, timeout=900)
    assert tested.returncode == 0, tested.stderr
    target = f"{server.host}/multi"
    dry = stacks("push", "--dry-run", "--registry", target, cwd=two_platforms, env=BOTH, timeout=900)
    assert dry.returncode == 0 and "(2 platforms each)" in dry.stdout, dry.stdout + dry.stderr
    for platform in PLATFORMS:  # the dry run says what each platform would put in the index
        assert f"  {platform}: ready, hash " in dry.stdout, dry.stdout
    pushed = stacks("push", "--registry", target, cwd=two_platforms, env=BOTH, timeout=900)
    assert pushed.returncode == 0, pushed.stderr
    [image] = json.loads((two_platforms / "build" / "push-manifest.json").read_text())["images"]
    assert image["image"] == "plat-child" and image["status"] == "pushed" and set(image["platforms"]) == set(PLATFORMS)
    for platform in PLATFORMS:  # each platform's SBOM is attached to that platform's manifest
        digest = image["platforms"][platform]["digest"]
        assert f"SBOM      {target}/plat-child@{digest[:19]} ({platform})" in pushed.stderr, pushed.stderr

    for tag in image["tags"]:
        response = requests.get(f"http://{server.host}/v2/multi/plat-child/manifests/{tag}",
                                headers={"Accept": INDEX}, timeout=30)
        response.raise_for_status()
        index = response.json()
        assert index["mediaType"] == INDEX and response.headers["Docker-Content-Digest"] == image["digest"]
        entries = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"] for m in index["manifests"]}
        assert entries == {p: image["platforms"][p]["digest"] for p in PLATFORMS}

    ref = f"{target}/plat-child:{image['tags'][-1]}"
    for platform in PLATFORMS:
        docker_cli("pull", "--platform", platform, ref)
        assert docker_cli("run", "--rm", "--platform", platform, ref, "uname", "-m") == MACHINES[platform]
        docker_cli("rmi", ref)

    again = stacks("push", "--registry", target, cwd=two_platforms, env=BOTH, timeout=900)
    assert again.returncode == 0, again.stderr
    assert f"0 pushed, {len(image['tags'])} unchanged tags" in again.stderr
