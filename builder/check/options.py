"""What a smoke-test run knows of the machine it runs on, handed in rather than read from the environment."""
from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def kernel_slots(count: int | None = None) -> threading.Semaphore:
    """How many kernels may start at once in one `stacks test` run, across all its images (default: one per core).

    Kernels are the heaviest thing a check starts (a JVM for Java and Kotlin, a
    compiler for C++). Started all at once on a small machine - the kernels of
    every image under test together - they starve each other past their
    timeouts; one per core keeps each kernel's timeout about the kernel.
    """
    return threading.BoundedSemaphore(max(1, count or os.cpu_count() or 1))


@dataclass(frozen=True)
class CheckOptions:
    """Settings every check suite receives.

    `hardware` is what this machine offers checks that `need` it ({"gpu"});
    `chromium` is the configured browser (a name or path; None: look for
    Debian's chromium); screenshots and other artifacts go under `out_dir`;
    `child_env` is the whole environment of the processes checks start (the
    browser), built by the composition root.
    """

    out_dir: Path = Path("build")
    hardware: frozenset[str] = frozenset()
    chromium: str | None = None
    kernels: threading.Semaphore = field(default_factory=kernel_slots)  # shared by every image of the run
    child_env: Mapping[str, str] = field(default_factory=dict)
