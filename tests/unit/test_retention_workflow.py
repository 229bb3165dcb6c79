"""The scheduled cache-retention workflow: opt-in, never on pull requests, least privilege, the real command.

actionlint, the make targets and the parsing of every `stacks` command line
are checked for every workflow by test_workflows.py; this file checks what
only the retention job promises.
"""
from __future__ import annotations

from pathlib import Path

from builder.app.cli import cli

from .test_workflows import check_stacks_call, load

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "cache-retention.yml"


def test_the_retention_job_is_scheduled_opt_in_and_never_runs_for_pull_requests() -> None:
    document = load(WORKFLOW)
    assert set(document["on"]) == {"schedule", "workflow_dispatch"}
    job = document["jobs"]["prune"]
    assert job["if"] == "vars.STACKS_CACHE_RETENTION == 'prune' || vars.STACKS_CACHE_RETENTION == 'dry-run'"
    assert document["permissions"] == {} and job["permissions"] == {"contents": "read", "packages": "write"}
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False


def test_it_prunes_only_in_prune_mode_and_fails_when_stacks_fails() -> None:
    job = load(WORKFLOW)["jobs"]["prune"]
    step = next(s for s in job["steps"] if "stacks cache prune" in s.get("run", ""))
    assert step["shell"] == "bash"  # GitHub's explicit bash runs with -o pipefail: tee does not hide a refusal
    lines = [line.strip() for line in step["run"].splitlines()]
    assert lines[0] == 'if [ "$MODE" = "prune" ]; then' and "--dry-run" not in lines[1] and "--dry-run" in lines[3]
    for line in (lines[1], lines[3]):
        check_stacks_call("cache", line.split("stacks cache", 1)[1].split("|")[0])
    assert job["env"]["STACKS_CACHE_KEEP"] == "${{ vars.STACKS_CACHE_KEEP || '3' }}"
    prune = cli.commands["cache"].commands["prune"]  # type: ignore[attr-defined]
    assert next(p for p in prune.params if p.name == "keep").envvar == "STACKS_CACHE_KEEP"
