"""The CI job matrix: every image built once per platform, parents always built by an earlier or the same job."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.outputs.ci_matrix import Matrix, artifact_pattern, make_matrix, parse_runners
from builder.app.cli import cli
from builder.plan.plan import Plan, load_plan, make_plan

from .helpers import BASIC_FRAGMENTS, plan_of

ROOT = Path(__file__).resolve().parents[2]

SPEC = """
version: 1
bases:
  debian: {bootstrap: {suite: bookworm}, provides: [apt]}
  hub: {pull: "example/base:1.0"}
images:
  root: {base: debian, fragments: [os]}
  mid:
    parent: root
    fragments: [{use: py, params: {version: "3.11"}}]
  a: {parent: mid, fragments: [tool], weight: 3}
  b: {parent: mid, fragments: [tool], weight: 3}
  c: {parent: mid, fragments: [tool]}
  c2: {parent: c, fragments: [leaf]}
  d: {parent: mid, fragments: [amd-only]}
  other: {base: hub, fragments: [os]}
  other2: {parent: other, fragments: [tool]}
"""
FRAGMENTS = {
    "amd-only": {"meta": {"platforms": ["linux/amd64"]}, "body": "RUN echo amd64\n"},
    "leaf": {"body": "RUN echo leaf\n"},
}


@pytest.fixture
def plan(stack) -> Plan:
    return plan_of(stack(SPEC, FRAGMENTS))


def _jobs(matrix: Matrix, platform: str) -> list:
    return [job for job in matrix.jobs if job.platform == platform]


def assert_sound(plan: Plan, matrix: Matrix, selected: list | None = None) -> None:
    """Each node of a platform is built by exactly one job, and its parent is there first."""
    nodes = selected if selected is not None else list(plan)
    for platform in {job.platform for job in matrix.jobs}:
        jobs = _jobs(matrix, platform)
        roots = {job.id: job for job in jobs if job.stage == "roots"}
        built: dict[str, str] = {}
        for job in jobs:
            for name in job.nodes:
                if plan[name].kind == "pull":
                    continue  # every job may pull a base itself
                assert name not in built, f"{name} is built by {built[name]} and {job.id}"
                built[name] = job.id
            assert job.stage in ("roots", "branches")
            assert (job.needs == ()) == (job.stage == "roots")
            assert all(need in roots for need in job.needs)
            for name in job.nodes:
                parent = plan[name].parent
                if parent is None or plan[parent].kind == "pull" or parent in job.nodes:
                    continue
                assert any(parent in roots[need].nodes for need in job.needs), f"{job.id}: parent {parent} of {name} is not loaded"
                assert job.nodes.index(name) >= 0
            order = [n for n in plan if n.name in job.nodes]
            assert [n.name for n in order] == list(job.nodes), "nodes are listed parents first"
        wanted = {n.name for n in nodes if platform in n.platforms and n.kind != "pull"}
        assert set(built) == wanted


def test_trunk_then_balanced_branches(plan: Plan) -> None:
    matrix = make_matrix(plan, max_jobs=4, platforms=["linux/amd64"])
    assert_sound(plan, matrix)
    roots = {job.id: job.nodes for job in matrix.stage("roots")}
    assert roots == {"amd64-debian": ("debian", "root", "mid"), "amd64-other": ("hub", "other", "other2")}
    branches = sorted(sorted(job.nodes) for job in matrix.stage("branches"))
    assert branches == [["a", "d"], ["b"], ["c", "c2"]]  # first-fit decreasing into jobs of weight <= 4
    assert all(job.weight <= 4 for job in matrix.stage("branches"))
    assert {job.needs for job in matrix.stage("branches")} == {("amd64-debian",)}
    assert {job.id: job.export for job in matrix.stage("roots")} == {"amd64-debian": True, "amd64-other": False}


def test_a_pulled_base_never_gets_a_job_of_its_own(plan: Plan) -> None:
    matrix = make_matrix(plan, platforms=["linux/amd64"])
    assert all(job.nodes != ("hub",) for job in matrix.jobs)
    assert any(job.nodes[:2] == ("hub", "other") for job in matrix.stage("roots"))


def test_one_job_per_tree_when_it_fits(plan: Plan) -> None:
    matrix = make_matrix(plan, max_jobs=1, platforms=["linux/amd64"])
    assert_sound(plan, matrix)
    assert matrix.stage("branches") == []
    assert [job.nodes[0] for job in matrix.stage("roots")] == ["debian", "hub"]


def test_max_jobs_caps_the_branch_jobs(plan: Plan) -> None:
    for cap in (1, 2, 3, 8):
        matrix = make_matrix(plan, max_jobs=cap)
        assert_sound(plan, matrix)
        for platform in ("linux/amd64", "linux/arm64"):
            assert len([j for j in _jobs(matrix, platform) if j.stage == "branches"]) <= cap


def test_platforms_follow_the_fragments(plan: Plan) -> None:
    matrix = make_matrix(plan, max_jobs=4)
    assert plan["d"].platforms == ("linux/amd64",)
    arm = {name for job in _jobs(matrix, "linux/arm64") for name in job.nodes}
    amd = {name for job in _jobs(matrix, "linux/amd64") for name in job.nodes}
    assert "d" in amd and "d" not in arm
    assert amd - arm == {"d"}
    assert {job.runner for job in _jobs(matrix, "linux/arm64")} == {"ubuntu-24.04-arm"}


def test_unknown_platforms_need_a_runner(stack) -> None:
    plan = plan_of(stack(SPEC.replace("provides: [apt]}", "provides: [apt], platforms: [linux/amd64, linux/s390x]}"), FRAGMENTS))
    matrix = make_matrix(plan)
    assert matrix.skipped_platforms == ("linux/s390x",)
    labelled = make_matrix(plan, runners={"linux/s390x": "s390x-box"})
    assert {job.runner for job in labelled.jobs if job.platform == "linux/s390x"} == {"s390x-box"}


def test_selection_and_only_verified(stack) -> None:
    spec = SPEC.replace("  d: {parent: mid, fragments: [amd-only]}", "  d: {parent: mid, fragments: [unsure]}")
    trusted = {name: {**parts, "meta": {**parts.get("meta", {}), "verified": True}}
               for name, parts in {**BASIC_FRAGMENTS, **FRAGMENTS}.items()}
    plan = plan_of(stack(spec, {**trusted, "unsure": {"meta": {"verified": False, "unverified_reason": "x"}}}))
    everything = {n for job in make_matrix(plan).jobs for n in job.nodes}
    verified = {n for job in make_matrix(plan, only_verified=True).jobs for n in job.nodes}
    assert "d" in everything and "d" not in verified
    assert everything - verified == {"d"}
    selected = make_matrix(plan, images=["c2"], platforms=["linux/amd64"])
    assert_sound(plan, selected, plan.select(["c2"]))
    assert {n for job in selected.jobs for n in job.nodes} == {"debian", "root", "mid", "c", "c2"}


def test_json_is_what_the_workflow_reads(plan: Plan) -> None:
    document = make_matrix(plan, max_jobs=4).to_json()
    assert set(document) >= {"roots", "branches", "platforms", "jobs"}
    for stage in ("roots", "branches"):
        for entry in document[stage]["include"]:
            assert set(entry) >= {"id", "runner", "nodes", "images", "refs", "needs", "artifact", "artifacts", "platform"}
            assert "push" not in entry  # the publish job pushes every platform, after all of them passed
            assert all(isinstance(entry[k], str) for k in ("nodes", "images", "refs", "needs", "artifact", "artifacts"))
            assert entry["artifact"] == "images-" + entry["id"]
    branch = document["branches"]["include"][0]
    assert branch["artifacts"] == "images-" + branch["needs"]
    roots = document["roots"]["include"][0]
    assert len(roots["refs"].split()) == len(roots["nodes"].split())
    assert all(ref.split(":")[0].startswith("stacks/") or ref.startswith("example/") for ref in roots["refs"].split())


def test_artifact_patterns() -> None:
    assert artifact_pattern([]) == ""
    assert artifact_pattern(["amd64-x"]) == "images-amd64-x"
    assert artifact_pattern(["amd64-x", "amd64-y"]) == "{images-amd64-x,images-amd64-y}"


def test_runner_option_parsing() -> None:
    assert parse_runners(["linux/arm64=big-arm", " linux/amd64 = x "]) == {"linux/arm64": "big-arm", "linux/amd64": "x"}
    with pytest.raises(ValueError, match="PLATFORM=LABEL"):
        parse_runners(["linux/arm64"])


def test_the_project_matrix_is_sound() -> None:
    plan = load_plan(ROOT / "stacks.yaml")
    for only_verified in (True, False):
        matrix = make_matrix(plan, only_verified=only_verified)
        assert_sound(plan, matrix, plan.select(only_verified=only_verified))
    verified = make_matrix(plan, only_verified=True)
    assert {job.platform for job in verified.jobs} == {"linux/amd64", "linux/arm64"}


def test_cli_prints_one_line_of_json(stack) -> None:
    path = stack(SPEC, FRAGMENTS)
    result = CliRunner().invoke(cli, ["matrix", "-f", str(path), "--json", "--max-jobs", "4", "--platform", "linux/amd64"])
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1
    document = json.loads(result.output)
    assert {e["id"] for e in document["roots"]["include"]} == {"amd64-debian", "amd64-other"}
    table = CliRunner().invoke(cli, ["matrix", "-f", str(path)])
    assert table.exit_code == 0 and "roots" in table.output and "branches" in table.output


def test_each_platform_hands_on_the_tags_its_own_runner_builds(plan: Plan) -> None:
    """An arm64 runner is an arm64 engine: its images carry arm64 hashes under the plain `:<hash12>` tags."""
    own = {p: make_plan(plan.spec, plan.mode, p, native=p) for p in ("linux/amd64", "linux/arm64")}
    matrix = make_matrix(plan, max_jobs=4, plan_for=own.__getitem__)
    for platform, platform_plan in own.items():
        for job in _jobs(matrix, platform):
            assert job.refs == tuple(platform_plan[name].local_ref for name in job.nodes)
    arm_root = next(job for job in _jobs(matrix, "linux/arm64") if "root" in job.nodes)
    assert own["linux/arm64"]["root"].local_ref in arm_root.refs
    assert own["linux/arm64"]["root"].local_ref.endswith(f":{own['linux/arm64']['root'].hash[:12]}")
    assert own["linux/arm64"]["root"].hash != plan["root"].hash
