"""What "passed" means: a check that did not run counts as passed only when missing hardware (or the emulator) is why.

A GPU check on a machine without a GPU is "not run" and the image still
passes: no test host can have every device. Anything else that did not run
(no Chromium, a tool missing on the test host) would let an image be
published unproven, so it fails the image, unless the user names that check
(or its kind) in `--allow-not-run`, which keeps it "not run" and says so.
A check QEMU user emulation cannot run (`builder.check.emulation`) is treated
like missing hardware: the host, not the image, lacks what it needs, and a
native host of that platform runs it.
"""
from __future__ import annotations

from collections.abc import Iterable

from builder.check.result import CheckResult
from builder.plan.plan import Node


def hardware_bound(node: Node) -> set[tuple[str, str]]:
    """(fragment, check name) of every check of the image's chain that declares `needs:` hardware."""
    return {(a.name, c.name) for a in node.chain for c in a.fragment.meta.checks if c.needs}


def apply_gate(node: Node, results: Iterable[CheckResult], allowed: frozenset[str] = frozenset(),
               emulation_bound: frozenset[tuple[str, str]] = frozenset()) -> list[CheckResult]:
    """The results with every not-run check failed unless hardware (or emulation) is why or the user allowed it
    by name or kind."""
    bound = hardware_bound(node) | emulation_bound
    gated = []
    for result in results:
        if result.status == "not run" and (result.fragment, result.name) not in bound \
                and result.name not in allowed and result.kind not in allowed:
            result.status = "failed"
            result.got = (f"not run: {result.got}. Only missing hardware may leave a check unrun; install what it "
                          f"needs, or accept it with --allow-not-run '{result.name}' (or '{result.kind}')")
        gated.append(result)
    return gated
