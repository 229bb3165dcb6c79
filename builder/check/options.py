"""What a smoke-test run knows of the machine it runs on, handed in rather than read from the environment."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CheckOptions:
    """Settings every check suite receives.

    `hardware` is what this machine offers checks that `need` it ({"gpu"});
    `chromium` is the configured browser (a name or path; None: look for
    Debian's chromium); screenshots and other artifacts go under `out_dir`.
    """

    out_dir: Path = Path("build")
    hardware: frozenset[str] = frozenset()
    chromium: str | None = None
