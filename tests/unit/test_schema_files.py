"""The committed JSON Schemas in schema/ equal what the models generate, and accept real files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from builder.specification.schema import SCHEMAS, schema_text

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_committed_schema_is_up_to_date(kind: str) -> None:
    committed = ROOT / "schema" / f"{kind}.schema.json"
    assert committed.is_file(), f"missing {committed}; run `stacks schema --out schema`"
    assert committed.read_text(encoding="utf-8") == schema_text(kind), (
        f"{committed.name} is stale; run `stacks schema --out schema`"
    )


def _validator(kind: str):
    jsonschema = pytest.importorskip("jsonschema")
    document = json.loads((ROOT / "schema" / f"{kind}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


def test_mini_fixture_matches_the_stacks_schema() -> None:
    validator = _validator("stacks")
    data = yaml.safe_load((ROOT / "tests/fixtures/mini/stacks.yaml").read_text())
    assert list(validator.iter_errors(data)) == []


def test_fixture_fragments_match_the_fragment_schema() -> None:
    validator = _validator("fragment")
    files = sorted((ROOT / "tests/fixtures/mini/fragments").glob("*/fragment.yaml"))
    assert len(files) == 5
    for path in files:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], f"{path}: {errors}"


def test_schema_rejects_what_the_loader_rejects() -> None:
    validator = _validator("stacks")
    assert not validator.is_valid({"images": {"lab": {"base": "x", "fragmnts": []}}})
    assert not validator.is_valid({"axes": {"python": [3.10]}, "images": {}})
    assert not validator.is_valid({"version": 2, "images": {}})
    assert validator.is_valid({"images": {"lab": {"base": "x", "fragments": ["a", {"use": "b", "when": {"os": ["x"]}}]}}})


def test_reference_stack_matches_the_schemas_and_plans() -> None:
    from builder.plan.plan import load_plan

    spec = ROOT / "stacks.yaml"
    if not spec.is_file():
        pytest.skip("no reference stacks.yaml")
    stacks, fragment = _validator("stacks"), _validator("fragment")
    assert [e.message for e in stacks.iter_errors(yaml.safe_load(spec.read_text()))] == []
    for path in sorted((ROOT / "fragments").glob("*/fragment.yaml")):
        errors = [e.message for e in fragment.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], f"{path}: {errors}"
    plan = load_plan(spec)
    assert plan.images() and all(node.hash and node.rendered for node in plan.images())
