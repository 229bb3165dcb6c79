"""A contributor's path, for real: `stacks new kernel` -> `stacks lint` -> `stacks build` -> `stacks test`.

Runs on a copy of the project's stacks.yaml and fragments (never the real
files), on the real engine, on top of the reference images (the new image's
parent, lab-bookworm, is cached from the `reference` build).
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from .conftest import ROOT, stacks

CA = {"STACKS_CA_CERTS": os.environ.get("STACKS_CA_CERTS") or "/etc/ssl/certs/ca-certificates.crt"}


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    for name in ("stacks.yaml", ".hadolint.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("fragments", "schema"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def test_scaffold_lints_builds_and_passes_its_smoke_test(reference: dict, project_copy: Path, client) -> None:
    name = f"it{uuid.uuid4().hex[:8]}"  # a new fragment name gives a new content hash: really built
    variant = f"lab-{name}-bookworm"
    spec = str(project_copy / "stacks.yaml")
    out = project_copy / "build"
    try:
        made = stacks("new", "kernel", name, "-f", spec, cwd=project_copy)
        assert made.returncode == 0, made.stderr + made.stdout
        assert (project_copy / "fragments" / f"kernel-{name}" / "fragment.yaml").is_file()
        assert (ROOT / "fragments" / f"kernel-{name}").exists() is False

        linted = stacks("lint", "-f", spec, cwd=project_copy)
        assert linted.returncode == 0, linted.stderr
        assert "no problems" in linted.stderr

        built = stacks("build", "-f", spec, variant, "--out", str(out), cwd=project_copy, env=CA, timeout=1800)
        assert built.returncode == 0, built.stderr + (out / "report.md").read_text()
        rows = {row["name"]: row for row in json.loads((out / "report.json").read_text())["images"]}
        assert rows[variant]["status"] == "built"
        assert rows["lab-bookworm"]["status"] == "cached"
        assert rows["lab-bookworm"]["ref"] == reference["lab-bookworm"]["ref"]  # same parent as the project's own

        tested = stacks("test", "--force", "-f", spec, variant, "--out", str(out), cwd=project_copy, timeout=1800)
        assert tested.returncode == 0, tested.stderr + tested.stdout
        report = json.loads((out / "test-report.json").read_text())
        kernel = [c for c in report["checks"] if c["image"] == variant and c["kind"] == "kernel"]
        assert kernel and all(c["status"] == "passed" for c in kernel), kernel
        assert f"kernel-{name}" in {c["fragment"] for c in kernel}
        assert report["images"][variant]["passed"] is True
    finally:
        for image in client.images.list(filters={"label": f"io.stacks.name={variant}"}):
            client.images.remove(image.id, force=True)
