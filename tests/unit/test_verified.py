"""`verified` flags: an image is verified only when its base and every fragment of its chain are."""
from __future__ import annotations

import pytest

from builder.errors import SpecError

from .helpers import plan_of

SPEC = """
    axes:
      os: [bookworm]
    bases:
      local: {bootstrap: {suite: bookworm}}
      cuda: {pull: "nvidia/cuda:12.6.3-runtime-ubuntu24.04", verified: false, unverified_reason: "registry unreachable"}
    images:
      core: {base: local, axes: [os], fragments: [os]}
      py: {parent: core, fragments: [{use: py, params: {version: "3.12"}}]}
      extra: {parent: py, fragments: [wild]}
      child: {parent: extra, fragments: [tool]}
      gpu: {base: cuda, fragments: [os]}
"""
FRAGMENTS = {
    "os": {"meta": {"provides": ["shell"], "verified": True}},
    "py": {"meta": {"provides": ["python={{ version }}"], "requires": ["shell"], "verified": True,
                    "params": {"version": {"type": "string"}}}, "body": "RUN echo {{ version }}\n"},
    "tool": {"meta": {"verified": True}},
    "wild": {"meta": {"verified": False, "unverified_reason": "needs GitHub"}},
}


@pytest.fixture
def plan(stack):
    return plan_of(stack(SPEC, FRAGMENTS))


def test_reasons_name_the_fragment_and_are_inherited(plan) -> None:
    assert plan["py-bookworm"].verified
    assert plan["extra-bookworm"].unverified == ("fragment 'wild': needs GitHub",)
    assert plan["child-bookworm"].unverified == ("fragment 'wild': needs GitHub",)


def test_an_unverified_base_makes_its_images_unverified(plan) -> None:
    gpu = next(n for n in plan if n.image == "gpu")
    assert gpu.unverified == ("base 'cuda': registry unreachable",)
    assert plan[gpu.parent].kind == "pull" and not plan[gpu.parent].verified


def test_only_verified_selection_keeps_ancestors_and_drops_the_rest(plan) -> None:
    everything = [n.name for n in plan.select()]
    verified = [n.name for n in plan.select(only_verified=True)]
    assert set(everything) - set(verified) == {"extra-bookworm", "child-bookworm", "gpu", "cuda"}
    assert verified == [n for n in everything if n in verified]  # build order kept
    assert [n.name for n in plan.select(["child"], only_verified=True)] == ["local", "core-bookworm", "py-bookworm"]


def test_unknown_names_are_still_errors_with_only_verified(plan) -> None:
    with pytest.raises(SpecError, match="no image named 'chld'"):
        plan.select(["chld"], only_verified=True)


def test_summary_reports_verification(plan) -> None:
    row = plan["extra-bookworm"].summary()
    assert row["verified"] is False and row["unverified"] == ["fragment 'wild': needs GitHub"]
