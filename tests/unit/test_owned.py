"""Output folders and files: stacks writes, overwrites and deletes only what it wrote itself."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.errors import SpecError
from builder.owned import MANIFEST, claim_dir, write_file


def test_a_new_folder_is_claimed_and_its_files_listed(tmp_path: Path) -> None:
    with claim_dir(tmp_path / "out") as owned:
        owned.write("a/b.txt", "x")
    assert (tmp_path / "out" / "a" / "b.txt").read_text() == "x"
    assert "a/b.txt" in (tmp_path / "out" / MANIFEST).read_text()


def test_the_next_run_removes_only_its_own_stale_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with claim_dir(out) as owned:
        owned.write("old/file", "1")
        owned.write("kept", "1")
    with claim_dir(out) as owned:
        owned.write("kept", "2")
    assert not (out / "old").exists() and (out / "kept").read_text() == "2"


def test_a_foreign_non_empty_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("mine")
    with pytest.raises(SpecError, match="not empty and was not written by stacks"):
        claim_dir(docs)
    assert (docs / "index.md").read_text() == "mine" and not (docs / MANIFEST).exists()


def test_a_file_put_into_an_owned_folder_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with claim_dir(out) as owned:
        owned.write("a", "1")
    (out / "b").write_text("user's")
    with pytest.raises(SpecError, match="did not write it"), claim_dir(out) as owned:
        owned.write("b", "2")
    assert (out / "b").read_text() == "user's" and (out / "a").exists()  # a failed run deletes nothing


def test_out_pointing_at_a_file_is_an_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(SpecError, match="is a file, not a folder"):
        claim_dir(target)
    with pytest.raises(SpecError, match="part of the output path is a file"):
        claim_dir(target / "below")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_folder_is_an_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(SpecError, match=r"not writable|cannot"):
        claim_dir(locked / "out")


def test_a_single_file_replaces_only_what_stacks_wrote(tmp_path: Path) -> None:
    write_file(tmp_path / "graph.svg", "1")
    write_file(tmp_path / "graph.svg", "2")
    assert (tmp_path / "graph.svg").read_text() == "2"
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SpecError, match="did not write it"):
        write_file(tmp_path / "notes.txt", "x")
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(SpecError, match="is a folder"):
        write_file(tmp_path, "x")


def test_a_manifest_cannot_make_stacks_delete_outside_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    victim = tmp_path / "victim"
    victim.write_text("keep")
    with claim_dir(out) as owned:
        owned.write("a", "1")
    (out / MANIFEST).write_text('{"exclusive": true, "files": ["../victim", "/etc/passwd", "a"]}')
    with claim_dir(out) as owned:
        pass
    assert victim.read_text() == "keep"


def test_a_legacy_folder_is_adopted_when_recognised(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("x")
    with claim_dir(out, legacy=lambda folder: True) as owned:
        owned.write("new", "y")
    assert not (out / "old").exists()


def test_files_the_user_is_meant_to_add_are_neither_foreign_nor_touched(tmp_path: Path) -> None:
    out = tmp_path / "hub"
    out.mkdir()
    (out / ".env").write_text("SECRET=1\n")
    with claim_dir(out, user_files=frozenset({".env"})) as owned:
        owned.write("compose.yaml", "a\n")
    with claim_dir(out, user_files=frozenset({".env"})) as owned:
        owned.write("other.yaml", "b\n")
    assert (out / ".env").read_text() == "SECRET=1\n"
    assert not (out / "compose.yaml").exists() and (out / "other.yaml").exists()
