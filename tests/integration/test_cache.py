"""The registry cache against a real registry on 127.0.0.1, with fresh runners simulated on the shared engine.

A "fresh runner" here: every image this stack's run made (its prefix's tags
and the cache's tags) removed from the engine, and an empty record store
(XDG_CACHE_HOME of its own). The bootstrapped base may still be found under
another prefix of the shared engine; the stack's own images cannot be.
"""
from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest
import requests

from .conftest import RegistryServer, stacks, write_fragment

pytestmark = pytest.mark.integration


@pytest.fixture
def cached_stack(tmp_path: Path, client, registry: str):
    """debian (bootstrapped) -> root -> leaf, fresh hashes (a nonce), a cache repository of its own."""
    prefix = f"stackscache{uuid.uuid4().hex[:6]}"
    cache = f"{registry}/cache-{prefix}"
    (tmp_path / "stacks.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        settings:
          local_prefix: {prefix}
          cache: {cache}
          tags: ["{{{{ variant }}}}-{{{{ hash }}}}", "{{{{ variant }}}}"]
        bases:
          debian:
            bootstrap: {{suite: bookworm}}
            provides: ["os=debian", apt]
        images:
          root:
            base: debian
            fragments: [{{use: note, params: {{text: hello}}}}]
          leaf:
            parent: root
            fragments: [extra]
            push: true
        """))
    write_fragment(tmp_path, "note", f"RUN echo {{{{ text }}}} > /etc/stacks-note && echo {uuid.uuid4().hex} > /etc/nonce\n",
                   "params:\n  text: {type: string}\nchecks:\n  - {name: note, run: cat /etc/stacks-note, expect: '^hello$'}\n")
    write_fragment(tmp_path, "extra", "RUN echo one > /etc/extra\n",
                   "checks:\n  - {name: extra, run: cat /etc/extra, expect: '^one$'}\n")
    state = {"folder": tmp_path, "prefix": prefix, "cache": cache, "client": client, "runner": 0}
    yield state
    fresh_runner(state)


def fresh_runner(state: dict) -> dict:
    """Remove what this stack's runs made from the engine; a new, empty record store."""
    client = state["client"]
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(state["prefix"] + "/") or tag.startswith(state["cache"] + ":"):
                client.images.remove(tag, noprune=False)
    state["runner"] += 1
    return {"XDG_CACHE_HOME": str(state["folder"] / f"runner-{state['runner']}")}


def run(state: dict, env: dict, *args: str):
    return stacks(*args, cwd=state["folder"], env=env, timeout=900)


def statuses(state: dict) -> dict[str, tuple[str, str]]:
    report = json.loads((state["folder"] / "build" / "report.json").read_text())
    return {i["name"]: (i["status"], "; ".join(i["reasons"])) for i in report["images"]}


def local_tags(state: dict) -> set[str]:
    return {t for i in state["client"].images.list() for t in i.tags if t.startswith(state["prefix"] + "/")}


def test_a_fresh_runner_with_a_warm_cache_builds_and_tests_nothing(cached_stack: dict) -> None:
    state = cached_stack
    env = fresh_runner(state)
    assert run(state, env, "build").returncode == 0
    assert run(state, env, "test").returncode == 0
    tags = requests.get(f"http://{state['cache'].split('/')[0]}/v2/{state['cache'].split('/', 1)[1]}/tags/list").json()["tags"]
    assert {t.split("-")[0] for t in tags if not t.endswith(".stacks-test")} == {"debian", "root", "leaf"}
    assert sum(t.endswith(".stacks-test") for t in tags) == 2  # root and leaf were tested

    env = fresh_runner(state)
    built = run(state, env, "build")
    assert built.returncode == 0, built.stderr
    found = statuses(state)
    assert found["root"][0] == found["leaf"][0] == "cached" and "in the cache" in found["leaf"][1]
    assert not any(t.startswith(f"{state['prefix']}/root:") or t.startswith(f"{state['prefix']}/leaf:")
                   for t in local_tags(state))  # nothing needed them here: not pulled
    tested = run(state, env, "test")
    assert tested.returncode == 0, tested.stderr
    assert "passed root: passed earlier, " in tested.stderr and "passed leaf: passed earlier, " in tested.stderr
    report = json.loads((state["folder"] / "build" / "test-report.json").read_text())
    assert report["checks"] == [] and report["images"]["leaf"]["passed"]  # 0 smoke runs, and on record


def test_an_edited_leaf_on_a_fresh_runner_builds_only_the_leaf_on_its_pulled_parent(cached_stack: dict) -> None:
    state = cached_stack
    env = fresh_runner(state)
    assert run(state, env, "build").returncode == 0 and run(state, env, "test").returncode == 0
    write_fragment(state["folder"], "extra", "RUN echo two > /etc/extra\n",
                   "checks:\n  - {name: extra, run: cat /etc/extra, expect: '^two$'}\n")
    env = fresh_runner(state)
    assert run(state, env, "build").returncode == 0
    found = statuses(state)
    assert found["leaf"][0] == "built" and found["root"][0] == "cached"
    assert any(t.startswith(f"{state['prefix']}/root:") for t in local_tags(state))  # pulled for the leaf
    log = (state["folder"] / "build" / "logs" / "leaf.log").read_text()
    assert f"importing cache manifest from {state['cache']}:leaf-linux-amd64-latest" in log  # layers of the last leaf build
    tested = run(state, env, "test")
    assert tested.returncode == 0, tested.stderr
    assert "passed root: passed earlier, " in tested.stderr and "passed leaf: 3/3 checks" in tested.stderr


def test_a_tag_serving_another_image_is_ignored_and_the_node_rebuilt(cached_stack: dict) -> None:
    state = cached_stack
    env = fresh_runner(state)
    assert run(state, env, "build").returncode == 0
    client = state["client"]
    tags = requests.get(f"http://{state['cache'].split('/')[0]}/v2/{state['cache'].split('/', 1)[1]}/tags/list").json()["tags"]
    root_tag = next(t for t in tags if t.startswith("root-linux-amd64-") and not t.endswith("-latest"))  # the registry lists unsorted
    leaf = next(i for i in client.images.list() if any(t.startswith(state["prefix"] + "/leaf:") for t in i.tags))
    leaf.tag(state["cache"], root_tag)  # the leaf (a descendant: other labels) pushed under root's cache tag
    assert client.images.push(state["cache"], tag=root_tag)
    env = fresh_runner(state)
    result = run(state, env, "build")
    assert result.returncode == 0, result.stderr
    assert statuses(state)["root"][0] == "built" and "labels differ" in result.stderr


def test_an_unreachable_or_read_only_cache_is_a_warning_and_a_local_build(cached_stack: dict, tmp_path_factory) -> None:
    state = cached_stack
    env = fresh_runner(state)
    result = run(state, env, "build", "--cache", "127.0.0.1:1/nothing-listens")
    assert result.returncode == 0, result.stderr
    assert "warning: cache 127.0.0.1:1/nothing-listens unavailable" in result.stderr
    assert statuses(state)["leaf"][0] == "built"

    locked = RegistryServer(tmp_path_factory.mktemp("locked-registry"), {"reader": "secret-pw-123"})
    try:
        env = {**fresh_runner(state), "STACKS_REGISTRY_USER": "reader", "STACKS_REGISTRY_PASSWORD": "wrong-pw-456"}
        result = run(state, env, "build", "--cache", f"{locked.host}/cache")
        assert result.returncode == 0, result.stderr
        assert "warning: cache" in result.stderr and "wrong-pw-456" not in result.stderr + result.stdout
        assert not any(t.startswith(locked.host) for i in state["client"].images.list() for t in i.tags)  # no half tag
    finally:
        locked.stop()


def test_push_from_the_cache_mounts_blobs_and_copies_the_manifest(cached_stack: dict, registry: str) -> None:
    state = cached_stack
    env = fresh_runner(state)
    assert run(state, env, "build").returncode == 0 and run(state, env, "test").returncode == 0
    env = fresh_runner(state)  # a publishing job on a fresh runner: the image is only in the cache
    target = f"{registry}/published-{state['prefix']}"
    result = run(state, env, "push", "--registry", target)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("copied from the cache") == 4 and "Pushed" not in result.stderr  # 2 images, 2 tags each
    assert local_tags(state) == set()  # versions and dates from the test records and the cache: nothing pulled
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    served = requests.get(f"http://{registry}/v2/published-{state['prefix']}/leaf/manifests/latest", headers=accept)
    cache_path = state["cache"].split("/", 1)[1]
    tags = requests.get(f"http://{registry}/v2/{cache_path}/tags/list").json()["tags"]
    cached = requests.get(f"http://{registry}/v2/{cache_path}/manifests/{next(t for t in tags if t.startswith('leaf-linux-amd64-') and not t.endswith('-latest'))}",
                          headers=accept)
    assert served.status_code == 200 and served.headers["Docker-Content-Digest"] == cached.headers["Docker-Content-Digest"]
