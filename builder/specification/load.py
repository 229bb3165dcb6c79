"""Load and check `stacks.yaml` together with its fragment library.

The result, `Spec`, is the validated input of every later stage. All checks
that need more than one file live here: unknown parents, bases, fragments and
axes, and cycles between images. Problems are collected across the whole
file and raised together.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import networkx as nx
from pydantic import ValidationError

from builder.errors import Location, Problem, did_you_mean, raise_if_any, warning
from builder.specification.builtin import search_path
from builder.specification.fragments import FragmentLibrary, load_library
from builder.specification.lock import Lock, load_lock, lock_path
from builder.specification.models import ImageDef, StacksFile, validate
from builder.specification.yamlsrc import MarkedDict, load_mapping, locate


@dataclass(frozen=True)
class Spec:
    path: Path
    model: StacksFile
    source: MarkedDict
    library: FragmentLibrary
    #: axis -> {value: variables}, in declaration order; the first value is the default.
    axes: dict[str, dict[str, dict[str, Any]]]
    #: stacks.lock beside the file (empty when there is none): builds install with it as constraints
    lock: Lock = dataclasses.field(default_factory=lambda: Lock(Path("stacks.lock")))

    def where(self, *path: Any, key: bool = False) -> Location:
        """The location in stacks.yaml of a key path such as ('images', 'lab', 'parent')."""
        return locate(self.source, path, self.path, key=key)

    @property
    def fragment_dirs(self) -> list[Path]:
        """Where fragments are looked up, in order: the project's folders, then the built-in library."""
        return fragment_dirs(self.path, self.model)

    @property
    def images(self) -> dict[str, ImageDef]:
        return self.model.images

    def image_order(self) -> list[str]:
        """Image names, parents before children, ties in file order."""
        graph = _parent_graph(self.model)
        position = {name: i for i, name in enumerate(self.model.images)}
        return list(nx.lexicographical_topological_sort(graph, key=lambda n: position[n]))


def fragment_dirs(path: Path, model: StacksFile) -> list[Path]:
    return search_path([(path.parent / d) for d in model.settings.fragments])


def load_spec(path: Path) -> Spec:
    """Read, validate and cross-check a stacks file and the fragments it names."""
    spec, problems = load_spec_partial(path)
    raise_if_any(problems)
    assert spec is not None
    return spec


def load_spec_partial(path: Path) -> tuple[Spec | None, list[Problem]]:
    """Every problem of every stage, and the spec of what is valid.

    A schema error in one image does not hide the reference errors of another:
    images, bases and axes with schema errors are left out and the rest is
    validated again. Images with broken references are left out of the returned
    spec with all their descendants, so later stages (contracts, names, tags)
    check only what is valid and report no follow-on errors (an unknown fragment
    does not also make everything it would have provided missing). None when not
    even the settings validate.
    """
    path = Path(path)
    source = load_mapping(path)
    model, problems = validate(StacksFile, source, path)
    dropped: set[str] = set()
    if model is None:
        model, dropped = _salvage(source)
        if model is None:
            return None, problems
    dirs = fragment_dirs(path, model)
    problems += _search_path_problems(path, model, source)
    library, fragment_problems = load_library(dirs)
    lock, lock_problems = load_lock(lock_path(path))
    problems += lock_problems
    spec = Spec(path, model, source, library, _normalise_axes(model), lock)
    broken: set[str] = set()
    for image, problem in _reference_problems(spec, dirs, dropped):
        if image is not None:
            broken.add(image)
        if problem is not None:
            problems.append(problem)
    problems += fragment_problems
    return _without(spec, broken), problems


def _search_path_problems(path: Path, model: StacksFile, source: MarkedDict) -> list[Problem]:
    """settings.fragments entries that point at nothing, at a file, or at a folder without any fragment.

    Only entries written in the file are checked: with the default
    ('fragments') a stack of built-in fragments needs no folder of its own. A
    written entry must exist, or every fragment it was meant to hold is an
    'unknown fragment', far from the real mistake.
    """
    settings = source.get("settings")
    if not (isinstance(settings, MarkedDict) and "fragments" in settings):
        return []
    problems = []
    for index, entry in enumerate(model.settings.fragments):
        folder = path.parent / entry
        where = locate(source, ("settings", "fragments", index), path)
        if folder.is_dir():
            if not any(folder.glob("*/fragment.yaml")):
                problems.append(warning(f"settings.fragments: '{entry}' holds no fragment (no <name>/fragment.yaml in {folder})",
                                        where, "remove the entry, or point it at a fragment library"))
        elif folder.exists():
            problems.append(Problem(f"settings.fragments: '{entry}' is a file, not a folder of fragments", where,
                                    "list folders that hold <name>/fragment.yaml"))
        else:
            problems.append(Problem(f"settings.fragments: '{entry}' does not exist (looked for {folder})", where,
                                    "paths are relative to the folder of the stacks file"))
    return problems


def _salvage(source: MarkedDict) -> tuple[StacksFile | None, set[str]]:
    """The file without the images, bases, axes and settings that have schema errors (settings at their
    defaults), and without a hub section that has any, if that validates."""
    try:
        StacksFile.model_validate(source)
        return None, set()
    except ValidationError as exc:
        locations = [error["loc"] for error in exc.errors()]
    bad: dict[str, set[str]] = {}
    for loc in locations:
        if len(loc) >= 2 and loc[0] in ("images", "bases", "axes", "settings") and isinstance(loc[1], str):
            bad.setdefault(str(loc[0]), set()).add(loc[1])
        elif loc and loc[0] == "hub":
            bad["hub"] = set()  # only `stacks hub-config` reads it: the rest is checked without it
        else:
            return None, set()  # the top level, or settings as a whole: nothing later can be trusted
    if "fragments" in bad.get("settings", set()):
        return None, set()  # without the search path no fragment can be found: every image would follow on
    data = dict(source)
    if "hub" in bad:
        del data["hub"]
    for section, names in bad.items():
        if isinstance(data.get(section), dict):
            data[section] = {k: v for k, v in data[section].items() if k not in names}
    try:
        model = StacksFile.model_validate(data)
    except ValidationError:
        return None, set()
    return model, {f"{section}:{name}" for section, names in bad.items() if section in ("images", "bases", "axes")
                   for name in names}


def _without(spec: Spec, broken: set[str]) -> Spec:
    """`spec` without the `broken` images and every image below them (their problems would be follow-ons)."""
    if not broken:
        return spec
    graph = _parent_graph(spec.model)
    gone = set(broken)
    for name in broken:
        if name in graph:
            gone |= nx.descendants(graph, name)
    for name, image in spec.model.images.items():  # children of images dropped by the schema stage
        parent = image.parent
        while parent is not None and parent in spec.model.images and parent not in gone:
            parent = spec.model.images[parent].parent
        if parent is not None and parent not in spec.model.images:
            gone.add(name)
    images = {k: v for k, v in spec.model.images.items() if k not in gone}
    model = spec.model.model_copy(update={"images": images})
    return Spec(spec.path, model, spec.source, spec.library, spec.axes, spec.lock)


def _normalise_axes(model: StacksFile) -> dict[str, dict[str, dict[str, Any]]]:
    axes: dict[str, dict[str, dict[str, Any]]] = {}
    for axis, values in model.axes.items():
        if isinstance(values, list):
            axes[axis] = {str(v): {} for v in values}
        else:
            axes[axis] = {str(v): dict(variables or {}) for v, variables in values.items()}
    return axes


def _reference_problems(spec: Spec, dirs: list[Path],
                        dropped: frozenset[str] | set[str] = frozenset()) -> Iterable[tuple[str | None, Problem | None]]:
    """(image or None, problem); a reference to an image, base or axis the schema stage left out
    (`dropped`, as "section:name") still breaks the image, but is not reported again (problem None)."""
    model = spec.model
    for problem in _empty_axes(spec):
        yield None, problem
    for name, image in model.images.items():
        for problem in [*_parent_problems(spec, name, image), *_fragment_problems(spec, name, image, dirs),
                        *_axis_problems(spec, name, image)]:
            yield name, (None if _follows(problem, dropped) else problem)
    for problem in _cycle_problems(spec):
        yield problem.message.split(": ")[1].split(" -> ")[0], problem


def _follows(problem: Problem, dropped: frozenset[str] | set[str]) -> bool:
    """A reference problem caused by an entry the schema stage already reported."""
    for entry in dropped:
        section, name = entry.split(":", 1)
        words = {"images": ["unknown parent"], "bases": ["unknown base"], "axes": ["unknown axis", "axis"]}[section]
        if any(f"{word} '{name}'" in problem.message for word in words):
            return True
    return False


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
                ("its folder is there but the fragment has errors (reported with it)"
                 if any((d / use.use / "fragment.yaml").is_file() for d in dirs) else None)
                or did_you_mean(use.use, spec.library.fragments)
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
