"""`stacks cache prune` against Debian's docker-registry on 127.0.0.1: with deletes allowed, and refused.

A stack is built, tested and cached, its leaf released, then its root edited
and everything built and cached again. Pruning with `--keep 0` must remove
exactly the old root (and its test record), and afterwards a fresh runner
(no local images, an empty record store) must still find every image of the
current plan in the cache (0 built, 0 tested) while the released tag still
pulls. A registry without `storage.delete.enabled` refuses: nothing deleted.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest
import requests

from .conftest import RegistryServer, stacks, write_fragment

pytestmark = pytest.mark.integration


def make_stack(folder: Path, cache: str, prefix: str) -> None:
    """debian (bootstrapped) -> root -> leaf (push: true), fresh hashes (a nonce)."""
    (folder / "stacks.yaml").write_text(textwrap.dedent(f"""\
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
    write_root(folder, "one")
    write_fragment(folder, "extra", "RUN echo one > /etc/extra\n",
                   "checks:\n  - {name: extra, run: cat /etc/extra, expect: '^one$'}\n")


def write_root(folder: Path, version: str) -> None:
    """The root's fragment; a new `version` is a new root hash (and so a new leaf hash), with a 2 MB layer."""
    write_fragment(folder, "note", f"RUN echo {{{{ text }}}} > /etc/stacks-note && echo {uuid.uuid4().hex}-{version} > /etc/nonce"
                   " && head -c 2000000 /dev/urandom > /opt/payload\n",
                   "params:\n  text: {type: string}\nchecks:\n  - {name: note, run: cat /etc/stacks-note, expect: '^hello$'}\n")


@pytest.fixture
def stack(tmp_path: Path, client, tmp_path_factory):
    """A stack with a registry of its own (cache and releases on one host, deletes allowed)."""
    server = RegistryServer(tmp_path_factory.mktemp("prune-registry"))
    prefix = f"stacksprune{uuid.uuid4().hex[:6]}"
    state = {"folder": tmp_path, "prefix": prefix, "cache": f"{server.host}/cache-{prefix}", "client": client,
             "runner": 0, "server": server, "release": f"{server.host}/rel-{prefix}"}
    make_stack(tmp_path, state["cache"], prefix)
    yield state
    fresh_runner(state)
    server.stop()


def fresh_runner(state: dict) -> dict:
    """Remove every image this stack's runs made or pulled; a new, empty record store."""
    client = state["client"]
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith((state["prefix"] + "/", state["cache"] + ":", state["release"] + "/")):
                client.images.remove(tag, noprune=False)
    state["runner"] += 1
    return {"XDG_CACHE_HOME": str(state["folder"] / f"runner-{state['runner']}")}


def run(state: dict, env: dict, *args: str) -> subprocess.CompletedProcess:
    result = stacks(*args, cwd=state["folder"], env=env, timeout=900)
    assert result.returncode in (0, 1), result.stderr
    return result


def cache_tags(state: dict) -> set[str]:
    host, path = state["cache"].split("/", 1)
    return set(requests.get(f"http://{host}/v2/{path}/tags/list", timeout=10).json()["tags"])


def statuses(state: dict) -> dict[str, str]:
    report = json.loads((state["folder"] / "build" / "report.json").read_text())
    return {i["name"]: i["status"] for i in report["images"]}


def hashes(state: dict) -> dict[str, str]:
    plan = stacks("plan", "--json", "--platform", "linux/amd64", cwd=state["folder"])  # the platform built here
    return {row["name"]: row["hash"] for row in json.loads(plan.stdout)}


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_prune_removes_the_old_root_and_a_fresh_runner_still_finds_every_image_and_the_release_pulls(stack: dict) -> None:
    state = stack
    env = fresh_runner(state)
    assert run(state, env, "build").returncode == 0 and run(state, env, "test").returncode == 0
    old = hashes(state)
    pushed = run(state, env, "push", "leaf", "--registry", state["release"])
    assert pushed.returncode == 0, pushed.stderr
    released_id = state["client"].images.get(f"{state['prefix']}/leaf:{old['leaf'][:12]}").id

    write_root(state["folder"], "two")
    env = fresh_runner(state)
    assert run(state, env, "build").returncode == 0 and run(state, env, "test").returncode == 0
    new = hashes(state)
    assert new["root"] != old["root"] and new["leaf"] != old["leaf"] and new["debian"] == old["debian"]
    before = cache_tags(state)

    text = run(state, env, "cache", "prune", "--keep", "0", "--registry", state["release"], "--dry-run")
    print(text.stdout)
    assert "dry run: would remove 1 image and 1 test record, " in text.stdout and "nothing was deleted" in text.stdout
    dry = run(state, env, "cache", "prune", "--keep", "0", "--registry", state["release"], "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert [r["tags"] for r in plan["remove"]] == [[f"root-linux-amd64-{old['root']}"]]  # the old leaf is released: it stays
    assert len(plan["remove"][0]["records"]) == 1
    # its own config, manifest and record (with the image's package manifest, some 20 kB); its layers (the 2 MB
    # payload too) are the released old leaf's as well
    assert plan["bytes"]["freed"] < 100_000 and plan["bytes"]["shared_with_kept"] > 2_000_000
    kept = {tag: k["reasons"] for k in plan["kept"] for tag in k["tags"]}
    assert kept[f"leaf-linux-amd64-{old['leaf']}"] == [f"released as {state['release']}/leaf:{old['leaf']}, {state['release']}/leaf:latest"]
    assert "in the current plan" in kept[f"root-linux-amd64-{new['root']}"] and "layer cache (root-linux-amd64-latest)" in kept["root-linux-amd64-latest"]
    assert cache_tags(state) == before  # a dry run deletes nothing

    data = state["server"].data
    size_before = disk_bytes(data)
    pruned = run(state, env, "cache", "prune", "--keep", "0", "--registry", state["release"])
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 1 image and 1 test record" in pruned.stdout
    record = plan["remove"][0]["digest"].replace(":", "-") + ".stacks-test"
    assert cache_tags(state) == before - {f"root-linux-amd64-{old['root']}", record}
    config = state["folder"] / "registry-gc.yml"
    config.write_text((state["server"].folder / "config.yml").read_text())
    subprocess.run([shutil.which("docker-registry") or "docker-registry", "garbage-collect", str(config)],
                   check=True, capture_output=True)
    freed_on_disk = size_before - disk_bytes(data)
    print(f"prune: {plan['bytes']['freed']} bytes announced, {freed_on_disk} bytes freed on disk by garbage-collect")
    assert freed_on_disk >= plan["bytes"]["freed"] * 0.9

    env = fresh_runner(state)  # a fresh runner: the current plan comes from the cache, nothing is built or tested
    rebuilt = run(state, env, "build")
    assert rebuilt.returncode == 0, rebuilt.stderr
    found = statuses(state)
    assert found["root"] == found["leaf"] == "cached" and "built" not in found.values(), found
    tested = run(state, env, "test")
    assert tested.returncode == 0, tested.stderr
    assert "passed root: passed earlier, " in tested.stderr and "passed leaf: passed earlier, " in tested.stderr

    pulled = state["client"].images.pull(f"{state['release']}/leaf", tag="latest")
    assert pulled.id == released_id  # the release still pulls, blob by blob


def test_a_registry_that_refuses_deletes_gets_the_list_and_keeps_everything(stack: dict, tmp_path_factory) -> None:
    state = stack
    locked = RegistryServer(tmp_path_factory.mktemp("no-delete-registry"), delete=False)
    try:
        state["cache"] = f"{locked.host}/cache-{state['prefix']}"
        env = fresh_runner(state)
        assert run(state, env, "build", "--cache", state["cache"]).returncode == 0
        write_root(state["folder"], "two")
        env = fresh_runner(state)
        assert run(state, env, "build", "--cache", state["cache"]).returncode == 0
        before = cache_tags(state)
        result = run(state, env, "cache", "prune", "--cache", state["cache"], "--keep", "0",
                     "--registry", state["release"])
        assert result.returncode == 1
        assert "does not delete manifests through its API: HTTP 405 UNSUPPORTED" in result.stderr
        assert "nothing was deleted" in result.stderr
        listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("sha256:")]
        assert len(listed) == 2  # the old root and the old leaf (no releases here), no records (never tested)
        assert cache_tags(state) == before
    finally:
        locked.stop()
