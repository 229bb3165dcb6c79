"""Package manifests, SBOMs and diffs of real images: built, tested, pushed to docker-registry on 127.0.0.1.

A tiny stack (a bootstrapped bookworm, then a venv with one pinned package)
is built twice with two versions of that package. `stacks test` reads each
image's manifest without starting anything in it; `stacks push` attaches
the SBOM to the pushed manifest (docker-registry 2.x has no referrers API:
the tag-schema fallback); `stacks sbom` finds it again and `stacks diff`
reports the upgrade.
"""
from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest
import requests

from .conftest import PREFIX, stacks, write_fragment

pytestmark = pytest.mark.integration


def _stack(folder: Path, six: str, nonce: str) -> None:
    (folder / "stacks.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        settings:
          local_prefix: {PREFIX}
          tags: ["{{{{ variant }}}}"]
        bases:
          debian:
            bootstrap: {{suite: bookworm}}
            provides: ["os=debian", apt]
        images:
          inv-root:
            base: debian
            fragments: [marker]
            push: false
          inv-app:
            parent: inv-root
            fragments: [pip-six]
        """))
    write_fragment(folder, "marker", "COPY {{ here }}/marker.txt /etc/stacks-marker\n",
                   "provides: [marker]\n", {"marker.txt": f"inventory {nonce}\n"})
    write_fragment(folder, "pip-six", f"""\
        RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null \\
            && python3 -m venv /opt/tool && /opt/tool/bin/pip install --no-cache-dir -q six=={six} \\
            && rm -rf /var/lib/apt/lists/*
        """, 'requires: [marker]\nversions: {six: "/opt/tool/bin/python -c \'import six; print(six.__version__)\'"}\n')


def _built_and_tested(folder: Path) -> dict:
    built = stacks("build", "inv-app", "--out", "build", cwd=folder)
    assert built.returncode == 0, built.stderr
    tested = stacks("test", "inv-app", "--out", "build", cwd=folder)
    assert tested.returncode == 0, tested.stderr
    assert "manifests and SBOMs" in tested.stderr
    report = json.loads((folder / "build" / "report.json").read_text())
    return {image["name"]: image["ref"] for image in report["images"]}


def test_manifest_sbom_in_the_registry_and_diff(tmp_path: Path, registry: str, client) -> None:
    nonce = uuid.uuid4().hex
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    _stack(old, "1.16.0", nonce)
    _stack(new, "1.17.0", nonce)
    old_refs = _built_and_tested(old)
    new_refs = _built_and_tested(new)
    try:
        manifest = json.loads((new / "build" / "manifests" / "inv-app.json").read_text())
        pypi = {(p["environment"], p["name"]): p["version"] for p in manifest["packages"] if p["ecosystem"] == "pypi"}
        assert pypi[("/opt/tool", "six")] == "1.17.0"
        assert any(p["ecosystem"] == "deb" and p["name"] == "python3-venv" for p in manifest["packages"])
        assert manifest["versions"] == {"six": "1.17.0"} and manifest["parent"] == "inv-root"
        assert manifest["fragments"] == ["pip-six"] and manifest["platform"].startswith("linux/")
        assert "inv-app" in (new / "build" / "report.md").read_text().split("manifests/inv-app.md")[0]

        again = stacks("test", "inv-app", "--force", "--out", "build2", cwd=new)  # the same image: not read again
        assert again.returncode == 0, again.stderr
        assert json.loads((new / "build2" / "manifests" / "inv-app.json").read_text())["read"] == manifest["read"]

        result = stacks("push", "inv-app", "--registry", f"{registry}/inventory", "--out", "build", cwd=new)
        assert result.returncode == 0, result.stderr
        assert "SBOM" in result.stderr
        published = json.loads((new / "build" / "push-manifest.json").read_text())["images"][0]
        pushed = [f"{published['repository']}:{tag}" for tag in published["tags"]]
        fallback = requests.get(f"http://{registry}/v2/inventory/inv-app/tags/list", timeout=30).json()["tags"]
        assert any(tag.startswith("sha256-") for tag in fallback), fallback

        got = stacks("sbom", pushed[0], "--out", str(tmp_path / "pushed.cdx.json"), cwd=new)
        assert got.returncode == 0, got.stderr
        assert (tmp_path / "pushed.cdx.json").read_text() == (new / "build" / "manifests" / "inv-app.cdx.json").read_text()

        changed = stacks("diff", old_refs["inv-app"], pushed[0], cwd=new)
        assert changed.returncode == 0, changed.stderr
        assert "| six (/opt/tool) | 1.16.0 | 1.17.0 |" in changed.stdout
        as_json = json.loads(stacks("diff", "--json", old_refs["inv-app"], new_refs["inv-app"], cwd=new).stdout)
        assert as_json["ecosystems"]["pypi"]["upgraded"][0]["after"] == "1.17.0"

        missing = stacks("diff", old_refs["inv-app"], f"{registry}/inventory/inv-app:no-such-tag", cwd=new)
        assert missing.returncode == 2 and "no such tag" in missing.stderr and "Traceback" not in missing.stderr
        bare = stacks("sbom", f"{registry}/inventory/nothing:1", cwd=new)
        assert bare.returncode == 2 and "no such tag" in bare.stderr
    finally:  # the local references pushing left behind, also after a failure part-way
        for image in client.images.list():
            for ref in image.tags:
                if ref.startswith(f"{registry}/inventory/"):
                    client.images.remove(ref)
