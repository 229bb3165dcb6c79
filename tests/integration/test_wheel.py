"""The wheel alone is a working `stacks`: built, installed into a fresh venv, run outside this repository.

A stacks.yaml in an empty folder names built-in fragments (jupyterlab,
ipykernel, ...); `stacks plan` must find them in the installed package and
`stacks schema` must print the schema, with no checkout of this repository
in sight. Dependencies come from pip's cache where it has them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = """\
version: 1
bases:
  debian:
    bootstrap: {suite: bookworm, variant: minbase}
    provides: ["os=debian", apt]
images:
  foundation:
    base: debian
    fragments: [debian-os, nb-user, start-scripts]
  python:
    parent: foundation
    fragments:
      - use: python-venv
        params: {version: "3.11"}
  lab:
    parent: python
    fragments: [jupyterlab, ipykernel]
"""


def _not_sources(folder: str, names: list[str]) -> set[str]:
    skipped = {".git", ".venv", "__pycache__", ".pytest_cache"} | ({"build"} if Path(folder) == ROOT else set())
    return {n for n in names if n in skipped or n.endswith(".egg-info")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a clean copy of the work tree: setuptools would reuse a checkout's build/ and *.egg-info."""
    source = tmp_path_factory.mktemp("source") / "repo"
    shutil.copytree(ROOT, source, symlinks=True, ignore=_not_sources)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)], check=True, timeout=600)
    (found,) = out.glob("jupyter_stacks-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory) -> Path:
    """A fresh venv with nothing but the wheel and its dependencies; returns its `stacks`."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(wheel)], check=True, timeout=900)
    return env_dir / "bin" / "stacks"


def run(stacks: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(stacks), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_wheel_carries_the_fragment_library_and_schemas(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix("builder/_data/") for n in names if n.startswith("builder/_data/")}
    in_repo = {str(p.relative_to(ROOT)) for p in (ROOT / "fragments").rglob("*") if p.is_file()}
    in_repo |= {str(p.relative_to(ROOT)) for p in (ROOT / "schema").glob("*.json")}
    assert shipped == in_repo
    assert "builder/build/__init__.py" in names and "builder/check/probes/kernel_probe.py" in names


def test_plan_and_schema_work_outside_the_repository(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "stacks.yaml").write_text(SPEC, encoding="utf-8")
    result = run(installed, "plan", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: [f["name"] for f in row["fragments"]] for row in json.loads(result.stdout)}
    assert rows == {"debian": [], "foundation": ["debian-os", "nb-user", "start-scripts"], "python": ["python-venv"],
                    "lab": ["jupyterlab", "ipykernel"]}
    schema = run(installed, "schema", cwd=tmp_path)
    assert schema.returncode == 0, schema.stderr
    assert json.loads(schema.stdout)["title"] == "stacks.yaml"
    (tmp_path / "stacks.yaml").write_text(SPEC.replace("[jupyterlab, ipykernel]", "[jupyterlab, ipykernell]"), encoding="utf-8")
    unknown = run(installed, "plan", cwd=tmp_path)
    assert unknown.returncode == 2 and "ipykernell" in unknown.stderr and "did you mean 'ipykernel'" in unknown.stderr
