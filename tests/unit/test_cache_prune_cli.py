"""`stacks cache prune` end to end on a fake registry: what it keeps for the plan, what it prints, its exit status."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.app import cache_cmd
from builder.app.cli import cli
from builder.cache.registry_cache import node_tag

from .fakes import FakeRegistry
from .helpers import plan_of

SPEC = """
settings:
  registry: {host: 127.0.0.1:5000, namespace: me}
bases:
  debian:
    pull: "debian:bookworm"
    provides: [shell]
images:
  lab:
    base: debian
    fragments: [os]
    push: true
"""
CACHE = "127.0.0.1:5000/cache"


@pytest.fixture
def setup(stack, monkeypatch) -> tuple[Path, FakeRegistry, dict[str, str]]:
    """The stack, a cache holding the plan's lab and two older builds (each with a record), the oldest released."""
    path = stack(SPEC)
    registry = FakeRegistry()
    monkeypatch.setattr(cache_cmd, "Registry", lambda host, credentials, timeout=30.0: registry)
    lab = next(n for n in plan_of(path) if n.name == "lab")
    digests = {}
    for i, tag in enumerate([f"lab-{'1' * 64}", f"lab-{'2' * 64}", node_tag(lab)]):
        digests[tag], _ = registry.image("cache", (tag,), "lab", f"2026-0{i + 1}-01T00:00:00Z", {f"sha256:own{i}": 1000})
        registry.record("cache", digests[tag])
    registry.tags_of["me/lab"] = {"2026-01-01": digests[f"lab-{'1' * 64}"]}  # released (registry-side copy)
    return path, registry, digests


def test_keep_zero_removes_only_the_build_nothing_uses_and_reports_it_as_json(setup) -> None:
    path, registry, digests = setup
    result = CliRunner().invoke(cli, ["cache", "prune", "-f", str(path), "--cache", CACHE, "--keep", "0", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [r["tags"] for r in document["remove"]] == [[f"lab-{'2' * 64}"]]
    assert document["deleted"][-1] == digests[f"lab-{'2' * 64}"] and len(document["deleted"]) == 2  # record, image
    reasons = {k["tags"][0]: k["reasons"] for k in document["kept"]}
    assert reasons[f"lab-{'1' * 64}"] == ["released as 127.0.0.1:5000/me/lab:2026-01-01"]
    assert "in the current plan" in next(r for t, r in reasons.items() if t not in (f"lab-{'1' * 64}",))
    assert f"lab-{'2' * 64}" not in registry.tags("cache")


def test_a_dry_run_deletes_nothing_and_says_what_it_would_free(setup) -> None:
    path, registry, _ = setup
    result = CliRunner().invoke(cli, ["cache", "prune", "-f", str(path), "--cache", CACHE, "--keep", "1", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run: would remove 1 image and 1 test record" in result.stdout and registry.deleted == []


def test_a_refusing_registry_gets_the_exact_list_and_exit_status_1(setup) -> None:
    path, registry, digests = setup
    registry.refuse_deletes = True
    result = CliRunner().invoke(cli, ["cache", "prune", "-f", str(path), "--cache", CACHE, "--keep", "0"])
    assert result.exit_code == 1
    assert "405 UNSUPPORTED" in result.stderr and "nothing was deleted" in result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("sha256:")]
    old = digests[f"lab-{'2' * 64}"]
    assert len(listed) == 2 and listed[1] == old and listed[0] != old  # its record first, then the image
    assert registry.deleted == []


def test_no_cache_is_a_usage_error(stack) -> None:
    result = CliRunner().invoke(cli, ["cache", "prune", "-f", str(stack(SPEC))], env={"STACKS_CACHE": ""})
    assert result.exit_code == 2 and "no cache to prune" in result.output
