"""Fragment contracts: requirements, versions, conflicts, duplicates and parameters."""
from __future__ import annotations

import pytest

from builder.specification.capabilities import parse_provided, parse_required
from builder.errors import SpecError

from .helpers import resolved_of

HEAD = """
bases:
  debian: {pull: "debian:12", provides: ["os=debian"]}
images:
"""


def problems(path) -> list:
    with pytest.raises(SpecError) as excinfo:
        resolved_of(path)
    return excinfo.value.problems


def only(path):
    found = problems(path)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def test_chain_and_provides(stack) -> None:
    path = stack(HEAD + """
  foundation: {base: debian, fragments: [os]}
  python:
    parent: foundation
    fragments: [{use: py, params: {version: "3.12"}}, lab]
""")
    resolved = resolved_of(path)
    item = resolved["python"]
    assert [a.name for a in item.own] == ["py", "lab"]
    assert [a.name for a in item.chain] == ["os", "py", "lab"]
    assert [(str(p), who) for p, who in item.provides] == [
        ("os=debian", "base 'debian'"), ("shell", "fragment 'os'"),
        ("python=3.12", "fragment 'py'"), ("jupyter-server", "fragment 'lab'"),
    ]
    assert resolved["foundation"].base.name == "debian" and item.base is None


def test_missing_requirement_names_fragment_and_suggests_providers(stack) -> None:
    path = stack(HEAD + """
  lab:
    base: debian
    fragments:
      - use: py
        params: {version: "3.12"}
""")
    problem = only(path)
    assert problem.message == "fragment 'py' requires 'shell', which nothing before it provides"
    assert problem.hint == "add a fragment that provides it first: os"
    assert problem.location.line == 8


def test_requirement_nobody_provides(stack) -> None:
    path = stack(HEAD + "  lab: {base: debian, fragments: [needy]}\n",
                 {"needy": {"meta": {"requires": ["tpu>=4"]}}})
    problem = only(path)
    assert "requires 'tpu>=4'" in problem.message
    assert problem.hint == "no fragment in the library provides 'tpu'"  # the built-in library neither


def test_order_matters_provider_after_requirer(stack) -> None:
    path = stack(HEAD + """
  lab:
    base: debian
    fragments:
      - {use: py, params: {version: "3.12"}}
      - os
""")
    assert "requires 'shell'" in only(path).message


def test_version_specifier_satisfied(stack) -> None:
    path = stack(HEAD + """
  lab:
    base: debian
    fragments: [os, {use: py, params: {version: "3.10"}}, lab]
""")
    assert [a.name for a in resolved_of(path)["lab"].own] == ["os", "py", "lab"]


def test_version_specifier_unsatisfied_shows_what_was_found(stack) -> None:
    path = stack(HEAD + """
  lab:
    base: debian
    fragments:
      - os
      - {use: py, params: {version: "3.9"}}
      - lab
""")
    problem = only(path)
    assert problem.message == (
        "fragment 'lab' requires 'python>=3.10', which nothing before it provides; "
        "found only python=3.9 (from fragment 'py')"
    )
    assert problem.location.line == 10
    assert "py" in problem.hint


def test_requirement_satisfied_by_base_and_by_parent(stack) -> None:
    path = stack(HEAD + """
  foundation: {base: debian, fragments: [os]}
  child: {parent: foundation, fragments: [needs-debian, {use: py, params: {version: "3.13"}}]}
""", {"needs-debian": {"meta": {"requires": ["os=debian", "shell"]}}})
    assert [a.name for a in resolved_of(path)["child"].own] == ["needs-debian", "py"]


@pytest.mark.parametrize("text, provided, ok", [
    ("python>=3.10", "python=3.12", True),
    ("python>=3.10", "python=3.9", False),
    ("python=3.12", "python=3.12", True),
    ("python==3.12", "python=3.12.1", False),
    ("python", "python", True),
    ("python>=3", "python", False),
    ("python>=3", "pythonx=4", False),
    ("java==temurin", "java=temurin", True),
    ("java==zulu", "java=temurin", False),
    ("os=debian", "os=debian", True),
    ("os=debian", "os=ubuntu", False),
    ("os=debian", "os", False),
])
def test_capability_grammar(text: str, provided: str, ok: bool) -> None:
    assert parse_required(text).satisfied_by(parse_provided(provided)) is ok


def test_requirement_prints_as_written() -> None:
    assert str(parse_required("os=debian")) == "os=debian"
    assert str(parse_required("python>=3.10")) == "python>=3.10"
    assert str(parse_required("shell")) == "shell"



@pytest.mark.parametrize("bad", ["python>=x.y!", ">=3", "py thon"])
def test_bad_requirement_strings(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_required(bad)


def test_conflict_between_parent_and_child_fragment_names_both(stack) -> None:
    path = stack(HEAD + """
  foundation: {base: debian, fragments: [os, kernel-a]}
  child: {parent: foundation, fragments: [kernel-b]}
""", {
        "kernel-a": {"meta": {"provides": ["kernelspec:k"]}},
        "kernel-b": {"meta": {"provides": ["kernelspec:k2"], "conflicts": ["kernelspec:k"]}},
    })
    problem = only(path)
    assert "fragments 'kernel-b' and 'kernel-a' conflict" in problem.message
    assert "image 'child' adds 'kernel-b'" in problem.message
    assert "'kernel-a' comes from image 'foundation'" in problem.message
    assert problem.location.line == 6


def test_conflict_declared_by_the_earlier_fragment(stack) -> None:
    path = stack(HEAD + """
  foundation: {base: debian, fragments: [old]}
  child: {parent: foundation, fragments: [new]}
""", {"old": {"meta": {"conflicts": ["new"]}}, "new": {}})
    problem = only(path)
    assert "fragments 'old' and 'new' conflict: 'old' declares conflicts: [new]" in problem.message


def test_fragment_applied_twice_via_parent(stack) -> None:
    path = stack(HEAD + """
  foundation: {base: debian, fragments: [os]}
  child: {parent: foundation, fragments: [tool, os]}
""")
    problem = only(path)
    assert problem.message == "fragment 'os' is applied twice: already by image 'foundation'"
    assert problem.location.line == 6


def test_unknown_param_with_did_you_mean(stack) -> None:
    path = stack(HEAD + """
  lab:
    base: debian
    fragments:
      - use: tool
        params: {levl: 2}
""")
    problem = only(path)
    assert problem.message == "fragment 'tool' has no parameter 'levl'"
    assert problem.hint == "did you mean 'level'?"
    assert (problem.location.line, problem.location.column) == (9, 18)


def test_param_to_a_fragment_without_params(stack) -> None:
    path = stack(HEAD + "  lab: {base: debian, fragments: [{use: os, params: {x: 1}}]}\n")
    assert only(path).hint == "it takes no parameters"


def test_missing_required_param(stack) -> None:
    path = stack(HEAD + """
  lab:
    base: debian
    fragments: [os, py]
""")
    problem = only(path)
    assert problem.message == "fragment 'py' needs parameter 'version' (Python version)"
    assert "params: {version: ...}" in problem.hint
    assert (problem.location.line, problem.location.column) == (7, 21)


@pytest.mark.parametrize("value, expected", [("two", "expected an integer"), ("[1]", "expected an integer"), ("true", "expected an integer")])
def test_wrong_param_type(stack, value: str, expected: str) -> None:
    path = stack(HEAD + f"""
  lab:
    base: debian
    fragments:
      - use: tool
        params:
          level: {value}
""")
    problem = only(path)
    assert problem.message.startswith("fragment 'tool' parameter 'level': ")
    assert expected in problem.message
    assert problem.location.line == 10


def test_number_where_string_expected_hints_at_quotes(stack) -> None:
    path = stack(HEAD + "  lab: {base: debian, fragments: [os, {use: py, params: {version: 3.12}}]}\n")
    problem = only(path)  # and no second "needs parameter 'version'" error
    assert "expected a string (quote it), got float 3.12" in problem.message


def test_templated_param_is_converted_to_its_type(stack) -> None:
    path = stack("""
axes:
  size: ["1", "2"]
bases:
  debian: {pull: "debian:12"}
images:
  lab:
    base: debian
    axes: [size]
    fragments: [{use: tool, params: {level: "{{ size }}"}}]
""")
    resolved = resolved_of(path)
    assert resolved["lab-2"].own[0].params == {"level": 2}


def test_choices(stack) -> None:
    fragments = {"flavour": {"meta": {"params": {"kind": {"type": "string", "default": "a", "choices": ["a", "b"]}}},
                             "body": "RUN echo {{ kind }}\n"}}
    good = stack(HEAD + "  lab: {base: debian, fragments: [{use: flavour, params: {kind: b}}]}\n", fragments)
    assert resolved_of(good)["lab"].own[0].params == {"kind": "b"}
    bad = stack(HEAD + "  lab: {base: debian, fragments: [{use: flavour, params: {kind: c}}]}\n", fragments)
    problem = only(bad)
    assert "'c' is not one of ['a', 'b']" in problem.message


def test_defaults_fill_missing_params(stack) -> None:
    path = stack(HEAD + "  lab: {base: debian, fragments: [tool]}\n")
    assert resolved_of(path)["lab"].own[0].params == {"level": 3}


def test_same_mistake_in_every_variant_is_reported_once(stack) -> None:
    path = stack("""
axes:
  n: [a, b, c, d]
bases:
  debian: {pull: "debian:12"}
images:
  lab: {base: debian, axes: [n], fragments: [{use: tool, params: {levl: 1}}]}
""")
    assert len(problems(path)) == 1


def test_several_contract_problems_in_one_run(stack) -> None:
    path = stack(HEAD + """
  a:
    base: debian
    fragments:
      - py
      - {use: tool, params: {level: x}}
  b:
    base: debian
    fragments: [lab]
""")
    found = problems(path)
    assert len(found) >= 3
    assert len({p.location.line for p in found}) >= 3
