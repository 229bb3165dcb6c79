"""Writing a file whole or not at all, for reports, test records and build receipts.

A reader (or a concurrent run) sees the old file or the new one, never half
of one: the bytes go to a temporary file of a unique name next to the target,
which is then renamed over it. Kept to the standard library's cheapest parts
(no `tempfile`), because the no-op build writes its report through it.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path

_names = itertools.count()  # unique within the process; the pid makes it unique on the machine


def atomic_write(path: Path, data: str | bytes, mode: int | None = None) -> None:
    """Replace `path` with `data` (and `mode`) in one rename; the temporary file never outlives a failure."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_names)}.tmp")
    try:
        with open(tmp, "xb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
