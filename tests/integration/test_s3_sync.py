"""The s3-sync fragment against a real S3-compatible server (moto's server mode) on 127.0.0.1.

The image `persistent-bookworm` (the lab chain plus s3-sync, named and layered as in the
project's stacks.yaml so both builds share it) is built from a temporary stacks.yaml that
reads the repository's fragments; its containers run on the host network, so they reach
the server as an operator's containers reach a bucket:

- a fresh container restores the folder before the server starts (as a uid set at start too);
- files created, changed, renamed and deleted in the container reach the bucket within seconds;
- `docker stop` uploads what was still waiting for its debounce;
- a second fresh container gets the state the first one left;
- the secret is in no log, no file of the container (docker export), not in the image,
  and not in the server's environment;
- without S3_SYNC_URL nothing runs and the server starts as without the fragment;
- an unreachable store stops the start (or, with S3_SYNC_REQUIRED=no, the server starts unsynced);
- `stacks test` passes the fragment's declared checks.
"""
from __future__ import annotations

import contextlib
import json
import secrets
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
import requests

from .conftest import PREFIX, ROOT, stacks

try:
    import boto3
except ImportError as exc:  # fail, never skip: a missing test dependency must not pass as green
    raise ImportError("the s3-sync tests need moto[server] (pip install -e '.[test]')") from exc

pytestmark = pytest.mark.integration
LABEL = "io.stacks.test"
RUN = f"s3-sync-{uuid.uuid4().hex[:8]}"
IMAGE = "persistent-bookworm"
SECRET = "s3sync-" + secrets.token_urlsafe(24)
KEY_ID = "AKIA" + secrets.token_hex(8).upper()
QUICK = 10.0  # "within seconds": every change must reach the bucket (or the folder) this fast


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Seconds until `condition()` is truthy; fails with `what` after `timeout`."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)


# --- the S3 server -----------------------------------------------------------------------------


class Store:
    """moto's S3 server on 127.0.0.1 (in memory; any credentials are accepted)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                                   aws_access_key_id="test", aws_secret_access_key="test")
        try:
            wait_for(self._answers, 60, "moto_server answers")
        except AssertionError:
            self.stop()
            raise

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("moto_server exited (is moto[server] installed?)")
        try:
            self.client.list_buckets()
            return True
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    def bucket(self) -> str:
        name = f"s3sync-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> set[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {item["Key"][len(prefix):] for page in pages for item in page.get("Contents", [])}

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Key (relative to `prefix`) -> content, of the objects that still exist when read."""
        found = {}
        for key in self.keys(bucket, prefix):
            with contextlib.suppress(self.client.exceptions.NoSuchKey):
                found[key] = self.client.get_object(Bucket=bucket, Key=prefix + key)["Body"].read()
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def store() -> Store:
    server = Store()
    yield server
    server.stop()


# --- the image and its containers --------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Path:
    """A stacks.yaml with the reference chain (so the base and the parent images are the ones
    the reference build shares) and s3-sync on top, reading the repository's fragments."""
    folder = tmp_path_factory.mktemp("s3sync-stack")
    (folder / "stacks.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        settings:
          fragments: [{ROOT / "fragments"}]
        axes:
          os:
            bookworm: {{python: "3.11"}}
        bases:
          debian:
            bootstrap: {{suite: "{{{{ os }}}}", variant: minbase}}
            provides: ["os=debian", apt]
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
          persistent:
            parent: lab
            fragments: [s3-sync]
        """))
    return folder


@pytest.fixture(scope="module")
def image(stack: Path, client) -> str:
    result = stacks("build", IMAGE, "--out", str(stack / "build"), cwd=stack, timeout=3600)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads((stack / "build" / "report.json").read_text())["images"]
    return next(row for row in rows if row["name"] == IMAGE)["ref"]


class Containers:
    """Starts containers of the image on the host network, each labelled and named for this
    run, and removes exactly those."""

    def __init__(self, client, image: str):
        self.client, self.image, self.started = client, image, []

    def run(self, env: dict[str, str], user: str = "", command: list[str] | None = None):
        port = _free_port()
        container = self.client.containers.run(
            self.image, command, detach=True, network_mode="host", user=user,
            name=f"{PREFIX}-{RUN}-{len(self.started)}", labels={LABEL: RUN},
            environment={"JUPYTER_PORT": str(port), "JUPYTER_TOKEN": "s3sync-test-token", **env})
        container.port = port
        self.started.append(container)
        return container

    def remove_all(self) -> None:
        for container in self.started:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


@pytest.fixture(scope="module")
def containers(client, image: str) -> Containers:
    made = Containers(client, image)
    yield made
    made.remove_all()


def sync_env(store: Store, bucket: str, **extra: str) -> dict[str, str]:
    return {"S3_SYNC_URL": f"s3://{bucket}/team/alice", "S3_SYNC_ENDPOINT": store.endpoint,
            "S3_SYNC_ACCESS_KEY_ID": KEY_ID, "S3_SYNC_SECRET_ACCESS_KEY": SECRET, "S3_SYNC_DEBOUNCE": "1", **extra}


def logs(container) -> str:
    return container.logs().decode(errors="replace")


def sh(container, script: str, user: str = "1000") -> str:
    code, out = container.exec_run(["bash", "-c", script], user=user)
    text = out.decode(errors="replace")
    assert code == 0, f"{script!r} exited {code}: {text}"
    return text


def watching(container) -> None:
    """Waits for the watcher's start line; fails with the logs if the container exits first."""
    def ready() -> bool:
        container.reload()
        if container.status == "exited":
            raise AssertionError(f"the container exited: {logs(container)}")
        return "[s3-sync] watching" in logs(container)
    wait_for(ready, 120, "the s3-sync watcher starts")


def server_answers(container) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{container.port}/api", timeout=2).status_code == 200
    except requests.RequestException:
        return False


# --- behaviour ---------------------------------------------------------------------------------


def test_restore_sync_and_restore_again(store: Store, containers: Containers) -> None:
    bucket = store.bucket()
    prefix = "team/alice/"
    store.client.put_object(Bucket=bucket, Key=prefix + "notes/seed.txt", Body=b"from the bucket\n")
    store.client.put_object(Bucket=bucket, Key=prefix + "data/nested/deep.csv", Body=b"a,b\n1,2\n",
                            Metadata={"mtime": "1700000000.250000000", "mode": "0755"})
    store.client.put_object(Bucket=bucket, Key="team/bob/other.txt", Body=b"not alice's\n")

    first = containers.run(sync_env(store, bucket))
    watching(first)
    wait_for(lambda: server_answers(first), 60, "the server answers")
    log = logs(first)
    assert log.index("[s3-sync] restored 2 file(s)") < log.index("ServerApp"), "the restore must finish before the server starts"
    assert sh(first, "cat ~/work/notes/seed.txt") == "from the bucket\n"
    assert sh(first, "stat -c '%U %a %Y' ~/work/data/nested/deep.csv").split() == ["jovyan", "755", "1700000000"]
    assert "other.txt" not in sh(first, "ls -R ~/work")

    sh(first, "echo v1 > ~/work/new.txt && mkdir -p ~/work/sub/dir && echo x > ~/work/sub/dir/x.txt")
    took = wait_for(lambda: {"new.txt", "sub/dir/x.txt"} <= store.keys(bucket, prefix), QUICK,
                    "created files reach the bucket")
    print(f"created files in the bucket after {took:.1f} s")
    assert store.objects(bucket, prefix)["new.txt"] == b"v1\n"

    sh(first, "echo v2 >> ~/work/new.txt")
    wait_for(lambda: store.objects(bucket, prefix).get("new.txt") == b"v1\nv2\n", QUICK, "a change reaches the bucket")

    sh(first, "rm ~/work/notes/seed.txt && rm -r ~/work/sub")
    wait_for(lambda: not {"notes/seed.txt", "sub/dir/x.txt"} & store.keys(bucket, prefix), QUICK,
             "deletions reach the bucket")

    sh(first, "mv ~/work/new.txt ~/work/renamed.txt && mkdir ~/work/moved && mv ~/work/data ~/work/moved/")
    wait_for(lambda: store.keys(bucket, prefix) == {"renamed.txt", "moved/data/nested/deep.csv"}, QUICK,
             "renames of a file and of a folder reach the bucket")
    sh(first, "echo checkpoint > ~/work/.ipynb_checkpoints-probe; mkdir -p ~/work/.ipynb_checkpoints "
              "&& echo x > ~/work/.ipynb_checkpoints/a-checkpoint.ipynb && echo x > ~/work/.~scratch")
    first.stop(timeout=30)
    objects = store.objects(bucket, prefix)
    assert ".ipynb_checkpoints/a-checkpoint.ipynb" not in objects and ".~scratch" not in objects
    assert store.objects(bucket, "team/bob/") == {"other.txt": b"not alice's\n"}

    # A fresh container, started as root with another uid, gets the state the first one left.
    second = containers.run(sync_env(store, bucket, NB_UID="1234"), user="root")
    watching(second)
    tree = sh(second, "cd ~/work && find . -type f -printf '%P\\n'")
    assert sorted(tree.split()) == [".ipynb_checkpoints-probe", "moved/data/nested/deep.csv", "renamed.txt"], tree
    assert sh(second, "cat ~/work/renamed.txt") == "v1\nv2\n"
    assert sh(second, "id -u", user="1234").strip() == "1234"
    assert sh(second, "stat -c %u ~/work/renamed.txt") == "1234\n", "restored files belong to NB_UID"
    sh(second, "echo from-second > ~/work/second.txt", user="1234")
    wait_for(lambda: store.objects(bucket, prefix).get("second.txt") == b"from-second\n", QUICK,
             "the second container syncs as NB_UID")


def test_docker_stop_uploads_what_is_still_pending(store: Store, containers: Containers) -> None:
    bucket = store.bucket()
    container = containers.run(sync_env(store, bucket, S3_SYNC_DEBOUNCE="120"))
    watching(container)
    wait_for(lambda: server_answers(container), 60, "the server answers")
    sh(container, "for i in $(seq 1 20); do echo $i > ~/work/late-$i.txt; done")
    time.sleep(1)
    assert not store.keys(bucket), "nothing may be uploaded before the debounce ends"
    container.stop(timeout=30)
    assert store.keys(bucket, "team/alice/") == {f"late-{i}.txt" for i in range(1, 21)}
    assert "stopped after flushing 20 pending change(s)" in logs(container)
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0, "the server, held during the flush, then shuts down cleanly"


def test_the_secret_leaks_nowhere(store: Store, containers: Containers, client, image: str) -> None:
    bucket = store.bucket()
    store.client.put_object(Bucket=bucket, Key="team/alice/in.txt", Body=b"restored\n")
    container = containers.run(sync_env(store, bucket, S3_SYNC_LOG="debug"))
    watching(container)
    wait_for(lambda: server_answers(container), 60, "the server answers")
    # What a notebook or terminal of the server inherits (docker exec gets the container's
    # configuration instead), written where it is synced.
    server_env = sh(container, "pid=$(python -c 'import glob, json; print(json.load(open(glob.glob("
                               "\"/home/jovyan/.local/share/jupyter/runtime/jpserver-*.json\")[0]))[\"pid\"])') "
                               "&& tr '\\0' '\\n' < /proc/$pid/environ | tee ~/work/env-of-the-server.txt")
    sh(container, "echo out > ~/work/out.txt")
    wait_for(lambda: {"out.txt", "env-of-the-server.txt"} <= store.keys(bucket, "team/alice/"), QUICK,
             "uploads happen")
    assert "S3_SYNC_URL=" in server_env
    assert SECRET not in server_env and "S3_SYNC_SECRET_ACCESS_KEY" not in server_env and KEY_ID not in server_env
    container.stop(timeout=30)

    log = logs(container)
    assert "[s3-sync] uploaded out.txt" in log
    assert SECRET not in log and KEY_ID not in log
    assert SECRET.encode() not in b"".join(store.objects(bucket).values())

    found = []
    tail = b""
    for chunk in container.export(chunk_size=1 << 20):
        window = tail + chunk
        if SECRET.encode() in window:
            found.append(len(found))
        tail = window[-len(SECRET):]
    assert not found, "the secret is written somewhere in the container's filesystem"

    passed = [e for e in container.attrs["Config"]["Env"] if SECRET in e]
    assert passed == [f"S3_SYNC_SECRET_ACCESS_KEY={SECRET}"], "docker inspect shows only what the user passed"
    described = json.dumps(client.api.inspect_image(image)) + json.dumps(client.api.history(image))
    assert SECRET not in described and "SECRET_ACCESS_KEY=" not in described


def test_without_url_nothing_is_synced(store: Store, containers: Containers) -> None:
    bucket = store.bucket()
    env = sync_env(store, bucket)
    del env["S3_SYNC_URL"]
    container = containers.run(env)
    wait_for(lambda: server_answers(container), 120, "the server answers")
    sh(container, "mkdir -p ~/work && echo local > ~/work/local.txt")
    time.sleep(3)
    assert store.objects(bucket) == {}
    assert "[s3-sync]" not in logs(container)
    processes = sh(container, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert "s3-sync" not in processes and "jupyter-lab" in processes


def test_an_unreachable_store_stops_the_start_unless_not_required(store: Store, containers: Containers) -> None:
    nowhere = {"S3_SYNC_ENDPOINT": f"http://127.0.0.1:{_free_port()}"}
    strict = containers.run(sync_env(store, "s3sync-nowhere", **nowhere))
    assert strict.wait(timeout=180)["StatusCode"] == 1
    log = logs(strict)
    assert "[s3-sync] ERROR: restore failed" in log and "Not starting" in log
    assert "running as jovyan" not in log

    lenient = containers.run(sync_env(store, "s3sync-nowhere", S3_SYNC_REQUIRED="no", **nowhere))
    wait_for(lambda: server_answers(lenient), 180, "the server starts without sync")
    assert "Starting WITHOUT sync" in logs(lenient)
    assert "s3-sync" not in sh(lenient, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")


def test_stacks_test_passes_the_fragment_checks(stack: Path, image: str) -> None:
    result = stacks("test", "--force", IMAGE, "--out", str(stack / "build"), cwd=stack, timeout=1800)
    report = json.loads((stack / "build" / "test-report.json").read_text())
    ours = {c["name"]: c["status"] for c in report["checks"] if c.get("fragment") == "s3-sync"}
    assert len(ours) >= 9 and set(ours.values()) == {"passed"}, ours
    assert result.returncode == 0, result.stdout + result.stderr


def test_aliyun_oss_variables_alone_restore_and_sync(store: Store, containers: Containers) -> None:
    """The GPU cloud seed's persistence variables, and no S3_SYNC_* at all: restore, sync, and the
    key pair gone from the server's environment."""
    bucket = store.bucket()
    store.client.put_object(Bucket=bucket, Key="seed/alice/from-oss.txt", Body=b"restored\n")
    env = {"ALIYUN_OSS_BUCKET_FOLDER": f"oss://{bucket}/seed/alice", "ALIYUN_OSS_ACCESS_KEY_ID": KEY_ID,
           "ALIYUN_OSS_ACCESS_KEY_SECRET": SECRET, "ALIYUN_OSS_ENDPOINT": store.endpoint, "ALIYUN_OSS_REGION": "oss-cn-hangzhou"}
    container = containers.run(env)
    watching(container)
    wait_for(lambda: server_answers(container), 60, "the server answers")
    assert sh(container, "cat ~/work/from-oss.txt") == "restored\n"
    sh(container, "echo synced > ~/work/back.txt")
    wait_for(lambda: store.objects(bucket, "seed/alice/").get("back.txt") == b"synced\n", QUICK, "a new file reaches the bucket")
    assert SECRET not in logs(container) and KEY_ID not in logs(container)
    server_env = sh(container, "pid=$(python -c 'import glob, json; print(json.load(open(glob.glob("
                               "\"/home/jovyan/.local/share/jupyter/runtime/jpserver-*.json\")[0]))[\"pid\"])') "
                               "&& tr '\\0' '\\n' < /proc/$pid/environ")
    assert "ALIYUN_OSS_BUCKET_FOLDER=" in server_env, "the server's environment was not read"
    assert SECRET not in server_env and KEY_ID not in server_env and "ALIYUN_OSS_ACCESS_KEY_SECRET" not in server_env
