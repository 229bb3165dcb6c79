"""Output folders and files the tool owns, so `--out` never deletes or overwrites anything else.

A folder written as a whole (rendered contexts, schemas, the hub
configuration) carries a manifest, `.stacks-output`, listing every file the
tool wrote there. The next run may overwrite and delete exactly those files;
it refuses a folder that is not empty and has no manifest, and any file in
it the manifest does not list. A single output file (a graph, a bake file)
is recorded in the manifest of the folder it is written into, which leaves
every other file of that folder alone.

Pure filesystem: no click, problems are `SpecError`s at the path (exit 2).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from collections.abc import Callable

from builder.errors import Location, Problem, SpecError
from builder.files import atomic_write

MANIFEST = ".stacks-output"


class OwnedDir:
    """A folder this run writes as a whole; `finish()` removes what the previous run wrote and this one did not."""

    def __init__(self, root: Path, previous: set[str]):
        self.root = root
        self.previous = previous
        self.written: set[str] = set()

    def write(self, relative: str, data: bytes | str, mode: int | None = None) -> Path:
        """Write one file (parents created); refuses to replace a file this tool did not write."""
        target = self.root / relative
        if relative not in self.previous and os.path.lexists(target):
            raise SpecError([Problem(f"'{relative}' is in the output folder but stacks did not write it; not overwriting it",
                                     Location(target), f"move it away, or choose another --out than {self.root}")])
        _write(target, data.encode("utf-8") if isinstance(data, str) else data, mode)
        self.written.add(relative)
        return target

    def finish(self, prune: bool = True) -> None:
        """Record what was written; with `prune`, delete files of the previous run not written again."""
        stale = sorted(self.previous - self.written) if prune else []
        for relative in stale:
            path = self.root / relative
            if path.is_file() or path.is_symlink():
                path.unlink()
            _remove_empty_parents(path.parent, self.root)
        kept = self.written if prune else self.written | self.previous
        _save_manifest(self.root, kept, exclusive=True)

    def __enter__(self) -> OwnedDir:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.finish(prune=kind is None)  # after a failure nothing is deleted, and what was written stays listed


def claim_dir(root: Path, legacy: Callable[[Path], bool] | None = None,
              user_files: frozenset[str] = frozenset()) -> OwnedDir:
    """Take `root` for writing as a whole: it must not exist, be empty, or have been written by this tool.

    `legacy` recognises a folder written by a version of stacks that kept no manifest; all its
    files then count as written by stacks. `user_files` are names the user is meant to add beside
    the output (the Hub's `.env`): they neither make the folder foreign nor are ever touched.
    """
    root = Path(root)
    if os.path.lexists(root) and not root.is_dir():
        raise SpecError([Problem("the output path is a file, not a folder", Location(root), "pass a folder to --out")])
    _make_dirs(root)
    manifest = _load_manifest(root)
    if manifest is None or not manifest[1]:
        others = sorted(p.name for p in root.iterdir() if p.name != MANIFEST and p.name not in user_files)
        if others and legacy is not None and legacy(root):
            return OwnedDir(root, {p.relative_to(root).as_posix() for p in root.rglob("*")
                                   if (p.is_file() or p.is_symlink()) and p.name != MANIFEST
                                   and p.relative_to(root).as_posix() not in user_files})
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise SpecError([Problem(
                f"the output folder is not empty and was not written by stacks (it holds {shown})", Location(root),
                "choose a new or empty folder for --out; stacks never deletes or overwrites files it did not write")])
        return OwnedDir(root, set())
    return OwnedDir(root, manifest[0])


def write_file(path: Path, data: bytes | str, mode: int | None = None) -> None:
    """Write one output file; refuses to replace a file this tool did not write there."""
    path = Path(path)
    if path.is_dir():
        raise SpecError([Problem("the output path is a folder, not a file", Location(path), "pass a file name to --out")])
    folder = path.parent
    _make_dirs(folder)
    manifest = _load_manifest(folder)
    files, exclusive = manifest if manifest is not None else (set(), False)
    if path.name not in files and os.path.lexists(path):
        raise SpecError([Problem("the output file exists and stacks did not write it; not overwriting it", Location(path),
                                 "remove it, or choose another --out")])
    _write(path, data.encode("utf-8") if isinstance(data, str) else data, mode)
    _save_manifest(folder, files | {path.name}, exclusive)


def _write(target: Path, data: bytes, mode: int | None) -> None:
    """Write through a temporary file and rename, so a failed run never leaves half a file."""
    _make_dirs(target.parent)
    try:
        atomic_write(target, data, mode)
    except OSError as exc:
        raise SpecError([Problem(f"cannot write the output file: {exc.strerror}", Location(target))]) from None


def _make_dirs(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise SpecError([Problem("a part of the output path is a file, not a folder", Location(folder))]) from None
    except OSError as exc:
        raise SpecError([Problem(f"cannot create the output folder: {exc.strerror}", Location(folder))]) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SpecError([Problem("the output folder is not writable", Location(folder))])


def _load_manifest(folder: Path) -> tuple[set[str], bool] | None:
    """(files, written as a whole) from the folder's manifest; None when it has none (or one not of this tool)."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = {str(f) for f in data["files"] if _inside(str(f))}
        return files, bool(data.get("exclusive"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _inside(relative: str) -> bool:
    """A listed path may only name something below the folder (a manifest is input too)."""
    parts = Path(relative).parts
    return bool(parts) and not Path(relative).is_absolute() and ".." not in parts and relative != MANIFEST


def _save_manifest(folder: Path, files: set[str], exclusive: bool) -> None:
    text = json.dumps({"written-by": "stacks", "exclusive": exclusive, "files": sorted(files)}, indent=1) + "\n"
    _write(folder / MANIFEST, text.encode("utf-8"), None)


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
