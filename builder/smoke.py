"""Smoke tests: run, in a container of each built image, what its fragments promise.

Every image runs the checks of all the fragments it inherits (its whole
chain), so a contributor writes no test code: a `checks:` entry or a
`kernel:` snippet in fragment.yaml is enough. Kernels of one image are
exercised in parallel, each with its own timeout. Checks that need hardware
this machine lacks are reported as "not run", never as passed.
"""
from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .engine import Engine
from .models import Check, KernelSpec
from .plan import Node
from .probes import KERNEL_PROBE

AVAILABLE_HARDWARE: frozenset[str] = frozenset()  # no GPU detection yet: GPU checks are "not run"


@dataclass
class CheckResult:
    image: str
    name: str
    fragment: str
    kind: str  # "command" | "kernel"
    status: str = "failed"  # passed | failed | not run
    seconds: float = 0.0
    expected: str = ""
    got: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ImageChecks:
    node: Node
    commands: list[tuple[str, Check]] = field(default_factory=list)
    kernels: list[tuple[str, KernelSpec]] = field(default_factory=list)


def checks_for(node: Node) -> ImageChecks:
    """Everything the image's fragments (inherited ones first) declare."""
    found = ImageChecks(node)
    for applied in node.chain:
        meta = applied.fragment.meta
        found.commands += [(applied.name, check) for check in meta.checks]
        if meta.kernel is not None:
            found.kernels.append((applied.name, meta.kernel))
    return found


def smoke_image(engine: Engine, node: Node) -> list[CheckResult]:
    """Start one idle container of the image, run every check in it, remove it."""
    plan = checks_for(node)
    container = engine.client.containers.run(
        node.local_ref, entrypoint=["sleep"], command=["infinity"], detach=True, labels={"io.stacks.smoke": node.name},
    )
    try:
        results = [_command(container, node.name, fragment, check) for fragment, check in plan.commands]
        with ThreadPoolExecutor(max_workers=max(1, min(4, len(plan.kernels)))) as pool:
            results += list(pool.map(lambda item: _kernel(container, node.name, *item), plan.kernels))
    finally:
        container.remove(force=True)
    return results


def _command(container: Any, image: str, fragment: str, check: Check) -> CheckResult:
    result = CheckResult(image, check.name, fragment, "command", expected=f"exit 0 and output matching /{check.expect}/")
    missing = set(check.needs) - AVAILABLE_HARDWARE
    if missing:
        result.status, result.got = "not run", f"needs {', '.join(sorted(missing))}, not present on this machine"
        return result
    started = time.monotonic()
    code, output = container.exec_run(["sh", "-c", check.run], user=check.user or "", demux=False)
    text = (output or b"").decode(errors="replace")
    result.seconds = round(time.monotonic() - started, 2)
    ok = code == 0 and (not check.expect or re.search(check.expect, text, re.MULTILINE) is not None)
    result.status = "passed" if ok else "failed"
    result.got = f"exit {code}: {text.strip()[-2000:]}"
    return result


def _kernel(container: Any, image: str, fragment: str, kernel: KernelSpec) -> CheckResult:
    result = CheckResult(image, f"kernel {kernel.name} runs its snippet", fragment, "kernel",
                         expected=f"output matching /{kernel.expect}/ from: {kernel.snippet}")
    started = time.monotonic()
    code, output = container.exec_run(
        ["sh", "-c", 'exec timeout "$1" python -c "$2" "$3" "$4" "$5"', "probe",
         str(kernel.timeout + 30), KERNEL_PROBE, kernel.name, kernel.snippet, str(kernel.timeout)],
    )
    result.seconds = round(time.monotonic() - started, 2)
    text = (output or b"").decode(errors="replace").strip()
    try:
        answer = json.loads(text.splitlines()[-1])
    except (ValueError, IndexError):
        result.got = f"exit {code}: {text[-2000:] or 'no output'}"
        return result
    if answer.get("error"):
        result.got = answer["error"] + (f"; output: {answer['output']}" if answer.get("output") else "")
        return result
    result.got = answer.get("output", "")
    if re.search(kernel.expect, result.got, re.MULTILINE):
        result.status = "passed"
    return result


def size_check(engine: Engine, node: Node) -> CheckResult | None:
    """The image's uncompressed size against its `size_budget` (None when it has no budget)."""
    if node.size_budget is None:
        return None
    from .report import human_size

    image = engine.image(node.local_ref)
    size = image.attrs.get("Size", 0) if image is not None else 0
    result = CheckResult(node.name, "image size within budget", "stacks.yaml", "size",
                         expected=f"at most {human_size(node.size_budget)}", got=human_size(size))
    result.status = "passed" if image is not None and size <= node.size_budget else "failed"
    return result
