"""The one Dockerfile reader, shared by render, lint and bake."""
from __future__ import annotations

from builder.plan.dockerfile import froms, instructions
from builder.plan.render import _inject_build_env


def test_froms_read_continued_lines_platforms_and_stage_names() -> None:
    text = "FROM --platform=linux/arm64 \\\n    base:1 AS build\nRUN x\nfrom \\\n  # a comment inside\n  final:2\n"
    assert froms(text) == [("base:1", "build"), ("final:2", None)]


def test_instructions_keep_their_first_and_last_line() -> None:
    found = instructions("FROM a\n\nRUN b \\\n  && c\n# note\nUSER d\n")
    assert [(i.keyword, i.first, i.last) for i in found] == [("FROM", 0, 0), ("RUN", 2, 3), ("USER", 5, 5)]
    assert found[2].comments == ("# note",)


def test_a_run_inside_a_continued_line_is_not_an_instruction() -> None:
    text = "FROM a\nRUN echo \\\n  RUN not-an-instruction\n"
    injected = _inject_build_env(text, "buildkit").split("\n")
    assert injected[1].startswith("ARG ")
    assert injected[2].startswith("RUN --mount=type=secret") and injected[3] == "  RUN not-an-instruction"
    assert _inject_build_env(text, "classic").count("--mount") == 0
