"""The `stacks` entry point: a build with nothing to do is answered before the command line is loaded.

`builder.app.noop.answer` needs only the standard library; the command
line (click) and every stage are imported only when there is work to do.
"""
from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    from builder.app import noop

    try:
        code = noop.answer(args, os.environ, lambda line: print(line, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception:  # a receipt that cannot be used only costs the full build, which reports any real problem
        code = None
    if code is not None:
        sys.exit(code)
    from builder.app.cli import main as run_cli

    run_cli(args)
