"""Property tests: mutated specs, fragments and templates either plan or fail with located problems.

The mutations start from the project's own stacks.yaml and fragments: random byte flips
and truncations, YAML structure edits (keys dropped, values replaced by odd ones, lists
and mappings swapped) and template snippets put where templates go. Whatever comes in,
`load_plan` must either succeed or raise `SpecError` whose errors name a file; any other
exception, or an example slower than the deadline, fails the test.
"""
from __future__ import annotations

import functools
import shutil
import tempfile
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.errors import SpecError
from builder.plan.plan import load_plan
from builder.specification import fragments as fragment_module

ROOT = Path(__file__).resolve().parents[2]
PROJECT_SPEC = (ROOT / "stacks.yaml").read_bytes()
FUZZED_FRAGMENTS = ("debian-os", "nb-user", "jupyterlab", "ipykernel", "kernel-bash")
FUZZ = settings(max_examples=100, deadline=timedelta(seconds=3), derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

#: pieces of Jinja that hostile or broken templates are made of
SNIPPETS = [
    "{{", "}}", "{%", "%}", "{#", "#}", "{{ os }}", "{{ nope }}", "{{ 1/0 }}", "{{ 'a' * 10**9 }}",
    "{{ range(10**9)|list }}", "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ cycler.__init__.__globals__ }}", "{{ 9**(9**9) }}",
    "{{ 'x'|center(10**9) }}", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "{{ image }}", "{{ here }}",
    "{% if %}", "{% endfor %}", "{{ variant ~ variant }}", "{{ [1,2]|join(',') }}", "FROM x\n", "COPY missing /x\n",
    "COPY {{ here }}/nope /x\n", "\\\n", "\x00", "\udcff", "é", "-", ":", "&a", "*a", "? ", "[", "]",
]
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True), st.text(max_size=20),
    st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(SNIPPETS), st.lists(st.sampled_from(SNIPPETS), max_size=4).map("".join),
)


def assert_plans_or_located(path: Path) -> None:
    """The property: success, or a SpecError whose every error names its file."""
    try:
        load_plan(path)
    except SpecError as exc:
        errors = [p for p in exc.problems if p.severity == "error"]
        assert errors, "a SpecError without errors"
        assert all(p.location is not None for p in errors), [str(p) for p in errors if p.location is None]
        assert all(str(p) for p in exc.problems)


@functools.lru_cache(maxsize=8)
def _cached_library(dirs: tuple[Path, ...]):
    return fragment_module.load_library(list(dirs))


def _library(dirs: list[Path]):
    """The project's fragments do not change between examples: load them once."""
    return _cached_library(tuple(Path(d).resolve() for d in dirs))


def with_project_fragments(folder: Path) -> None:
    (folder / "fragments").symlink_to(ROOT / "fragments")


# --- stacks.yaml ---------------------------------------------------------------------


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, len(PROJECT_SPEC) - 1), st.integers(0, 255)), max_size=6),
       cut=st.one_of(st.none(), st.integers(0, len(PROJECT_SPEC))))
def test_byte_flips_and_truncations_of_stacks_yaml(flips: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(PROJECT_SPEC)
    for position, value in flips:
        data[position] = value
    with tempfile.TemporaryDirectory() as tmp, mock.patch("builder.specification.load.load_library", _library):
        folder = Path(tmp)
        with_project_fragments(folder)
        (folder / "stacks.yaml").write_bytes(bytes(data[:cut] if cut is not None else data))
        assert_plans_or_located(folder / "stacks.yaml")


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a key or item of a YAML tree."""
    found = [prefix] if prefix else []
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found += _paths(value, prefix + (index,))
    return found


def _mutate(tree: Any, path: tuple, action: str, value: Any) -> None:
    parent = tree
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif action == "wrap":
        parent[last] = [parent[last]]
    elif action == "template" and isinstance(parent[last], str):
        parent[last] = f"{parent[last]}{value}"
    elif action == "rename" and isinstance(parent, dict):
        parent[f"{last}{value}" if isinstance(value, str) else value] = parent.pop(last)


@settings(FUZZ, max_examples=50)  # each valid mutation plans the whole project
@given(st.data())
def test_structure_mutations_of_stacks_yaml(data: st.DataObject) -> None:
    tree = yaml.safe_load(PROJECT_SPEC)
    for _ in range(data.draw(st.integers(1, 4))):
        paths = _paths(tree)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        action = data.draw(st.sampled_from(["delete", "replace", "wrap", "template", "rename"]))
        value = data.draw(ODD_VALUES)
        try:
            _mutate(tree, path, action, value)
        except TypeError:  # an unhashable key: not a YAML mapping we can write
            continue
    try:
        text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        return
    with tempfile.TemporaryDirectory() as tmp, mock.patch("builder.specification.load.load_library", _library):
        folder = Path(tmp)
        with_project_fragments(folder)
        (folder / "stacks.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        assert_plans_or_located(folder / "stacks.yaml")


SMALL_SPEC = textwrap.dedent("""
    settings:
      tags: ["{{ variant }}", "{tag}"]
    axes:
      os: {bookworm: {python: "3.11"}, trixie: {python: "3.13"}}
    bases:
      debian:
        pull: "debian:12"
        provides: [apt, sudo, shell, "python=3.12", pip, venv, jupyter-server, nb-user, start-scripts]
    images:
      one:
        base: debian
        axes: [os]
        name: "{name}"
        build_args: {X: "{arg}"}
        fragments: [{fragment}]
""")


@FUZZ
@given(name=st.lists(st.sampled_from(SNIPPETS + ["one-", "{{ os }}", "{{ os.python }}"]), max_size=4).map("".join),
       tag=st.lists(st.sampled_from(SNIPPETS), max_size=4).map("".join),
       arg=st.lists(st.sampled_from(SNIPPETS), max_size=4).map("".join))
def test_template_snippets_in_names_tags_and_build_args(name: str, tag: str, arg: str) -> None:
    spec = {"settings": {"tags": ["{{ variant }}", tag]}, **yaml.safe_load(SMALL_SPEC.replace("{tag}", "x")
            .replace("{name}", "x").replace("{arg}", "x").replace("{fragment}", "debian-os"))}
    spec["images"]["one"].update(name=name or "one", build_args={"X": arg})
    with tempfile.TemporaryDirectory() as tmp, mock.patch("builder.specification.load.load_library", _library):
        folder = Path(tmp)
        with_project_fragments(folder)
        (folder / "stacks.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8",
                                            errors="surrogatepass")
        assert_plans_or_located(folder / "stacks.yaml")


# --- fragments ---------------------------------------------------------------------------


def _fragment_stack(folder: Path, fragment: str) -> Path:
    shutil.copytree(ROOT / "fragments" / fragment, folder / "fragments" / fragment)
    spec = SMALL_SPEC.replace("{tag}", "{{ os }}").replace("{name}", "one-{{ os }}").replace("{arg}", "a")
    (folder / "stacks.yaml").write_text(spec.replace("{fragment}", fragment))
    return folder / "fragments" / fragment


@FUZZ
@given(fragment=st.sampled_from(FUZZED_FRAGMENTS), target=st.sampled_from(["fragment.yaml", "Dockerfile.j2"]),
       data=st.data())
def test_byte_flips_and_truncations_of_fragments(fragment: str, target: str, data: st.DataObject) -> None:
    original = (ROOT / "fragments" / fragment / target).read_bytes()
    content = bytearray(original)
    for position, value in data.draw(st.lists(st.tuples(st.integers(0, len(content) - 1), st.integers(0, 255)),
                                              max_size=6)):
        content[position] = value
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(content))))
    with tempfile.TemporaryDirectory() as tmp:
        folder = _fragment_stack(Path(tmp), fragment)
        (folder / target).write_bytes(bytes(content[:cut] if cut is not None else content))
        assert_plans_or_located(Path(tmp) / "stacks.yaml")


@FUZZ
@given(fragment=st.sampled_from(FUZZED_FRAGMENTS), data=st.data())
def test_template_snippets_in_fragment_templates(fragment: str, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = _fragment_stack(Path(tmp), fragment)
        templates = sorted(p for p in folder.rglob("*.j2"))
        target = data.draw(st.sampled_from(templates))
        lines = target.read_text().split("\n")
        for _ in range(data.draw(st.integers(1, 3))):
            index = data.draw(st.integers(0, len(lines)))
            lines.insert(index, "".join(data.draw(st.lists(st.sampled_from(SNIPPETS), min_size=1, max_size=4))))
        target.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
        assert_plans_or_located(Path(tmp) / "stacks.yaml")


@FUZZ
@given(fragment=st.sampled_from(FUZZED_FRAGMENTS), data=st.data())
def test_structure_mutations_of_fragment_yaml(fragment: str, data: st.DataObject) -> None:
    tree = yaml.safe_load((ROOT / "fragments" / fragment / "fragment.yaml").read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(tree)
        if not paths:
            break
        try:
            _mutate(tree, data.draw(st.sampled_from(paths)), data.draw(st.sampled_from(
                ["delete", "replace", "wrap", "template", "rename"])), data.draw(ODD_VALUES))
        except TypeError:
            continue
    with tempfile.TemporaryDirectory() as tmp:
        folder = _fragment_stack(Path(tmp), fragment)
        try:
            text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
        except yaml.YAMLError:
            return
        (folder / "fragment.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        assert_plans_or_located(Path(tmp) / "stacks.yaml")
