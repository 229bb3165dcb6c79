"""`stacks diff` and `stacks sbom` on the command line: local images from the manifest store, pushed ones from a
(fake) registry, and clear errors for a tag that does not exist or an image without an SBOM."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.inventory.manifest import Manifest, Package
from builder.inventory.sbom import to_cyclonedx
from builder.inventory.store import ManifestStore
from tests.unit.fakes import FakeEngine
from tests.unit.test_cli import MINI, run
from tests.unit.test_inventory import WritableRegistry


def _manifest(image_id: str, curl: str) -> Manifest:
    return Manifest(image="lab", hash="h" * 64, image_id=image_id, parent=None, fragments=(), platform="linux/amd64",
                    packages=(Package("deb", "curl", curl, arch="amd64"), Package("pypi", "jupyterlab", "4.2.5", "/opt/venv")))


@pytest.fixture
def here(monkeypatch, tmp_path: Path) -> FakeEngine:
    """Two local images whose manifests were taken already, and a registry with one of them pushed."""
    from builder.app.workspace import Workspace

    engine = FakeEngine()
    engine.add("lab:old", image_id="sha256:" + "1" * 64)
    engine.add("lab:new", image_id="sha256:" + "2" * 64)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    store = ManifestStore(tmp_path / "cache" / "stacks" / "manifests")
    store.put(_manifest("sha256:" + "1" * 64, "7.88.1-10"))
    store.put(_manifest("sha256:" + "2" * 64, "8.14.1-2"))
    monkeypatch.setattr(Workspace, "engine", property(lambda self: engine))
    return engine


def test_diff_json_prints_only_json(capsys, here) -> None:
    code, out, err = run(capsys, "diff", "-f", str(MINI), "lab:old", "lab:new", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["ecosystems"]["deb"]["upgraded"] == [
        {"name": "curl", "environment": "", "before": "7.88.1-10", "after": "8.14.1-2"}]
    code, out, _ = run(capsys, "diff", "-f", str(MINI), "lab:new", "lab:old")
    assert code == 0 and "### Downgraded (1)" in out and "| curl | 8.14.1-2 | 7.88.1-10 |" in out


def test_diff_of_a_local_image_and_a_pushed_tag(capsys, here, monkeypatch) -> None:
    registry = WritableRegistry()
    digest, _ = registry.image("team/lab", ("1.0",), "lab", "2026-01-01T00:00:00Z", {})
    registry.image("team/lab", ("bare",), "lab", "2026-02-01T00:00:00Z", {})  # pushed without stacks: no SBOM
    from builder.inventory.attached import attach_sbom

    attach_sbom(registry, "team/lab", digest, "application/vnd.docker.distribution.manifest.v2+json",  # type: ignore[arg-type]
                to_cyclonedx(_manifest("sha256:" + "1" * 64, "7.88.1-10")).encode())
    monkeypatch.setattr("builder.app.inventory_cmd.Registry", lambda host, credentials: registry)
    code, out, err = run(capsys, "diff", "-f", str(MINI), "127.0.0.1:5000/team/lab:1.0", "lab:new")
    assert code == 0, err
    assert "| curl | 7.88.1-10 | 8.14.1-2 |" in out and "Python" not in out  # jupyterlab is the same on both sides
    code, out, err = run(capsys, "sbom", "-f", str(MINI), "127.0.0.1:5000/team/lab:1.0")
    assert code == 0 and json.loads(out)["bomFormat"] == "CycloneDX"
    code, out, err = run(capsys, "diff", "-f", str(MINI), "127.0.0.1:5000/team/lab:2.0", "lab:new")
    assert code == 2 and "127.0.0.1:5000/team/lab:2.0: no such tag" in err and not out
    code, out, err = run(capsys, "sbom", "-f", str(MINI), "127.0.0.1:5000/team/lab:bare")
    assert code == 2 and "has no SBOM attached" in err and "stacks push" in err


def test_sbom_of_a_local_image_to_a_file(capsys, here, tmp_path: Path) -> None:
    target = tmp_path / "out" / "lab.cdx.json"
    code, out, err = run(capsys, "sbom", "-f", str(MINI), "lab:old", "--out", str(target))
    assert code == 0 and not out and f"wrote {target}" in err
    assert json.loads(target.read_text())["components"][0]["purl"].startswith("pkg:deb/debian/curl@7.88.1-10")
    code, _, err = run(capsys, "sbom", "-f", str(MINI), "lab:missing")
    assert code == 2 and "no image lab:missing here" in err
