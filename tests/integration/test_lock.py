"""stacks.lock end to end: lock a tiny image that installs an unpinned Python package, rebuild it from the lock
with the build cache off, and find the same packages; a lock entry edited to an older version is what a
rebuild installs, and a lock edited into nonsense is refused at its line."""
from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest

from .conftest import PREFIX, stacks, write_fragment

pytestmark = pytest.mark.integration


@pytest.fixture
def unpinned(tmp_path: Path, client):
    """One image on a bootstrapped bookworm: a venv first on PATH with `requests` installed unpinned."""
    (tmp_path / "stacks.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        settings:
          local_prefix: {PREFIX}
        bases:
          debian:
            bootstrap: {{suite: bookworm}}
            provides: ["os=debian", apt]
        images:
          app:
            base: debian
            fragments: [requests-app]
        """))
    write_fragment(tmp_path, "requests-app", """\
        USER root
        COPY {{ here }}/marker.txt /etc/stacks-marker
        RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null \\
            && rm -rf /var/lib/apt/lists/* && python3 -m venv /opt/venv \\
            && /opt/venv/bin/pip install --no-cache-dir -q requests
        ENV PATH=/opt/venv/bin:${PATH}
        """, "", {"marker.txt": f"lock {uuid.uuid4()}\n"})
    yield tmp_path
    for image in client.images.list(name=f"{PREFIX}/app"):  # only this stack's image name
        if any(tag.startswith(f"{PREFIX}/app:") for tag in image.tags):
            client.images.remove(image.id, force=True)


def packages(client, ref: str) -> dict[str, str]:
    """The image's Python packages, read the way a user would: `docker run IMAGE pip list`."""
    out = client.containers.run(ref, ["python", "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                                remove=True)
    return {row["name"].lower(): row["version"] for row in json.loads(out)}


def app_ref(folder: Path) -> str:
    rows = json.loads((folder / "build" / "report.json").read_text())["images"]
    return next(r["ref"] for r in rows if r["name"] == "app")


def test_a_rebuild_from_the_lock_without_the_build_cache_installs_the_same_packages(unpinned: Path, client) -> None:
    locked = stacks("lock", cwd=unpinned, timeout=1800)
    assert locked.returncode == 0, locked.stderr
    unlocked_ref = app_ref(unpinned)
    before = packages(client, unlocked_ref)
    lock_text = (unpinned / "stacks.lock").read_text()
    entry = json.loads(stacks("plan", "--json", cwd=unpinned).stdout)
    assert '    pip:\n' in lock_text and '      requests: "' in lock_text and "idna" in lock_text, lock_text

    rebuilt = stacks("build", "--no-cache", cwd=unpinned, timeout=1800)
    assert rebuilt.returncode == 0, rebuilt.stderr
    locked_ref = app_ref(unpinned)
    assert locked_ref != unlocked_ref  # the entry is part of the content hash
    assert next(r for r in entry if r["name"] == "app")["local_ref"] == locked_ref
    assert packages(client, locked_ref) == before
    constraints = client.containers.run(locked_ref, ["cat", "/usr/local/share/stacks/constraints.txt"], remove=True)
    assert f"requests=={before['requests']}" in constraints.decode()
    env = client.images.get(locked_ref).attrs["Config"]["Env"]
    assert not any(e.startswith("PIP_CONSTRAINT=") for e in env)  # the constraint ends with the build

    # the OCI labels name the parent exactly, and a label that does not apply is not the parent's
    rows = {r["name"]: r for r in json.loads((unpinned / "build" / "report.json").read_text())["images"]}
    base = client.images.get(rows["debian"]["ref"])
    labels = client.images.get(locked_ref).labels
    assert labels["org.opencontainers.image.base.name"] == rows["debian"]["ref"]
    # the image id, or the registry's digest once the base went through a registry (other tests push it)
    digests = {base.id, *(d.split("@", 1)[1] for d in base.attrs.get("RepoDigests") or [])}
    assert labels["org.opencontainers.image.base.digest"] in digests
    if rows["debian"]["status"] == "built":  # a base of the same hash made earlier keeps the labels it was made with
        assert base.labels["org.opencontainers.image.version"] == "bookworm"  # the bootstrapped base: its suite
    assert labels["org.opencontainers.image.version"] == ""  # no fragment of app names a version

    older = lock_text.replace(f'idna: "{before["idna"]}"', 'idna: "3.6"')
    assert older != lock_text
    (unpinned / "stacks.lock").write_text(older)
    again = stacks("build", "--no-cache", cwd=unpinned, timeout=1800)
    assert again.returncode == 0, again.stderr
    assert packages(client, app_ref(unpinned))["idna"] == "3.6"

    (unpinned / "stacks.lock").write_text(older.replace('idna: "3.6"', "idna: [3, 6]"))
    refused = stacks("build", cwd=unpinned)
    line = older.split("\n").index('      idna: "3.6"') + 1
    assert refused.returncode == 2 and f"stacks.lock:{line}:" in refused.stderr, refused.stderr
