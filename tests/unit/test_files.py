"""Whole-or-nothing writes."""
from __future__ import annotations

from pathlib import Path

import pytest

from builder.files import atomic_write


def test_a_write_replaces_the_file_whole_with_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    atomic_write(target, "new", 0o600)
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o600
    atomic_write(target, b"\x00bytes")
    assert target.read_bytes() == b"\x00bytes" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic_write(target, 42)  # type: ignore[arg-type]
    (tmp_path / "folder").mkdir()
    with pytest.raises(OSError):
        atomic_write(tmp_path / "folder", "a file over a folder")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["folder", "report.json"]
