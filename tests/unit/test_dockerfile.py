"""The one Dockerfile reader, shared by render, lint and bake."""
from __future__ import annotations

from pathlib import Path

from builder.plan.context_check import body_problems
from builder.plan.dockerfile import copy_sources, froms, instructions
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


def test_arguments_are_what_follows_the_keyword() -> None:
    found = instructions("SHELL [\"/bin/bash\", \"-c\"]\nCOPY --chown=1000 \\\n   a b /dst/\nUSER\n")
    assert [i.arguments.split() for i in found] == [['["/bin/bash",', '"-c"]'], ["--chown=1000", "a", "b", "/dst/"], []]


def test_copy_sources_in_shell_and_json_form() -> None:
    (shell, as_json, from_stage) = instructions(
        "COPY --chown=1000:100 ./fragments/a/x.sh fragments/a/*.py /usr/local/bin/\n"
        'ADD ["fragments/a/with space", "/opt/"]\n'
        "COPY --from=build /out /opt/out\n")
    assert copy_sources(shell) == (["--chown=1000:100"], ["fragments/a/x.sh", "fragments/a/*.py"])
    assert copy_sources(as_json) == ([], ["fragments/a/with space"])
    assert copy_sources(from_stage) == (["--from=build"], ["out"])


def test_context_check_reads_the_body_and_the_template_with_the_one_reader(tmp_path: Path) -> None:
    """A continuation line that starts with COPY or FROM is part of a RUN, not an instruction: the
    missing file is reported at the COPY that names it, and no FROM is found in the body."""
    template = tmp_path / "Dockerfile.j2"
    body = ("RUN echo one \\\n  COPY missing.txt \\\n  && python -c 'pass' \\\n  from here\n"
            "# a comment\nCOPY \\\n  # inside\n  {{ here }}/missing.txt /opt/\n")
    template.write_text(body, encoding="utf-8")
    rendered = body.replace("{{ here }}", "fragments/a")
    problems = body_problems(template, rendered, frozenset({"fragments/a/present.txt"}))
    assert [(p.message, p.location.line) for p in problems] == [
        ("COPY of 'fragments/a/missing.txt', which is not in the build context", 6)]
    assert body_problems(template, rendered.replace("missing", "present"), frozenset({"fragments/a/present.txt"})) == []
