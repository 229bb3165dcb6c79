"""What the image's fragments declare, checked in one idle container of the image.

Every `checks:` entry of the chain (params filled in as this image applies
each fragment) and every `kernel:` snippet run side by side in a container
whose command is `sleep infinity`; the image's content-hash label is checked
too. Checks that need hardware this machine lacks are "not run", never passed.
"""
from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import jinja2

from builder.adapters.containers import Container, ContainerRunner, RunSpec
from builder.check import declarative as host_checks
from builder.check.options import CheckOptions
from builder.check.probes import KERNEL_PROBE
from builder.check.result import CheckResult
from builder.check.target import Target
from builder.plan.matrix import render_text
from builder.plan.plan import HASH_LABEL, Node
from builder.specification.models import Check, KernelSpec

BUILDER = "(stacks)"  # the "fragment" of checks stacks itself adds
PROBE_PORTS = 21000  # kernel probes of an idle container use ports from here on, five each: below Linux's
#                      ephemeral range (32768-60999), where a connection of another kernel could hold one
PROBE_MARGIN = 30  # seconds a kernel probe may take beyond its snippet's timeout (starting the kernel)


@dataclass
class ImageChecks:
    node: Node
    commands: list[tuple[str, Check]] = field(default_factory=list)  # every declared check, any kind
    kernels: list[tuple[str, KernelSpec]] = field(default_factory=list)
    problems: list[CheckResult] = field(default_factory=list)  # checks whose templates do not render


def checks_for(node: Node) -> ImageChecks:
    """Everything the image's fragments (inherited ones first) declare, with their params filled in."""
    found = ImageChecks(node)
    for applied in node.chain:
        meta = applied.fragment.meta
        for check in meta.checks:
            try:
                found.commands.append((applied.name, render_check(check, applied.params)))
            except jinja2.TemplateError as exc:
                found.problems.append(CheckResult(node.name, check.name, applied.name, check.kind,
                                                  expected="a check whose templates render", got=f"template error: {exc}"))
        if meta.kernel is not None:
            found.kernels.append((applied.name, meta.kernel))
    return found


def render_check(check: Check, params: dict[str, Any]) -> Check:
    """Fill `{{ param }}` in every string of a check from the fragment's params as this image applies it."""
    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return render_text(value, params)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    return Check.model_validate(fill(check.model_dump(exclude_none=True)))


def idle_checks(target: Target, runner: ContainerRunner, options: CheckOptions) -> list[CheckResult]:
    """Templates that do not render, the content-hash label, every declared check and every kernel snippet."""
    node = target.node
    plan = checks_for(node)
    needs = {n for _, check in plan.commands for n in check.needs}
    spec = RunSpec(node.name, "idle", entrypoint=["sleep"], command=["infinity"],
                   gpu="gpu" in needs and "gpu" in options.hardware)
    labels = target.facts.labels
    with runner.run(node.local_ref, spec) as container, ThreadPoolExecutor(max_workers=4) as pool:
        declared = pool.map(lambda item: _declared(container, labels, node.name, item[0], item[1], options.hardware),
                            plan.commands)
        kernels = pool.map(lambda index, item: _kernel(container, node.name, item[0], item[1], _probe_ports(index),
                                                       options.kernels),
                           range(len(plan.kernels)), plan.kernels)
        return [*plan.problems, _identity(node, labels), *declared, *kernels]


def _identity(node: Node, labels: dict[str, str]) -> CheckResult:
    """The image under test is the one the plan describes (its content hash label)."""
    result = CheckResult(node.name, "the image carries the planned content hash", BUILDER, "label",
                         expected=f"label {HASH_LABEL}={node.hash}")
    return result.verdict(labels.get(HASH_LABEL) == node.hash, f"label {HASH_LABEL}={labels.get(HASH_LABEL, '(missing)')}")


def _declared(container: Container, labels: dict[str, str], image: str, fragment: str, check: Check,
              hardware: frozenset[str]) -> CheckResult:
    result = CheckResult(image, check.name, fragment, check.kind)
    missing = set(check.needs) - hardware
    if missing:
        result.status, result.got = "not run", f"needs {', '.join(sorted(missing))}, not present on this machine"
        return result
    with result.timed():
        ok, result.expected, got = host_checks.evaluate(check, container, labels)
        result.verdict(ok, got)
    return result


def _probe_ports(index: int) -> int:
    """The first of the five ports the index-th kernel probe of a container may use (disjoint blocks)."""
    return PROBE_PORTS + 10 * index


def _kernel(container: Container, image: str, fragment: str, kernel: KernelSpec, first_port: int,
            slots: threading.Semaphore) -> CheckResult:
    """The kernel's snippet over the Jupyter protocol; its timeout starts once one of the run's kernel slots is free."""
    result = CheckResult(image, f"kernel {kernel.name} runs its snippet", fragment, "kernel",
                         expected=f"output matching /{kernel.expect}/ from: {kernel.snippet}")
    with slots, result.timed():
        done = container.exec(["python", "-c", KERNEL_PROBE, kernel.name, kernel.snippet, str(kernel.timeout), str(first_port)],
                              timeout=kernel.timeout + PROBE_MARGIN)
        text = done.text.strip()
        try:
            answer = json.loads(text.splitlines()[-1])
        except (ValueError, IndexError):
            answer = {"error": f"exit {done.exit_code}: {text[-2000:] or 'no output'}"}
        if answer.get("error"):
            result.verdict(False, answer["error"] + (f"; output: {answer['output']}" if answer.get("output") else ""))
        else:
            result.verdict(re.search(kernel.expect, answer.get("output", ""), re.MULTILINE) is not None, answer.get("output", ""))
    return result
