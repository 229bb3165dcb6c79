"""Which hadolint settings judge a finding: the library's for its own fragments, the project's for the rest.

The built-in fragments are written against the hadolint settings that ship
with them (`builder/_data/hadolint.yaml`; in a checkout, a link to the
repository's `.hadolint.yaml`): the Debian suite is the apt pin, fragments
switch to `USER ${NB_UID}`, and so on. A project that uses them with no
`.hadolint.yaml` of its own must get a clean lint, and a project's own
`.hadolint.yaml` must not have to copy the library's reasons. So:

- a finding in a built-in fragment, or on a line stacks writes itself (the
  `FROM` and `ARG` lines), is dropped when the library's settings or the
  project's ignore its rule;
- a finding in one of the project's own fragments (including one that
  replaces a built-in fragment of the same name) is judged by the project's
  `.hadolint.yaml` alone;
- every other setting of the project's file (`failure-threshold`,
  `override`, `trustedRegistries`, ...) applies to the whole run.

hadolint runs with the project's settings without `ignored` (the filtering
above is done on its answer), always from a file stacks writes, so a
`.hadolint.yaml` in the working directory or the home folder never joins in.
"""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from builder.specification.builtin import DATA, FRAGMENTS

PROJECT_CONFIG = ".hadolint.yaml"
LIBRARY_CONFIG = DATA / "hadolint.yaml"
LEVELS = ("style", "info", "warning", "error")


@dataclass(frozen=True)
class HadolintSettings:
    project: dict[str, Any] | None  # the project's .hadolint.yaml; None: it has none, or it is not a mapping
    project_file: Path | None  # the project's file when it exists (given to hadolint as it is if it is not a mapping)
    library_ignored: frozenset[str]

    @classmethod
    def beside(cls, spec_path: Path) -> HadolintSettings:
        """The settings for a stacks.yaml: its folder's .hadolint.yaml and the library's."""
        project_file = spec_path.parent / PROJECT_CONFIG
        library = _mapping(LIBRARY_CONFIG) or {}
        return cls(_mapping(project_file), project_file if project_file.is_file() else None, _ignored(library))

    @property
    def project_ignored(self) -> frozenset[str]:
        return _ignored(self.project or {})

    @property
    def threshold(self) -> str:
        """The project's `failure-threshold` (default: info and worse fail)."""
        value = (self.project or {}).get("failure-threshold", "info")
        return value if value in LEVELS else "info"

    def ignores(self, code: str, library_line: bool) -> bool:
        """Whether the settings that judge this line drop a finding of rule `code`."""
        return code in self.project_ignored or (library_line and code in self.library_ignored)

    @contextlib.contextmanager
    def config_file(self) -> Iterator[Path]:
        """The file hadolint reads: the project's settings without `ignored`, or its file as it is when that
        is not a mapping (hadolint then says what is wrong with it)."""
        if self.project is None and self.project_file is not None:
            yield self.project_file
            return
        settings = {k: v for k, v in (self.project or {}).items() if k != "ignored"}
        with tempfile.TemporaryDirectory(prefix="stacks-hadolint-") as folder:
            path = Path(folder) / "hadolint.yaml"
            path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
            yield path


def is_library(folder: Path | None) -> bool:
    """Whether a fragment folder belongs to the built-in library (None: a line stacks writes itself)."""
    if folder is None:
        return True
    try:
        return folder.resolve().is_relative_to(FRAGMENTS.resolve())
    except OSError:
        return False


def _mapping(path: Path) -> dict[str, Any] | None:
    """The settings in a file: {} when it is empty, None when it is missing or not a mapping."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if data is None and path.is_file():
        return {}
    return data if isinstance(data, dict) else None


def _ignored(settings: dict[str, Any]) -> frozenset[str]:
    value = settings.get("ignored") or []
    return frozenset(str(v) for v in value) if isinstance(value, list) else frozenset()
