"""Fixtures of the unit tests; the helpers themselves live in helpers.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest

from .helpers import make_stack


@pytest.fixture
def stack(tmp_path: Path) -> Callable[..., Path]:
    """Write a stack into a fresh folder of tmp_path; returns the stacks.yaml path."""
    counter = [0]

    def make(spec: str | dict, fragments: dict[str, dict[str, Any]] | None = None, *, basic: bool = True) -> Path:
        counter[0] += 1
        return make_stack(tmp_path / f"stack{counter[0]}", spec, fragments, basic=basic)

    return make
