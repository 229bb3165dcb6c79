"""Matrix expansion: axes products, inheritance, exclude/include, when, defaults, names."""
from __future__ import annotations

import pytest

from builder.errors import SpecError

from .helpers import plan_of, resolved_of, variants_of

AXES = """
axes:
  os: [bookworm, trixie]
  python: ["3.11", "3.12", "3.13"]
  accel: [cpu, cuda]
bases:
  debian: {pull: "debian:{{ os }}"}
"""


def names(path, image: str | None = None) -> list[str]:
    return [v.name for v in variants_of(path) if image is None or v.image == image]


def test_product_of_axes_in_declaration_order(stack) -> None:
    path = stack(AXES + """
images:
  lab:
    base: debian
    axes: [python, os]
""")
    variants = variants_of(path)
    assert [v.name for v in variants] == [
        "lab-bookworm-3.11", "lab-bookworm-3.12", "lab-bookworm-3.13",
        "lab-trixie-3.11", "lab-trixie-3.12", "lab-trixie-3.13",
    ]
    assert variants[0].axes == {"os": "bookworm", "python": "3.11"}
    assert variants[0].label == "bookworm-3.11"
    assert all(v.parent is None for v in variants)


def test_image_without_axes_is_one_variant_named_like_the_image(stack) -> None:
    path = stack(AXES + "images:\n  plain: {base: debian}\n")
    (variant,) = variants_of(path)
    assert (variant.name, variant.axes, variant.label, variant.is_default) == ("plain", {}, "", True)


def test_children_inherit_parent_axes(stack) -> None:
    path = stack(AXES + """
images:
  foundation: {base: debian, axes: [os]}
  python: {parent: foundation, axes: [python]}
  lab: {parent: python}
""")
    variants = variants_of(path)
    assert names(path, "foundation") == ["foundation-bookworm", "foundation-trixie"]
    assert len(names(path, "python")) == 6
    assert names(path, "lab") == [n.replace("python-", "lab-") for n in names(path, "python")]
    by_name = {v.name: v for v in variants}
    assert by_name["python-trixie-3.12"].parent == "foundation-trixie"
    assert by_name["lab-trixie-3.12"].parent == "python-trixie-3.12"
    assert by_name["lab-trixie-3.12"].axes == {"os": "trixie", "python": "3.12"}
    # parents always come before children
    position = {v.name: i for i, v in enumerate(variants)}
    assert all(position[v.parent] < position[v.name] for v in variants if v.parent)


def test_repeating_a_parent_axis_is_an_error(stack) -> None:
    path = stack(AXES + """
images:
  foundation: {base: debian, axes: [os]}
  python: {parent: foundation, axes: [python, os]}
""")
    with pytest.raises(SpecError) as excinfo:
        variants_of(path)
    (problem,) = excinfo.value.problems
    assert problem.message == "image 'python': axis 'os' already comes from parent 'foundation'"
    assert problem.location.line == 10 and problem.location.column == 47


def test_exclude_drops_matching_combinations(stack) -> None:
    path = stack(AXES + """
images:
  lab:
    base: debian
    axes: [os, python]
    exclude:
      - {os: trixie, python: ["3.11", "3.12"]}
      - {python: "3.13", os: bookworm}
""")
    assert names(path) == ["lab-bookworm-3.11", "lab-bookworm-3.12", "lab-trixie-3.13"]


def test_exclude_on_inherited_axis_of_a_child(stack) -> None:
    path = stack(AXES + """
images:
  foundation: {base: debian, axes: [os]}
  gpu:
    parent: foundation
    axes: [accel]
    exclude: [{os: trixie, accel: cuda}]
""")
    assert names(path, "gpu") == ["gpu-bookworm-cpu", "gpu-bookworm-cuda", "gpu-trixie-cpu"]


def test_include_adds_excluded_combinations_back(stack) -> None:
    path = stack(AXES + """
images:
  lab:
    base: debian
    axes: [os, python]
    exclude: [{os: trixie}]
    include: [{os: trixie, python: "3.13"}]
""")
    assert names(path) == [
        "lab-bookworm-3.11", "lab-bookworm-3.12", "lab-bookworm-3.13", "lab-trixie-3.13",
    ]


def test_include_leaves_unnamed_axes_free_and_does_not_duplicate(stack) -> None:
    path = stack(AXES + """
images:
  lab:
    base: debian
    axes: [os, accel]
    exclude: [{accel: cuda}]
    include: [{accel: cuda}, {os: bookworm}]
""")
    assert sorted(names(path)) == sorted([
        "lab-bookworm-cpu", "lab-trixie-cpu", "lab-bookworm-cuda", "lab-trixie-cuda",
    ])


def test_include_never_creates_a_variant_without_its_parent(stack) -> None:
    path = stack(AXES + """
images:
  foundation:
    base: debian
    axes: [os]
    exclude: [{os: trixie}]
  gpu:
    parent: foundation
    axes: [accel]
    exclude: [{accel: cuda}]
    include: [{os: trixie, accel: cuda}, {os: bookworm, accel: cuda}]
""")
    assert names(path, "foundation") == ["foundation-bookworm"]
    assert names(path, "gpu") == ["gpu-bookworm-cpu", "gpu-bookworm-cuda"]


def test_when_conditions_select_fragments_per_variant(stack) -> None:
    path = stack(AXES + """
images:
  lab:
    base: debian
    axes: [os, accel]
    fragments:
      - os
      - use: tool
        when: {accel: cuda}
      - use: py
        params: {version: "3.12"}
        when: {accel: [cpu]}
""")
    resolved = resolved_of(path)
    assert [a.name for a in resolved["lab-trixie-cpu"].own] == ["os", "py"]
    assert [a.name for a in resolved["lab-trixie-cuda"].own] == ["os", "tool"]
    assert [a.name for a in resolved["lab-bookworm-cuda"].chain] == ["os", "tool"]


def test_default_variant_is_all_first_values(stack) -> None:
    path = stack(AXES + """
images:
  foundation: {base: debian, axes: [os]}
  python: {parent: foundation, axes: [python]}
""")
    defaults = [v.name for v in variants_of(path) if v.is_default]
    assert defaults == ["foundation-bookworm", "python-bookworm-3.11"]


def test_no_default_variant_when_the_first_value_is_excluded(stack) -> None:
    path = stack(AXES + """
images:
  lab: {base: debian, axes: [os], exclude: [{os: bookworm}]}
""")
    (variant,) = variants_of(path)
    assert variant.name == "lab-trixie" and not variant.is_default


def test_axis_variables_and_labels(stack) -> None:
    path = stack("""
axes:
  os:
    bookworm: {python: "3.11", label: deb12}
    noble: {python: "3.12", label: ubu24}
bases:
  debian: {pull: "debian:12"}
images:
  lab:
    base: debian
    axes: [os]
    fragments:
      - os
      - use: py
        params: {version: "{{ os.python }}"}
""")
    variants = variants_of(path)
    assert [v.name for v in variants] == ["lab-deb12", "lab-ubu24"]
    assert variants[1].axes == {"os": "noble"}
    resolved = resolved_of(path)
    assert resolved["lab-ubu24"].own[1].params == {"version": "3.12"}


def test_name_template(stack) -> None:
    path = stack(AXES + """
images:
  lab:
    base: debian
    axes: [python]
    name: "py{{ python | replace('.', '') }}-{{ image }}"
""")
    assert names(path) == ["py311-lab", "py312-lab", "py313-lab"]


def test_duplicate_names_after_expansion_name_both_images(stack) -> None:
    path = stack(AXES + """
images:
  one:
    base: debian
    axes: [os]
    name: "img-{{ os }}"
  two:
    base: debian
    axes: [os]
    name: "img-{{ os }}"
""")
    with pytest.raises(SpecError) as excinfo:
        variants_of(path)
    problems = excinfo.value.problems
    assert len(problems) == 2
    first = next(p for p in problems if "'img-bookworm'" in p.message)
    assert "image 'one'" in first.message and "image 'two'" in first.message
    assert first.location.line == 14  # where image 'two' is defined


def test_name_template_that_drops_an_axis_clashes_within_one_image(stack) -> None:
    path = stack(AXES + """
images:
  lab:
    base: debian
    axes: [os, accel]
    name: "lab-{{ os }}"
""")
    with pytest.raises(SpecError) as excinfo:
        variants_of(path)
    messages = [p.message for p in excinfo.value.problems]
    assert any("two variants are both named 'lab-bookworm'" in m for m in messages)


@pytest.mark.parametrize("template, bad", [("Lab-{{ os }}", "Lab-bookworm"), ("lab_{{ os }}_", "lab_bookworm_"), ("lab {{ os }}", "lab bookworm")])
def test_invalid_variant_names(stack, template: str, bad: str) -> None:
    path = stack(AXES + f"""
images:
  lab:
    base: debian
    axes: [os]
    name: "{template}"
""")
    with pytest.raises(SpecError) as excinfo:
        variants_of(path)
    problems = excinfo.value.problems
    assert any(f"variant name '{bad}' is not a valid image name" in p.message for p in problems)
    assert all(p.location.line == 12 for p in problems)  # the 'name:' line


def test_axis_value_that_makes_an_invalid_name_suggests_a_label(stack) -> None:
    path = stack("""
axes:
  cuda: ["12.4+cudnn"]
bases:
  debian: {pull: "debian:12"}
images:
  lab: {base: debian, axes: [cuda]}
""")
    with pytest.raises(SpecError) as excinfo:
        variants_of(path)
    (problem,) = excinfo.value.problems
    assert "'lab-12.4+cudnn' is not a valid image name" in problem.message
    assert "label" in problem.hint


def test_name_template_error(stack) -> None:
    path = stack(AXES + """
images:
  lab: {base: debian, axes: [os], name: "{{ nope }}-x"}
""")
    with pytest.raises(SpecError) as excinfo:
        variants_of(path)
    assert any("name template" in p.message and "nope" in p.message for p in excinfo.value.problems)


def test_plan_nodes_follow_the_matrix(stack) -> None:
    path = stack(AXES + """
images:
  foundation: {base: debian, axes: [os], fragments: [os]}
  lab: {parent: foundation, axes: [accel]}
""")
    plan = plan_of(path)
    assert [n.name for n in plan] == [
        "debian-bookworm", "foundation-bookworm", "debian-trixie", "foundation-trixie",
        "lab-bookworm-cpu", "lab-bookworm-cuda", "lab-trixie-cpu", "lab-trixie-cuda",
    ]
    assert plan["debian-trixie"].local_ref == "debian:trixie"
    assert plan["lab-trixie-cuda"].parent == "foundation-trixie"
