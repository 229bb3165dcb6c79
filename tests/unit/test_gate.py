"""Only missing hardware may leave a check unrun; anything else fails the image unless allowed by name."""
from __future__ import annotations

from builder.check.gate import apply_gate
from builder.check.result import CheckResult

from .helpers import plan_of

SPEC = """
    bases:
      local: {bootstrap: {suite: bookworm}}
    images:
      gpu: {base: local, fragments: [os, cuda]}
"""
CUDA = {"cuda": {"meta": {"checks": [
    {"name": "the GPU is visible", "run": "nvidia-smi -L", "needs": ["gpu"]},
    {"name": "libcuda is there", "run": "true"},
]}}}


def results() -> list[CheckResult]:
    return [
        CheckResult("gpu", "the GPU is visible", "cuda", "run", status="not run", got="needs gpu, not present"),
        CheckResult("gpu", "libcuda is there", "cuda", "run", status="passed"),
        CheckResult("gpu", "JupyterLab shows its launcher", "jupyterlab", "browser", status="not run", got="chromium not installed"),
    ]


def test_missing_hardware_is_not_run_and_anything_else_not_run_fails(stack) -> None:
    node = plan_of(stack(SPEC, CUDA))["gpu"]
    gated = apply_gate(node, results())
    assert [r.status for r in gated] == ["not run", "passed", "failed"]
    assert "chromium not installed" in gated[2].got and "--allow-not-run 'JupyterLab shows its launcher'" in gated[2].got


def test_a_check_allowed_by_name_or_kind_stays_not_run(stack) -> None:
    node = plan_of(stack(SPEC, CUDA))["gpu"]
    assert apply_gate(node, results(), frozenset({"JupyterLab shows its launcher"}))[2].status == "not run"
    assert apply_gate(node, results(), frozenset({"browser"}))[2].status == "not run"


def test_a_hardware_name_from_another_fragment_does_not_excuse_a_check(stack) -> None:
    node = plan_of(stack(SPEC, CUDA))["gpu"]
    impostor = CheckResult("gpu", "the GPU is visible", "os", "run", status="not run", got="?")
    assert apply_gate(node, [impostor])[0].status == "failed"
