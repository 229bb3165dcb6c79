"""The project's own stacks.yaml and fragment library keep their promises.

`verified: true` on a fragment is a claim that CI builds and smoke-tests it;
these tests make that claim, the docs table and the matrix agree.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from builder.plan.plan import Plan, load_plan

ROOT = Path(__file__).resolve().parents[2]
TABLE_ROW = re.compile(r"^\| ([a-z0-9, -]+) \| (yes|no)\b[^|]* \|")


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(ROOT / "stacks.yaml")


def _library(plan: Plan) -> dict:
    return {name: fragment.meta for name, fragment in plan.spec.library.fragments.items()}


def _docs_table() -> dict[str, bool]:
    rows: dict[str, bool] = {}
    for line in (ROOT / "docs" / "fragments.md").read_text(encoding="utf-8").splitlines():
        match = TABLE_ROW.match(line)
        if match:
            for name in match.group(1).split(","):
                assert name.strip() not in rows, f"{name.strip()} is listed twice in docs/fragments.md"
                rows[name.strip()] = match.group(2) == "yes"
    return rows


def test_every_verified_fragment_is_built_by_ci(plan: Plan) -> None:
    built = {a.name for node in plan.select(only_verified=True) for a in node.fragments}
    claimed = {name for name, meta in _library(plan).items() if meta.verified}
    assert claimed - built == set(), "marked verified: true but no CI-built image of stacks.yaml uses them"


def test_every_unverified_fragment_says_why(plan: Plan) -> None:
    silent = [name for name, meta in _library(plan).items() if not meta.verified and not meta.unverified_reason]
    assert silent == []


def test_docs_table_matches_the_flags(plan: Plan) -> None:
    table = _docs_table()
    library = _library(plan)
    assert set(table) == set(library), "docs/fragments.md must list every fragment exactly once"
    wrong = {name: table[name] for name, meta in library.items() if table[name] != meta.verified}
    assert wrong == {}, "docs/fragments.md says verified/not verified differently from fragment.yaml"


def test_every_kernel_fragment_declares_a_smoke_snippet(plan: Plan) -> None:
    for name, meta in _library(plan).items():
        kernelspecs = [p for p in meta.provides if p.startswith("kernelspec:")]
        if kernelspecs:
            assert meta.kernel is not None, f"{name} registers {kernelspecs} but declares no kernel snippet"
            assert f"kernelspec:{meta.kernel.name}" in kernelspecs


def test_every_fragment_is_used_by_the_matrix(plan: Plan) -> None:
    used = {a.name for node in plan for a in node.fragments}
    assert set(_library(plan)) - used == set()


def test_ci_builds_the_polyglot_image_with_every_buildable_kernel(plan: Plan) -> None:
    ci = {node.name: node for node in plan.select(only_verified=True)}
    polyglot = ci["polyglot-bookworm"]
    kernels = {a.fragment.meta.kernel.name for a in polyglot.chain if a.fragment.meta.kernel}
    assert kernels == {"python3", "tslab", "java", "kotlin", "ir", "bash", "cpp17"}
    assert polyglot.size_budget == 2_500_000_000 and ci["lab-bookworm"].size_budget == 600_000_000


def test_ci_builds_the_minimal_level_under_every_kernel_image_and_lab_stays_lean(plan: Plan) -> None:
    ci = {node.name: node for node in plan.select(only_verified=True)}
    assert {"minimal-bookworm", "minimal-trixie"} <= set(ci)
    assert ci["minimal-bookworm"].size_budget == 850_000_000
    for name in ("polyglot-bookworm", "polyglot-trixie", "pytorch-bookworm", "tensorflow-bookworm", "polyglot-all-trixie"):
        fragments = {a.name for a in plan[name].chain}
        assert {"cli-tools", "notebook"} <= fragments, name
    lab = {a.name for a in ci["lab-bookworm"].chain}
    assert not lab & {"cli-tools", "notebook"}


def test_the_pdf_image_is_left_out_of_ci_for_time_and_says_so(plan: Plan) -> None:
    ci = {node.name for node in plan.select(only_verified=True)}
    assert "minimal-pdf-bookworm" not in ci and "minimal-pdf-bookworm" in {node.name for node in plan}
    reason = plan.spec.library.fragments["nbconvert-pdf"].meta.unverified_reason or ""
    assert "CI time" in reason
    assert "STACKS_EXTRA ?= minimal-pdf" in (ROOT / "Makefile").read_text(encoding="utf-8")


def test_ci_builds_the_all_in_one_image_with_every_reachable_kernel(plan: Plan) -> None:
    ci = {node.name: node for node in plan.select(only_verified=True)}
    everything = ci["polyglot-all-trixie"]
    kernels = {a.fragment.meta.kernel.name for a in everything.chain if a.fragment.meta.kernel}
    assert kernels == {"python3", "tslab", "java", "kotlin", "ir", "bash", "cpp17", "gophernotes", "rust"}
    assert everything.size_budget == 3_100_000_000
    # one variant: one Go and one Rust compile in CI, and Rust needs trixie's rustc
    assert "polyglot-all-bookworm" not in {node.name for node in plan}


def test_the_upstream_kernels_stay_in_unverified_images_that_say_why(plan: Plan) -> None:
    nodes = {node.name: node for node in plan}
    upstream = nodes["polyglot-upstream-trixie"]
    assert not upstream.verified
    reasons = " ".join(upstream.unverified)
    for fragment in ("miniforge", "kernel-xeus-cling", "kernel-almond", "kernel-iracket"):
        assert f"fragment '{fragment}'" in reasons
    assert "kernel-evcxr" not in reasons  # verified, it comes from polyglot-all
    assert not nodes["upstream-kernels-bookworm-3.12"].verified
