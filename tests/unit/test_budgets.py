"""Size budgets: parsed at plan time, shown in the build report, refused when malformed."""
from __future__ import annotations

import pytest

from builder.building.results import ImageResult
from builder.errors import SpecError
from builder.plan.sizes import parse_size
from builder.reports.report import markdown

from .helpers import plan_of

SPEC = """
    bases:
      local: {bootstrap: {suite: bookworm}}
    images:
      core: {base: local, fragments: [os], size_budget: 2.5GB}
      plain: {parent: core, fragments: [tool]}
"""


@pytest.mark.parametrize("text, size", [("600MB", 600_000_000), ("2.5GB", 2_500_000_000), ("750kB", 750_000), ("1 GB", 1_000_000_000)])
def test_sizes_use_decimal_units(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_budget_belongs_to_its_image_only(stack) -> None:
    plan = plan_of(stack(SPEC))
    assert plan["core"].size_budget == 2_500_000_000
    assert plan["plain"].size_budget is None
    assert plan["core"].summary()["size_budget"] == 2_500_000_000


def test_malformed_budget_is_an_error_at_its_line(stack) -> None:
    path = stack(SPEC.replace("2.5GB", "2.5 gigs"))
    with pytest.raises(SpecError) as excinfo:
        plan_of(path)
    problem = excinfo.value.problems[0]
    assert "size_budget" in str(problem) and problem.location.line == 4


def test_report_marks_an_image_over_budget() -> None:
    ok = ImageResult("lab", "image", None, "a" * 64, "stacks/lab:a", status="built", size=450_000_000, size_budget=600_000_000)
    fat = ImageResult("fat", "image", None, "b" * 64, "stacks/fat:b", status="built", size=700_000_000, size_budget=600_000_000)
    text = markdown([ok, fat], {"engine": "test", "seconds": 1})
    assert "| 450.0 MB of 600.0 MB |" in text
    assert "**700.0 MB of 600.0 MB: over budget**" in text
