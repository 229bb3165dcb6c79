"""What a check cannot prove under QEMU user emulation, and says so instead of failing or passing wrongly.

Under emulation every program of a foreign-platform image really runs (the
kernels execute their snippets), only slower; `EmulatedContainers` scales the
timeouts for that. One thing does not work the same: a setuid program such
as sudo gains its owner's rights only when the emulator is registered with
binfmt_misc's credentials flag (C), which qemu-user-static does not set.
sudo then fails whatever the image's sudoers say, so "sudo is closed" would
pass for the wrong reason and "GRANT_SUDO opens sudo" would fail for one
that is not the image's. Such checks are "not run" with that reason, and
the gate treats them as it treats checks needing hardware this host lacks.
"""
from __future__ import annotations

from collections.abc import Iterable

from builder.check.result import CheckResult

SETUID_REASON = ("not run under QEMU emulation: sudo is setuid, and setuid programs do not gain root there "
                 "without the binfmt_misc credentials flag (C); run it on a native host")
#: check kinds that run commands in the container (the others read files and metadata, which emulation does not change)
COMMAND_KINDS = frozenset({"run", "start"})


def uses_setuid(result: CheckResult) -> bool:
    """A check whose verdict depends on sudo working (its name says sudo, and it runs commands)."""
    return result.kind in COMMAND_KINDS and "sudo" in result.name.lower()


def emulation_limits(results: Iterable[CheckResult], setuid_works: bool) -> tuple[list[CheckResult], frozenset[tuple[str, str]]]:
    """(results, (fragment, name) of the checks made "not run" because emulation cannot run them)."""
    kept, unrunnable = [], set()
    for result in results:
        if not setuid_works and uses_setuid(result):
            result.status, result.got = "not run", f"{SETUID_REASON} (it answered: {result.got[-200:]})"
            unrunnable.add((result.fragment, result.name))
        kept.append(result)
    return kept, frozenset(unrunnable)
