"""Expand image definitions over their matrix axes into concrete variants.

An image varies over its parent's axes plus the axes it adds. For each
variant of the parent, the image takes every combination of its own axes'
values, drops those matching an `exclude` rule, and adds those named by an
`include` rule (include wins over exclude). Variants are therefore only ever
created where their parent variant exists.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import jinja2

from builder.errors import Problem, raise_if_any, warning
from builder.specification.templating import render_text
from builder.specification.models import NAME_PATTERN, AxisRule
from builder.specification.load import Spec

class AxisValue(str):
    """An axis value that also exposes its variables: `{{ os }}` and `{{ os.python }}`."""

    variables: Mapping[str, Any]

    def __new__(cls, value: str, variables: Mapping[str, Any]) -> "AxisValue":
        obj = super().__new__(cls, value)
        obj.variables = variables
        return obj

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["variables"][name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class Variant:
    """One concrete image of the matrix."""

    image: str
    name: str
    axes: dict[str, str]
    parent: str | None
    label: str
    is_default: bool
    context: dict[str, Any] = field(compare=False, repr=False)


def expand(spec: Spec, warnings: list[Problem] | None = None) -> list[Variant]:
    """All variants, parents before children; raises SpecError on bad names or clashes.

    Rules that change nothing (an `exclude` matching no combination, an `include`
    that adds nothing) and images left without any variant are added to `warnings`:
    such a spec plans, but not as its author meant."""
    warnings = [] if warnings is None else warnings
    variants: dict[str, list[Variant]] = {}
    problems: list[Problem] = []
    for image in spec.image_order():
        definition = spec.images[image]
        parents: list[Variant | None] = list(variants.get(definition.parent or "", [])) if definition.parent else [None]
        inherited = set(parents[0].axes) if parents and parents[0] is not None else set()
        for axis in definition.axes:
            if axis in inherited:
                problems.append(Problem(
                    f"image '{image}': axis '{axis}' already comes from parent '{definition.parent}'",
                    spec.where("images", image, "axes", definition.axes.index(axis)),
                    "list only the axes this image adds",
                ))
        own = [a for a in spec.axes if a in definition.axes and a not in inherited]
        if parents:
            problems += _foreign_include_axes(spec, image, set(own) | inherited)
        found = []
        used: set[tuple[str, int]] = set()
        for parent in parents:
            for assignment in _assignments(spec, parent.axes if parent else {}, own, definition.exclude,
                                           definition.include, used):
                found.append(_variant(spec, image, assignment, parent, problems))
        variants[image] = found
        warnings += _idle_rules(spec, image, used, bool(parents))
        if parents and not found:
            warnings.append(warning(f"image '{image}' has no variants: its exclude rules remove every combination",
                                    spec.where("images", image), "it and its children are not planned"))
    everything = [v for group in variants.values() for v in group]
    problems += _duplicate_names(spec, everything)
    raise_if_any(problems)
    return everything


def _assignments(
    spec: Spec, inherited: dict[str, str], own: list[str], exclude: list[AxisRule], include: list[AxisRule],
    used: set[tuple[str, int]] | None = None,
) -> list[dict[str, str]]:
    """The axis assignments of one parent variant; `used` collects ("exclude"|"include", index) of rules that acted."""
    used = set() if used is None else used
    chosen = []
    for combo in itertools.product(*(spec.axes[a] for a in own)):
        assignment = _ordered(spec, {**inherited, **dict(zip(own, combo))})
        hits = [index for index, rule in enumerate(exclude) if matches(rule, assignment)]
        used.update(("exclude", index) for index in hits)
        if not hits:
            chosen.append(assignment)
    for index, rule in enumerate(include):
        if not all(_accepts(rule.get(a), v) for a, v in inherited.items() if a in rule):
            continue
        used.add(("include", index))
        free = [a for a in own if a not in rule]
        fixed = [(a, rule[a]) for a in own if a in rule]
        for fixed_values in itertools.product(*([v] if isinstance(v, str) else v for _, v in fixed)):
            for combo in itertools.product(*(spec.axes[a] for a in free)):
                assignment = _ordered(spec, {**inherited, **dict(zip([a for a, _ in fixed], fixed_values)), **dict(zip(free, combo))})
                if assignment not in chosen:
                    chosen.append(assignment)
    return chosen


def _foreign_include_axes(spec: Spec, image: str, has: set[str]) -> list[Problem]:
    """Include rules naming an axis the image does not vary over: the value would be silently dropped,
    so the variant the author asked for would never exist."""
    found = []
    for index, rule in enumerate(spec.images[image].include):
        for axis in rule:
            if axis in spec.axes and axis not in has:
                found.append(Problem(
                    f"image '{image}': this include rule names axis '{axis}', which the image does not have",
                    spec.where("images", image, "include", index, axis, key=True),
                    f"its axes: {', '.join(a for a in spec.axes if a in has) or 'none'}; "
                    f"add '{axis}' to its 'axes' or drop it from the rule"))
    return found


def _idle_rules(spec: Spec, image: str, used: set[tuple[str, int]], has_parents: bool) -> list[Problem]:
    definition = spec.images[image]
    found = []
    for field_name, rules, what in (("exclude", definition.exclude, "matches no combination of axis values"),
                                    ("include", definition.include, "names values no parent variant has")):
        for index, _ in enumerate(rules):
            if (field_name, index) not in used and has_parents:
                found.append(warning(f"image '{image}': this {field_name} rule {what}, so it does nothing",
                                     spec.where("images", image, field_name, index),
                                     "check the axis values against the parent's; a parent's exclude removes them here too"))
    return found


def _ordered(spec: Spec, assignment: dict[str, str]) -> dict[str, str]:
    return {a: assignment[a] for a in spec.axes if a in assignment}


def _accepts(wanted: str | list[str] | None, value: str) -> bool:
    return wanted is None or (value == wanted if isinstance(wanted, str) else value in wanted)


def matches(rule: AxisRule, assignment: dict[str, str]) -> bool:
    """True when every axis the rule names has one of the rule's values (and the rule names any)."""
    return bool(rule) and all(axis in assignment and _accepts(wanted, assignment[axis]) for axis, wanted in rule.items())


def axis_context(spec: Spec, assignment: dict[str, str]) -> dict[str, AxisValue]:
    """Template variables for an assignment: each axis name bound to its value."""
    return {axis: AxisValue(value, spec.axes[axis][value]) for axis, value in assignment.items()}


def _variant(spec: Spec, image: str, assignment: dict[str, str], parent: Variant | None, problems: list[Problem]) -> Variant:
    context = axis_context(spec, assignment)
    label = "-".join(str(spec.axes[a][v].get("label", v)) for a, v in assignment.items())
    definition = spec.images[image]
    template = definition.name or ("{{ image }}-{{ variant }}" if label else "{{ image }}")
    try:
        name = render_text(template, {**context, "image": image, "variant": label})
    except jinja2.TemplateError as exc:
        problems.append(Problem(f"image '{image}': name template: {exc}", spec.where("images", image, "name")))
        name = image
    if not re.match(NAME_PATTERN, name):
        problems.append(Problem(
            f"image '{image}': variant name '{name}' is not a valid image name",
            spec.where("images", image, "name") if definition.name else spec.where("images", image),
            "names are lowercase letters, digits and . _ - ; give axis values a 'label' variable to rename them",
        ))
    is_default = all(next(iter(spec.axes[a])) == v for a, v in assignment.items())
    return Variant(image, name, assignment, parent.name if parent else None, label, is_default, context)


def _duplicate_names(spec: Spec, variants: Iterable[Variant]) -> list[Problem]:
    seen: dict[str, Variant] = {}
    problems = []
    for variant in variants:
        other = seen.setdefault(variant.name, variant)
        if other is not variant:
            problems.append(Problem(
                f"two variants are both named '{variant.name}': image '{other.image}' {other.axes or ''} "
                f"and image '{variant.image}' {variant.axes or ''}",
                spec.where("images", variant.image),
                "give the images distinct 'name' templates, or distinct axis labels",
            ))
    return problems
