"""Load and check `stacks.yaml` together with its fragment library.

The result, `Spec`, is the validated input of every later stage. All checks
that need more than one file live here: unknown parents, bases, fragments and
axes, and cycles between images. Problems are collected across the whole
file and raised together.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import networkx as nx

from builder.errors import Location, Problem, SpecError, did_you_mean, raise_if_any
from builder.spec.builtin import search_path
from builder.spec.fragments import FragmentLibrary, load_library
from builder.spec.models import ImageDef, StacksFile, validate
from builder.spec.yamlsrc import MarkedDict, load_mapping, locate


@dataclass(frozen=True)
class Spec:
    path: Path
    model: StacksFile
    source: MarkedDict
    library: FragmentLibrary
    #: axis -> {value: variables}, in declaration order; the first value is the default.
    axes: dict[str, dict[str, dict[str, Any]]]

    def where(self, *path: Any, key: bool = False) -> Location:
        """The location in stacks.yaml of a key path such as ('images', 'lab', 'parent')."""
        return locate(self.source, path, self.path, key=key)

    @property
    def images(self) -> dict[str, ImageDef]:
        return self.model.images

    def image_order(self) -> list[str]:
        """Image names, parents before children, ties in file order."""
        graph = _parent_graph(self.model)
        position = {name: i for i, name in enumerate(self.model.images)}
        return list(nx.lexicographical_topological_sort(graph, key=lambda n: position[n]))


def load_spec(path: Path) -> Spec:
    """Read, validate and cross-check a stacks file and the fragments it names."""
    path = Path(path)
    source = load_mapping(path)
    model, problems = validate(StacksFile, source, path)
    if model is None:
        raise SpecError(problems)
    dirs = search_path([(path.parent / d) for d in model.settings.fragments])
    library, fragment_problems = load_library(dirs)
    spec = Spec(path, model, source, library, _normalise_axes(model))
    problems = fragment_problems + list(_reference_problems(spec, dirs))
    raise_if_any(problems)
    return spec


def _normalise_axes(model: StacksFile) -> dict[str, dict[str, dict[str, Any]]]:
    axes: dict[str, dict[str, dict[str, Any]]] = {}
    for axis, values in model.axes.items():
        if isinstance(values, list):
            axes[axis] = {str(v): {} for v in values}
        else:
            axes[axis] = {str(v): dict(variables or {}) for v, variables in values.items()}
    return axes


def _reference_problems(spec: Spec, dirs: list[Path]) -> Iterable[Problem]:
    model = spec.model
    yield from _empty_axes(spec)
    for name, image in model.images.items():
        yield from _parent_problems(spec, name, image)
        yield from _fragment_problems(spec, name, image, dirs)
        yield from _axis_problems(spec, name, image)
    yield from _cycle_problems(spec)


def _empty_axes(spec: Spec) -> Iterable[Problem]:
    for axis, values in spec.axes.items():
        if not values:
            yield Problem(f"axis '{axis}' has no values", spec.where("axes", axis))


def _parent_problems(spec: Spec, name: str, image: ImageDef) -> Iterable[Problem]:
    if image.parent is not None and image.parent not in spec.images:
        yield Problem(
            f"image '{name}': unknown parent '{image.parent}'",
            spec.where("images", name, "parent"),
            did_you_mean(image.parent, spec.images) or f"images are: {', '.join(spec.images)}",
        )
    if image.parent == name:
        yield Problem(f"image '{name}' is its own parent", spec.where("images", name, "parent"))
    if image.base is not None and image.base not in spec.model.bases:
        yield Problem(
            f"image '{name}': unknown base '{image.base}'",
            spec.where("images", name, "base"),
            did_you_mean(image.base, spec.model.bases) or "declare it under 'bases'",
        )


def _fragment_problems(spec: Spec, name: str, image: ImageDef, dirs: list[Path]) -> Iterable[Problem]:
    for index, use in enumerate(image.uses()):
        if use.use not in spec.library:
            yield Problem(
                f"image '{name}': unknown fragment '{use.use}'",
                spec.where("images", name, "fragments", index),
                did_you_mean(use.use, spec.library.fragments)
                or f"no folder '{use.use}' with a fragment.yaml in {', '.join(str(d) for d in dirs)}",
            )
        yield from _rule_problems(spec, use.when, ("images", name, "fragments", index, "when"))


def _axis_problems(spec: Spec, name: str, image: ImageDef) -> Iterable[Problem]:
    for index, axis in enumerate(image.axes):
        if axis not in spec.axes:
            yield Problem(
                f"image '{name}': unknown axis '{axis}'",
                spec.where("images", name, "axes", index),
                did_you_mean(axis, spec.axes) or "declare it under 'axes'",
            )
    for field in ("exclude", "include"):
        for index, rule in enumerate(getattr(image, field)):
            yield from _rule_problems(spec, rule, ("images", name, field, index))


def _rule_problems(spec: Spec, rule: dict[str, Any], path: tuple) -> Iterable[Problem]:
    """Axis rules (exclude, include, when) may only name known axes and values."""
    for axis, wanted in rule.items():
        if axis not in spec.axes:
            yield Problem(f"unknown axis '{axis}'", spec.where(*path, axis, key=True), did_you_mean(axis, spec.axes))
            continue
        for value in [wanted] if isinstance(wanted, str) else wanted:
            if value not in spec.axes[axis]:
                yield Problem(
                    f"axis '{axis}' has no value '{value}'",
                    spec.where(*path, axis),
                    did_you_mean(value, spec.axes[axis]) or f"values are: {', '.join(spec.axes[axis])}",
                )


def _parent_graph(model: StacksFile) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(model.images)
    for name, image in model.images.items():
        if image.parent in model.images:
            graph.add_edge(image.parent, name)
    return graph


def _cycle_problems(spec: Spec) -> Iterable[Problem]:
    graph = _parent_graph(spec.model)
    for cycle in nx.simple_cycles(graph):
        if len(cycle) < 2:
            continue  # an image naming itself is reported by _parent_problems
        chain = " -> ".join(cycle + [cycle[0]])
        yield Problem(
            f"images form a cycle: {chain} (each is the parent of the next)",
            spec.where("images", cycle[0], "parent"),
            "one image of the cycle must start from a base instead",
        )
