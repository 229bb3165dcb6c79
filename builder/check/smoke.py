"""Smoke tests: run, against containers of each built image, what its fragments promise.

Every image runs the checks of all the fragments it inherits (its whole
chain), so a contributor writes no test code:
- `checks:` entries of fragment.yaml (a command and a regex, or a file, an
  account, a package, the environment, a label) run through testinfra in one
  idle container of the image (host_checks.py);
- every `kernel:` snippet runs over the Jupyter protocol in that container,
  kernels in parallel, each with its own timeout;
- fragments that provide capabilities bring behaviour checks with them:
  `start-scripts` the start-time contract (start_check.py), `jupyter-server`
  the server with token and password (server_check.py), `jupyterhub-singleuser`
  the single-user server against a stand-in Hub, `jupyterlab` the launcher in
  headless Chromium (browser_check.py).
Checks that need hardware this machine lacks are "not run", never passed.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from builder.check import browser as browser_check
from builder.check import declarative as host_checks
from builder.check import server as server_check
from builder.check import start as start_check
from builder.check.result import CheckResult
from builder.adapters.docker import Engine
from builder.plan.matrix import render_text
from builder.spec.models import Check, KernelSpec
from builder.plan.plan import HASH_LABEL, Node
from builder.check.probes import KERNEL_PROBE

__all__ = ["CheckResult", "ImageChecks", "checks_for", "detect_hardware", "size_check", "smoke_image"]
BUILDER = "(stacks)"  # the "fragment" of checks stacks itself adds
PROBE_PORTS = 41000  # kernel probes of an idle container use ports from here on, five each


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


def detect_hardware(engine: Engine) -> frozenset[str]:
    """{"gpu"} when the engine has the NVIDIA runtime and the host sees a GPU (or STACKS_HARDWARE says so)."""
    forced = os.environ.get("STACKS_HARDWARE")
    if forced is not None:
        return frozenset(h.strip() for h in forced.split(",") if h.strip())
    runtimes = engine.client.info().get("Runtimes") or {}
    smi = shutil.which("nvidia-smi")
    if "nvidia" in runtimes and smi and subprocess.run([smi, "-L"], capture_output=True, check=False).returncode == 0:
        return frozenset({"gpu"})
    return frozenset()


def smoke_image(engine: Engine, node: Node, out_dir: Path | None = None,
                hardware: frozenset[str] = frozenset()) -> list[CheckResult]:
    """Every check of the image: declared ones and kernels in one idle container, then the behaviour checks."""
    plan = checks_for(node)
    results = plan.problems + _in_idle_container(engine, node, plan, hardware)
    kernels = [k.name for _, k in plan.kernels]
    if server_check.provider(node, "start-scripts"):
        results += start_check.start_checks(engine, node)
    single_user = server_check.provider(node, "jupyterhub-singleuser")
    if single_user:
        results += server_check.hub_checks(engine, node, kernels)
    command = " ".join(server_check.image_config(engine, node).get("Cmd") or [])
    if server_check.provider(node, "jupyter-server") and not (single_user and "singleuser" in command):
        lab = server_check.provider(node, "jupyterlab")
        browser = (lambda server: browser_check.launcher_checks(server, node.name, lab, out_dir or Path("build"))) if lab else None
        results += server_check.standalone_checks(engine, node, kernels, while_up=browser)
    return results


def _in_idle_container(engine: Engine, node: Node, plan: ImageChecks, hardware: frozenset[str]) -> list[CheckResult]:
    needs = {n for _, check in plan.commands for n in check.needs}
    options: dict[str, Any] = {}
    if "gpu" in needs and "gpu" in hardware:
        import docker

        options["device_requests"] = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    container = engine.client.containers.run(
        node.local_ref, entrypoint=["sleep"], command=["infinity"], detach=True,
        labels={server_check.SMOKE_LABEL: node.name}, name=f"stacks-smoke-{node.name}-idle-{secrets.token_hex(3)}", **options,
    )
    labels = dict(engine.client.images.get(node.local_ref).labels or {})
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            declared = pool.map(lambda item: _declared(container.name, labels, node.name, *item, hardware), plan.commands)
            kernels = pool.map(lambda index, item: _kernel(container, node.name, *item, _probe_ports(index)),
                               range(len(plan.kernels)), plan.kernels)
            results = [_identity(node, labels), *declared, *kernels]
    finally:
        container.remove(force=True)
    return results


def _identity(node: Node, labels: dict[str, str]) -> CheckResult:
    """The image under test is the one the plan describes (its content hash label)."""
    result = CheckResult(node.name, "the image carries the planned content hash", BUILDER, "label",
                         expected=f"label {HASH_LABEL}={node.hash}")
    return result.verdict(labels.get(HASH_LABEL) == node.hash, f"label {HASH_LABEL}={labels.get(HASH_LABEL, '(missing)')}")


def _declared(container: str, labels: dict[str, str], image: str, fragment: str, check: Check,
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


def _kernel(container: Any, image: str, fragment: str, kernel: KernelSpec, first_port: int) -> CheckResult:
    result = CheckResult(image, f"kernel {kernel.name} runs its snippet", fragment, "kernel",
                         expected=f"output matching /{kernel.expect}/ from: {kernel.snippet}")
    with result.timed():
        code, output = container.exec_run(
            ["sh", "-c", 'exec timeout "$1" python -c "$2" "$3" "$4" "$5" "$6"', "probe",
             str(kernel.timeout + 30), KERNEL_PROBE, kernel.name, kernel.snippet, str(kernel.timeout), str(first_port)],
        )
        text = (output or b"").decode(errors="replace").strip()
        try:
            answer = json.loads(text.splitlines()[-1])
        except (ValueError, IndexError):
            answer = {"error": f"exit {code}: {text[-2000:] or 'no output'}"}
        if answer.get("error"):
            result.verdict(False, answer["error"] + (f"; output: {answer['output']}" if answer.get("output") else ""))
        else:
            result.verdict(re.search(kernel.expect, answer.get("output", ""), re.MULTILINE) is not None, answer.get("output", ""))
    return result


def size_check(engine: Engine, node: Node) -> CheckResult | None:
    """The image's uncompressed size against its `size_budget` (None when it has no budget)."""
    if node.size_budget is None:
        return None
    from builder.plan.sizes import human_size

    image = engine.image(node.local_ref)
    size = image.attrs.get("Size", 0) if image is not None else 0
    result = CheckResult(node.name, "image size within budget", "stacks.yaml", "size",
                         expected=f"at most {human_size(node.size_budget)}", got=human_size(size))
    result.status = "passed" if image is not None and size <= node.size_budget else "failed"
    return result
