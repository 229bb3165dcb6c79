"""Smoke tests: run, against containers of each built image, what its fragments promise.

Every image runs the checks of all the fragments it inherits (its whole
chain), so a contributor writes no test code. Which checks an image gets is
the registry of check suites (suites.py):
- `checks:` entries of fragment.yaml (a command and a regex, or a file, an
  account, a package, the environment, a label) and every `kernel:` snippet
  run in one idle container of the image (idle.py, declarative.py);
- fragments that provide capabilities bring behaviour checks with them:
  `start-scripts` the start-time contract (start.py), `jupyter-server`
  the server with token and password (server.py), `jupyterhub-singleuser`
  the single-user server against a stand-in Hub, `jupyterlab` the launcher in
  headless Chromium (browser.py).
Checks that need hardware this machine lacks are "not run", never passed.
"""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

from builder.adapters.containers import ContainerRunner
from builder.adapters.engine import Engine
from builder.check.idle import ImageChecks, checks_for, render_check
from builder.check.options import CheckOptions
from builder.check.result import CheckResult
from builder.check.suites import SUITES, Suite, suites_for
from builder.check.target import Target
from builder.plan.plan import Node

__all__ = ["CheckOptions", "CheckResult", "ImageChecks", "checks_for", "detect_hardware", "render_check",
           "size_check", "smoke_image", "target_of"]


def detect_hardware(runner: ContainerRunner, forced: str | None = None) -> frozenset[str]:
    """{"gpu"} when the engine has the NVIDIA runtime and the host sees a GPU; `forced` (a comma list) decides instead."""
    if forced is not None:
        return frozenset(h.strip() for h in forced.split(",") if h.strip())
    smi = shutil.which("nvidia-smi")
    if "nvidia" in runner.runtimes() and smi and subprocess.run([smi, "-L"], capture_output=True, check=False).returncode == 0:
        return frozenset({"gpu"})
    return frozenset()


def target_of(runner: ContainerRunner, node: Node) -> Target:
    """The image under test: its node, the built image's config and labels, the kernels its fragments declare."""
    return Target(node, runner.image(node.local_ref), [kernel.name for _, kernel in checks_for(node).kernels])


def smoke_image(runner: ContainerRunner, node: Node, options: CheckOptions | None = None,
                registry: tuple[Suite, ...] = SUITES, on_suite: Callable[[str], None] | None = None) -> list[CheckResult]:
    """Every check of the image: each suite of the registry that applies to it, in order; `on_suite` hears
    what each suite does as it starts (progress lines)."""
    options = options or CheckOptions()
    target = target_of(runner, node)
    results: list[CheckResult] = []
    for suite in suites_for(target, registry):
        if on_suite is not None:
            on_suite(suite.what(target))
        results += suite.run(target, runner, options)
    return results


def size_check(engine: Engine, node: Node) -> CheckResult | None:
    """The image's uncompressed size against its `size_budget` (None when it has no budget)."""
    if node.size_budget is None:
        return None
    from builder.plan.sizes import human_size

    image = engine.image(node.local_ref)
    size = (image.size or 0) if image is not None else 0
    result = CheckResult(node.name, "image size within budget", "stacks.yaml", "size",
                         expected=f"at most {human_size(node.size_budget)}", got=human_size(size))
    result.status = "passed" if image is not None and size <= node.size_budget else "failed"
    return result
