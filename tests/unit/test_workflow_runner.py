"""The stand-in for GitHub Actions that tests/integration/test_workflow_paths.py runs ci.yml with:
its expressions and conditions must mean what they mean on GitHub, or that test proves nothing."""
from __future__ import annotations

import pytest

from tests.integration.workflow_runner import _braces, condition, evaluate, render, substitute

MATRIX = ('{"roots": {"include": [{"id": "amd64-a", "export": true}]}, "branches": {"include": []},'
          ' "platforms": ["linux/amd64", "linux/arm64"]}')


def context(**parts: object) -> dict[str, object]:
    base: dict[str, object] = {"github": {"event_name": "push", "ref": "refs/heads/main", "event": {}},
                               "env": {}, "matrix": {}, "secrets": {}, "steps": {}, "_failed": False,
                               "needs": {"plan": {"result": "success", "outputs": {"matrix": MATRIX}}}}
    return {**base, **parts}


def test_contexts_nulls_and_fromjson() -> None:
    ctx = context()
    assert evaluate("fromJSON(needs.plan.outputs.matrix).roots.include[0] != null", ctx) is True
    assert evaluate("fromJSON(needs.plan.outputs.matrix).branches.include[0] != null", ctx) is False
    assert render(evaluate("github.event.pull_request.head.repo.fork || false", ctx)) == "false"
    forked = context(github={"event": {"pull_request": {"head": {"repo": {"fork": True}}}}})
    assert render(evaluate("github.event.pull_request.head.repo.fork || false", forked)) == "true"
    assert substitute("${{ secrets.MISSING }}", ctx) == ""
    assert substitute("roots ${{ matrix.id }}", context(matrix={"id": "amd64-a"})) == "roots amd64-a"
    assert substitute("${{ join(fromJSON(needs.plan.outputs.matrix).platforms, ',') }}", ctx) == "linux/amd64,linux/arm64"


def test_conditions_imply_success_unless_they_ask_for_status() -> None:
    ctx = context(matrix={"export": True}, env={"STACKS_CACHE_READONLY": "1"})
    assert condition("matrix.export && env.STACKS_CACHE_READONLY == '1'", ctx)
    assert not condition("matrix.export && env.STACKS_CACHE_READONLY == '1'", {**ctx, "_failed": True})
    assert condition("always()", {**ctx, "_failed": True})
    assert not condition("env.STACKS_CACHE_READONLY == '1'", context())
    assert not condition(None, {**ctx, "_failed": True}) and condition(None, ctx)
    publish = ("!cancelled() && !contains(needs.*.result, 'failure') && github.event_name == 'push' "
               "&& github.ref == 'refs/heads/main'")
    skipped_stage = context(needs={"roots": {"result": "success"}, "branches": {"result": "skipped"}})
    assert condition(publish, skipped_stage)
    assert not condition(publish, context(needs={"roots": {"result": "failure"}, "branches": {"result": "skipped"}}))
    assert not condition(publish, context(github={"event_name": "pull_request", "ref": "refs/heads/main"}))


def test_artifact_patterns_and_unknown_functions() -> None:
    assert _braces("{images-a,images-b}") == ["images-a", "images-b"]
    with pytest.raises(NameError):
        evaluate("hashFiles('x')", context())
