"""Loading stacks.yaml: YAML errors, schema errors and cross-references, each located."""
from __future__ import annotations

from pathlib import Path

import pytest

from builder.errors import SpecError
from builder.specification.load import load_spec

GOOD = """
version: 1
axes:
  os: [bookworm, trixie]
bases:
  debian:
    pull: "debian:{{ os }}"
images:
  foundation:
    base: debian
    axes: [os]
    fragments: [os]
  python:
    parent: foundation
    fragments:
      - use: py
        params: {version: "3.12"}
"""


def errors(path: Path) -> list:
    with pytest.raises(SpecError) as excinfo:
        load_spec(path)
    return excinfo.value.problems


def only(path: Path):
    problems = errors(path)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def test_good_file_loads(stack) -> None:
    spec = load_spec(stack(GOOD))
    assert list(spec.images) == ["foundation", "python"]
    assert spec.axes == {"os": {"bookworm": {}, "trixie": {}}}
    assert spec.image_order() == ["foundation", "python"]
    assert set(spec.library.fragments) >= {"os", "py"}
    assert spec.images["python"].uses()[0].params == {"version": "3.12"}


def test_mini_fixture_loads() -> None:
    spec = load_spec(Path(__file__).parent.parent / "fixtures" / "mini" / "stacks.yaml")
    assert list(spec.images) == ["foundation", "python", "kernels", "plain"]
    assert spec.axes["os"]["trixie"] == {"python": "3.13"}


def test_yaml_syntax_error_has_file_line_and_column(stack) -> None:
    path = stack("""
        images:
          lab:
            base: x
            fragments: [a, b
          other: 1
        """)
    problem = only(path)
    assert "YAML syntax error" in problem.message
    assert problem.location.file == path
    assert problem.location.line == 5 and problem.location.column is not None
    assert str(problem).startswith(f"{problem.location.file}:5:") or ":5:" in str(problem)


def test_tab_indentation_is_a_syntax_error_with_a_line(stack) -> None:
    path = stack("images:\n\tlab: {}\n")
    problem = only(path)
    assert "YAML syntax error" in problem.message
    assert problem.location.line == 2


def test_empty_file(stack) -> None:
    problem = only(stack(""))
    assert "file is empty" in problem.message
    assert problem.location.line == 1


def test_comment_only_file_is_empty(stack) -> None:
    assert "file is empty" in only(stack("# nothing here\n")).message


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just text\n", "string"), ("42\n", "int")])
def test_top_level_must_be_a_mapping(stack, text: str, kind: str) -> None:
    problem = only(stack(text))
    assert "top level must be a mapping" in problem.message
    assert f"not a {kind}" in problem.message


def test_duplicate_key_is_reported_at_the_second_occurrence(stack) -> None:
    path = stack("""
        images:
          lab:
            base: debian
          lab:
            base: debian
        """)
    problem = only(path)
    assert problem.message == "duplicate key 'lab'"
    assert (problem.location.line, problem.location.column) == (4, 3)


def test_duplicate_keys_are_all_reported(stack) -> None:
    path = stack("""
        version: 1
        version: 1
        images:
          a: {base: x}
          a: {base: x}
        """)
    problems = errors(path)
    assert sorted(p.location.line for p in problems) == [2, 5]


def test_unknown_key_has_did_you_mean(stack) -> None:
    path = stack("""
        bases:
          debian: {pull: "debian:12"}
        images:
          lab:
            base: debian
            fragmnts: [os]
        """)
    problem = only(path)
    assert problem.message == "unknown key 'fragmnts' in images.lab"
    assert problem.hint == "did you mean 'fragments'?"
    assert (problem.location.line, problem.location.column) == (6, 5)


def test_unknown_top_level_key(stack) -> None:
    problem = only(stack("imagez: {}\nimages: {}\n"))
    assert "unknown key 'imagez' in the top level" in problem.message
    assert problem.hint == "did you mean 'images'?"
    assert problem.location.line == 1


def test_unknown_nested_settings_key(stack) -> None:
    path = stack("""
        settings:
          registry: {host: r.example.com, namespce: team}
        images: {}
        """)
    problem = only(path)
    assert "unknown key 'namespce' in settings.registry" in problem.message
    assert problem.hint == "did you mean 'namespace'?"
    assert problem.location.line == 2


def test_float_axis_value_hints_at_quoting(stack) -> None:
    path = stack("""
        axes:
          python: [3.10, "3.11"]
        images: {}
        """)
    problem = only(path)
    assert "axes.python" in problem.message
    assert "string" in problem.message
    assert "quotes" in problem.hint and "3.1" in problem.hint
    assert problem.location.line == 2


def test_wrong_type_names_the_expected_type(stack) -> None:
    path = stack("""
        bases:
          debian: {pull: "debian:12"}
        images:
          lab:
            base: debian
            push: [yes]
        """)
    problem = only(path)
    assert "images.lab.push" in problem.message and "boolean" in problem.message
    assert problem.location.line == 6


def test_missing_images_key(stack) -> None:
    problem = only(stack("version: 1\n"))
    assert problem.message == "missing required key 'images'"


def test_image_needs_parent_or_base(stack) -> None:
    path = stack("""
        bases:
          debian: {pull: "debian:12"}
        images:
          lab:
            fragments: [os]
          both:
            base: debian
            parent: lab
        """)
    problems = errors(path)
    assert [p.location.line for p in problems] == [5, 7]
    assert all("exactly one of 'parent' or 'base'" in p.message for p in problems)


def test_unknown_parent_base_and_fragment_with_hints(stack) -> None:
    path = stack("""
        bases:
          debian: {pull: "debian:12"}
        images:
          foundation:
            base: debain
            fragments: [os, pyy]
          lab:
            parent: foundaton
        """)
    problems = {p.message: p for p in errors(path)}
    base = problems["image 'foundation': unknown base 'debain'"]
    assert base.hint == "did you mean 'debian'?" and base.location.line == 5
    frag = problems["image 'foundation': unknown fragment 'pyy'"]
    assert frag.hint == "did you mean 'py'?" and frag.location.line == 6
    parent = problems["image 'lab': unknown parent 'foundaton'"]
    assert parent.hint == "did you mean 'foundation'?" and parent.location.line == 8


def test_unknown_fragment_without_close_match_names_the_folders(stack) -> None:
    path = stack("""
        bases:
          debian: {pull: "debian:12"}
        images:
          lab: {base: debian, fragments: [zzzzzz]}
        """)
    problem = only(path)
    assert "unknown fragment 'zzzzzz'" in problem.message
    assert "fragments" in problem.hint and "fragment.yaml" in problem.hint


def test_unknown_axis_of_an_image(stack) -> None:
    path = stack("""
        axes:
          python: ["3.11", "3.12"]
        bases:
          debian: {pull: "debian:12"}
        images:
          lab:
            base: debian
            axes: [pyhton]
        """)
    problem = only(path)
    assert problem.message == "image 'lab': unknown axis 'pyhton'"
    assert problem.hint == "did you mean 'python'?"
    assert problem.location.line == 8


@pytest.mark.parametrize("field", ["exclude", "include"])
def test_unknown_axis_value_in_rules(stack, field: str) -> None:
    path = stack(f"""
        axes:
          python: ["3.11", "3.12"]
          os: [bookworm, trixie]
        bases:
          debian: {{pull: "debian:12"}}
        images:
          lab:
            base: debian
            axes: [python, os]
            {field}:
              - {{python: "3.13", os: bookwrm}}
              - {{pyton: "3.11"}}
        """)
    problems = errors(path)
    messages = {p.message: p for p in problems}
    assert set(messages) == {"axis 'python' has no value '3.13'", "axis 'os' has no value 'bookwrm'", "unknown axis 'pyton'"}
    assert messages["axis 'os' has no value 'bookwrm'"].hint == "did you mean 'bookworm'?"
    assert messages["axis 'python' has no value '3.13'"].location.line == 11
    assert messages["unknown axis 'pyton'"].hint == "did you mean 'python'?"
    assert messages["unknown axis 'pyton'"].location.line == 12


def test_unknown_axis_value_in_when(stack) -> None:
    path = stack("""
        axes:
          accel: [cpu, cuda]
        bases:
          debian: {pull: "debian:12"}
        images:
          lab:
            base: debian
            axes: [accel]
            fragments:
              - use: os
                when: {accel: [cpu, rocm]}
        """)
    problem = only(path)
    assert problem.message == "axis 'accel' has no value 'rocm'"
    assert problem.location.line == 11
    assert "cpu" in problem.hint and "cuda" in problem.hint


def test_cycle_between_images_is_printed(stack) -> None:
    path = stack("""
        bases:
          debian: {pull: "debian:12"}
        images:
          root: {base: debian}
          a: {parent: b}
          b: {parent: a}
        """)
    problem = only(path)
    assert "images form a cycle" in problem.message
    assert "a -> b -> a" in problem.message or "b -> a -> b" in problem.message
    assert problem.location.line in (5, 6)


def test_three_image_cycle(stack) -> None:
    path = stack("""
        images:
          a: {parent: c}
          b: {parent: a}
          c: {parent: b}
        """)
    problem = only(path)
    chain = problem.message.split("cycle: ")[1].split(" (")[0].split(" -> ")
    assert len(chain) == 4 and chain[0] == chain[-1] and set(chain) == {"a", "b", "c"}


def test_own_parent(stack) -> None:
    problem = only(stack("images:\n  a: {parent: a}\n"))
    assert problem.message == "image 'a' is its own parent"


def test_bad_names_of_images(stack) -> None:
    path = stack("""
        bases:
          debian: {pull: "debian:12"}
        images:
          Lab: {base: debian}
        """)
    problem = only(path)
    assert "names must be lowercase" in problem.message and "'Lab'" in problem.message


def test_several_errors_of_one_file_in_one_run(stack) -> None:
    path = stack("""
        axes:
          os: [bookworm]
        bases:
          debian: {pull: "debian:12"}
        images:
          a:
            base: debian
            fragmnts: [os]
          b:
            parent: a
            push: maybe
          c:
            parent: a
            weight: 0
        """)
    problems = errors(path)
    assert len(problems) >= 3
    lines = [p.location.line for p in problems]
    assert len(set(lines)) == len(lines), lines
    assert lines == sorted(lines)
    assert {8, 11, 14} <= set(lines)


def test_several_reference_errors_in_one_run(stack) -> None:
    path = stack("""
        bases:
          debian: {pull: "debian:12"}
        images:
          a: {base: debain, fragments: [oss]}
          b: {parent: aa, axes: [nope]}
        """)
    problems = errors(path)
    assert len(problems) >= 4
    assert {p.location.line for p in problems} == {4, 5}
    assert str(SpecError(problems)).count("error:") == len(problems)


def test_messages_print_as_file_line_column(stack, monkeypatch) -> None:
    path = stack("images:\n  lab:\n    base: debian\n    fragmnts: []\n")
    monkeypatch.chdir(path.parent)
    problem = errors(path)[0]
    text = str(problem)
    assert text.startswith("stacks.yaml:")
    assert "error: " in text and "hint: " in text


def test_missing_file(tmp_path: Path) -> None:
    problem = only(tmp_path / "nope.yaml")
    assert "cannot read file" in problem.message
