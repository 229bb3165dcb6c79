"""YAML loading that remembers where every key and item came from.

PyYAML throws positions away once a document is built; error messages need
them. The loader here builds `MarkedDict`/`MarkedList` containers that keep
the line and column of each key and item, rejects duplicate keys (PyYAML
silently keeps the last one), and `locate()` turns a validation path such as
`("images", "lab", "fragments", 2)` back into a `Location`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml

from builder.errors import Location, Problem, SpecError
from builder.specification.sources import read_text

#: keys, items and scalars a document may expand to, aliases counted at every use (a billion-laughs
#: file is a few lines whose aliases expand to 10^9 nodes)
MAX_NODES = 200_000
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class MarkedDict(dict):
    """A mapping that knows the position of itself, each key and each value."""

    start: tuple[int, int] = (0, 0)
    key_marks: dict[Any, tuple[int, int]]
    value_marks: dict[Any, tuple[int, int]]


class MarkedList(list):
    """A sequence that knows the position of itself and each item."""

    start: tuple[int, int] = (0, 0)
    item_marks: list[tuple[int, int]]


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _MarkingLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader whose containers carry positions; built for one file."""

    duplicate_keys: list[tuple[Any, tuple[int, int]]]
    complex_keys: list[tuple[str, tuple[int, int]]]


def _construct_mapping(loader: _MarkingLoader, node: yaml.MappingNode) -> MarkedDict:
    result = MarkedDict()
    result.start = _mark(node)
    result.key_marks, result.value_marks = {}, {}
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            loader.complex_keys.append((_node_kind(key_node), _mark(key_node)))
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            loader.duplicate_keys.append((key, _mark(key_node)))
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_marks[key] = _mark(key_node)
        result.value_marks[key] = _mark(value_node)
    return result


def _construct_sequence(loader: _MarkingLoader, node: yaml.SequenceNode) -> MarkedList:
    result = MarkedList(loader.construct_object(child, deep=True) for child in node.value)
    result.start = _mark(node)
    result.item_marks = [_mark(child) for child in node.value]
    return result


_MarkingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_MarkingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_mapping(path: Path, text: str | None = None) -> MarkedDict:
    """Parse a YAML file whose top level must be a mapping.

    Raises SpecError naming the file and line for syntax errors, duplicate
    keys, an empty file or a top level that is not a mapping.
    """
    if text is None:
        text = read_text(path)
    loader = _MarkingLoader(text)
    loader.duplicate_keys, loader.complex_keys = [], []
    try:
        node = loader.get_single_node()
        _check_expansion(node, path)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_syntax_problem(path, exc)]) from None
    except yaml.reader.ReaderError as exc:
        raise SpecError([_reader_problem(path, text, exc)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(f"invalid YAML: {exc}", Location(path))]) from None
    finally:
        loader.dispose()
    problems = [
        Problem(f"duplicate key '{key}'", Location(path, *mark), "each key may appear once in a mapping")
        for key, mark in loader.duplicate_keys
    ] + [
        Problem(f"a key must be a plain value, not a {kind}", Location(path, *mark),
                "write the key as a string; '? ' starts a complex key")
        for kind, mark in loader.complex_keys
    ]
    if data is None:
        problems.append(Problem("file is empty; expected a mapping of settings", Location(path, 1, 1)))
    elif not isinstance(data, MarkedDict):
        problems.append(Problem(
            f"top level must be a mapping (key: value), not a {_yaml_type(data)}",
            Location(path, *getattr(data, "start", (1, 1))),
        ))
    if problems or not isinstance(data, MarkedDict):
        raise SpecError(problems)
    return data


def locate(root: Any, path: Sequence[Any], file: Path, *, key: bool = False) -> Location:
    """The position of the deepest element of `path` that exists in `root`.

    With `key=True` the last element is reported at its key (where an unknown
    key stands) instead of at its value.
    """
    node, mark = root, getattr(root, "start", (1, 1))
    for index, part in enumerate(path):
        last = index == len(path) - 1
        if isinstance(node, MarkedDict) and part in node:
            mark = node.key_marks[part] if (last and key) else node.value_marks[part]
            node = node[part]
        elif isinstance(node, MarkedList) and isinstance(part, int) and 0 <= part < len(node):
            mark = node.item_marks[part]
            node = node[part]
        else:
            break
    return Location(file, *mark)


def _check_expansion(root: yaml.Node | None, path: Path) -> None:
    """Refuse documents whose aliases expand to more than MAX_NODES nodes, or refer to themselves.

    PyYAML shares the object behind an alias, but every later stage (validation,
    rendering) walks it once per use. Sizes are memoised per node, so the check is
    linear in the file even when the expansion is astronomic.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise SpecError([Problem("an alias refers to a node that contains it", Location(path, *_mark(node)),
                                     "aliases may only repeat finished values")])
        on_path.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                raise SpecError([Problem(
                    f"this value expands to more than {MAX_NODES} nodes through aliases", Location(path, *_mark(node)),
                    "repeat less through anchors and aliases (&name, *name)")])
        on_path.discard(key)
        sizes[key] = total
        return total

    if root is not None:
        size(root)


def _node_kind(node: yaml.Node) -> str:
    return "list" if isinstance(node, yaml.SequenceNode) else "mapping" if isinstance(node, yaml.MappingNode) else "value"


def _syntax_problem(path: Path, exc: yaml.MarkedYAMLError) -> Problem:
    """The fault where the user can fix it: an unclosed quote at its opening quote (PyYAML names the
    end of the file, where nothing is wrong), anything else where parsing failed, with where the
    construct that failed began when that is another line."""
    problem, context = exc.problem or "invalid YAML", exc.context or ""
    begun = exc.context_mark
    if "quoted scalar" in context and "end of stream" in problem and begun is not None:
        return Problem("YAML syntax error: this quoted value is never closed (the file ends inside it)",
                       Location(path, begun.line + 1, begun.column + 1),
                       "close the quote; inside a value write a quote as '' (single-quoted) or \\\" (double-quoted)")
    mark = exc.problem_mark or begun
    where = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path)
    what = f"{context}, {problem}" if context else problem
    hint = None
    if begun is not None and mark is not None and begun.line != mark.line:
        hint = f"{context.removeprefix('while ').replace('parsing ', '').replace('scanning ', '')} began at line {begun.line + 1}, column {begun.column + 1}"
    return Problem(f"YAML syntax error: {what}", where, hint)


def _reader_problem(path: Path, text: str, exc: yaml.reader.ReaderError) -> Problem:
    """A character YAML does not allow (a NUL byte, say), at its line and column in the text.

    The reader stops at the first such character, so its first occurrence is the one; libyaml counts
    its position in UTF-8 bytes, not characters, so the position is only the fallback."""
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
    position = text.find(chr(code))
    if position < 0:
        position = len(text.encode()[: max(exc.position, 0)].decode(errors="ignore"))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    name = {0: " (NUL)", 0x7F: " (DEL)"}.get(code, "")
    return Problem(f"YAML does not allow the control character U+{code:04X}{name}", Location(path, line, column),
                   "remove it; such a byte usually means a binary file or a damaged copy")


def _yaml_type(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__
