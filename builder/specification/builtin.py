"""The fragment library and schemas that ship inside the package.

`pip install jupyter-stacks` alone gives a working `stacks`: a stacks.yaml
anywhere may `use: jupyterlab` without copying this repository's fragments/.
The wheel carries them under builder/_data/ (in a checkout those are links to
the repository's fragments/ and schema/, so an editable install reads the
same files). A project's own fragment directories come first, so a project
can override a built-in fragment by giving its folder the same name.
"""
from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "_data"
FRAGMENTS = DATA / "fragments"
SCHEMAS = DATA / "schema"


def search_path(project_dirs: list[Path]) -> list[Path]:
    """The project's fragment directories, then the built-in library unless it is one of them already."""
    if not FRAGMENTS.is_dir() or any(_same(d, FRAGMENTS) for d in project_dirs):
        return list(project_dirs)
    return [*project_dirs, FRAGMENTS]


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
