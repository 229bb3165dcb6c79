"""A stacks.yaml outside this repository uses the fragment library that ships with the package."""
from __future__ import annotations

import shutil
from pathlib import Path

from builder.specification.builtin import FRAGMENTS, SCHEMAS, search_path
from builder.specification.load import load_spec

SPEC = """\
version: 1
bases:
  debian:
    bootstrap: {suite: bookworm, variant: minbase}
    provides: ["os=debian", apt]
images:
  foundation: {base: debian, fragments: [debian-os, nb-user, start-scripts]}
"""


def test_the_package_carries_the_library_and_the_schemas() -> None:
    assert (FRAGMENTS / "jupyterlab" / "fragment.yaml").is_file()
    assert {p.name for p in SCHEMAS.glob("*.json")} == {"stacks.schema.json", "fragment.schema.json"}


def test_a_project_elsewhere_finds_the_built_in_fragments(tmp_path: Path) -> None:
    (tmp_path / "stacks.yaml").write_text(SPEC, encoding="utf-8")
    spec = load_spec(tmp_path / "stacks.yaml")
    assert spec.library.fragments["debian-os"].folder.resolve() == (FRAGMENTS / "debian-os").resolve()


def test_the_projects_own_fragment_wins_over_the_built_in_one(tmp_path: Path) -> None:
    (tmp_path / "stacks.yaml").write_text(SPEC, encoding="utf-8")
    own = tmp_path / "fragments" / "nb-user"
    shutil.copytree(FRAGMENTS / "nb-user", own)
    spec = load_spec(tmp_path / "stacks.yaml")
    assert spec.library.fragments["nb-user"].folder == own
    assert spec.library.fragments["debian-os"].folder.resolve() == (FRAGMENTS / "debian-os").resolve()


def test_the_library_is_searched_once_when_the_project_is_this_repository() -> None:
    assert search_path([FRAGMENTS]) == [FRAGMENTS]
    assert search_path([Path("elsewhere")]) == [Path("elsewhere"), FRAGMENTS]
