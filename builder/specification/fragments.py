"""The fragment library: folders of `fragment.yaml` + `Dockerfile.j2` + files.

Loading checks each fragment on its own, before any stack uses it: its
metadata against the schema, its templates for syntax errors, and every
variable its templates read against the params it declares. A contributor
therefore learns about a typo in a new kernel fragment from `stacks plan`,
not from a failed build twenty minutes in.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2 import meta, nodes

from builder.specification import templating
from builder.specification.capabilities import capability_name
from builder.errors import Location, Problem, SpecError, did_you_mean
from builder.specification.models import FragmentFile, validate
from builder.specification.sources import read_bytes, read_text
from builder.specification.yamlsrc import MarkedDict, load_mapping, locate

META_FILE = "fragment.yaml"
BODY_FILE = "Dockerfile.j2"
STAGE_FILE = "stage.Dockerfile.j2"
#: Variables every fragment template may read besides its own params.
BUILTINS = frozenset({"here", "cache", "image"})


@dataclass(frozen=True)
class ContextFile:
    """A file a fragment ships into the build context (templated when it ends in .j2)."""

    path: str
    data: bytes
    mode: int
    template: jinja2.Template | None = None


@dataclass(frozen=True)
class Fragment:
    name: str
    folder: Path
    meta: FragmentFile
    body: jinja2.Template
    stage: jinja2.Template | None
    files: tuple[ContextFile, ...]
    #: False when no template of the fragment can read `image`, so its output depends on params only
    reads_image: bool = True

    @property
    def kind(self) -> str:
        return "kernel" if self.meta.kernel else "fragment"


@dataclass(frozen=True)
class FragmentLibrary:
    fragments: dict[str, Fragment]
    env: jinja2.Environment

    def __contains__(self, name: str) -> bool:
        return name in self.fragments

    def __getitem__(self, name: str) -> Fragment:
        return self.fragments[name]

    def providers(self, capability: str) -> list[str]:
        """Names of fragments whose provides mention `capability` (for hints)."""
        return sorted(
            f.name for f in self.fragments.values()
            if any(capability_name(p) == capability for p in f.meta.provides)
        )


def make_environment(dirs: list[Path]) -> jinja2.Environment:
    """The sandboxed environment of `templating`, loading fragment templates by folder/name."""
    return templating.make_environment(jinja2.FileSystemLoader([str(d) for d in dirs]))


def load_library(dirs: list[Path]) -> tuple[FragmentLibrary, list[Problem]]:
    """Load every fragment folder under `dirs`; the first directory wins on a name clash."""
    env = make_environment(dirs)
    fragments: dict[str, Fragment] = {}
    problems: list[Problem] = []
    for folder in _fragment_folders(dirs):
        if folder.name in fragments:
            continue
        fragment, found = _load_fragment(folder, env)
        problems += found
        if fragment is not None:
            fragments[fragment.name] = fragment
    return FragmentLibrary(fragments, env), problems


def _fragment_folders(dirs: list[Path]) -> list[Path]:
    folders = []
    for directory in dirs:
        if directory.is_dir():
            folders += sorted(p.parent for p in directory.glob(f"*/{META_FILE}") if not p.parent.name.startswith(("_", ".")))
    return folders


def _load_fragment(folder: Path, env: jinja2.Environment) -> tuple[Fragment | None, list[Problem]]:
    meta_path = folder / META_FILE
    try:
        data = load_mapping(meta_path)
    except SpecError as exc:
        return None, exc.problems
    fragment_meta, problems = validate(FragmentFile, data, meta_path)
    if fragment_meta is None:
        return None, problems
    if fragment_meta.name != folder.name:
        problems.append(Problem(
            f"fragment name '{fragment_meta.name}' differs from its folder '{folder.name}'",
            Location(meta_path, *data.value_marks.get("name", (1, 1))),
            f"write 'name: {folder.name}'",
        ))
    problems += _declaration_problems(fragment_meta, data, meta_path)
    link_problems = _link_problems(folder)
    if link_problems:
        return None, problems + link_problems
    body_path = folder / BODY_FILE
    if not body_path.is_file():
        return None, problems + [Problem(f"fragment has no {BODY_FILE}", Location(folder))]
    known = set(fragment_meta.params) | BUILTINS
    reads: set[str] = set()
    body, found = _compile(env, folder, BODY_FILE, known, reads)
    problems += found
    stage = None
    if (folder / STAGE_FILE).is_file():
        stage, found = _compile(env, folder, STAGE_FILE, known, reads)
        problems += found
    files, found = _context_files(env, folder, known, reads)
    problems += found
    if body is None or problems:
        return None, problems
    return Fragment(folder.name, folder, fragment_meta, body, stage, files, "image" in reads), []


#: a template expression, statement or comment inside a pattern: replaced by a plain letter before compiling
_TEMPLATE_PART = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


def _declaration_problems(meta: FragmentFile, data: MarkedDict, path: Path) -> list[Problem]:
    """Params whose default contradicts their own type or choices, and check patterns that cannot compile:
    both would otherwise only fail when an image uses the fragment, far from the line at fault."""
    problems = []
    for name, param in meta.params.items():
        for index, choice in enumerate(param.choices or []):
            try:
                param.model_copy(update={"choices": None}).typed(choice, convert=False)
            except ValueError as exc:
                problems.append(Problem(f"param '{name}': choice {index + 1}: {exc}",
                                        locate(data, ("params", name, "choices", index), path)))
        if param.required or param.default is None:
            continue
        try:
            param.typed(param.default, convert=False)
        except ValueError as exc:
            problems.append(Problem(f"param '{name}': the default contradicts the declaration: {exc}",
                                    locate(data, ("params", name, "default"), path),
                                    "make the default one of the declared type and choices"))
    for where, pattern in _patterns(meta):
        try:
            re.compile(_TEMPLATE_PART.sub("x", pattern))
        except re.error as exc:
            problems.append(Problem(f"{'.'.join(map(str, where))}: the regular expression {pattern!r} does not compile: {exc}",
                                    locate(data, where, path), "escape the characters meant literally with a backslash"))
    return problems


def _patterns(meta: FragmentFile) -> list[tuple[tuple, str]]:
    """(key path in fragment.yaml, regular expression) of every pattern the checks search with."""
    found: list[tuple[tuple, str]] = []
    if meta.kernel is not None:
        found.append((("kernel", "expect"), meta.kernel.expect))
    for index, check in enumerate(meta.checks):
        at: tuple = ("checks", index)
        if check.run is not None and check.expect:
            found.append(((*at, "expect"), check.expect))
        if check.file is not None and check.file.contains is not None:
            found.append(((*at, "file", "contains"), check.file.contains))
        if check.package is not None and check.package.version is not None:
            found.append(((*at, "package", "version"), check.package.version))
        for kind in ("env", "label"):
            for key, pattern in (getattr(check, kind) or {}).items():
                found.append(((*at, kind, key), pattern))
    return found


def _compile(env: jinja2.Environment, folder: Path, filename: str, known: set[str],
             reads: set[str]) -> tuple[jinja2.Template | None, list[Problem]]:
    """Compile one template and check it reads only declared variables.

    The variables it reads are added to `reads`: a fragment that never reads
    `image` renders the same for every variant, so its render is memoised.
    """
    path = folder / filename
    try:
        source = read_text(path)
    except SpecError as exc:
        return None, exc.problems
    try:
        tree = env.parse(source, name=filename, filename=str(path))
        code = env.compile(source, f"{folder.name}/{filename}", str(path))
        template = env.template_class.from_code(env, code, env.make_globals(None), None)
    except jinja2.TemplateSyntaxError as exc:
        return None, [Problem(f"template syntax error: {exc.message}", Location(path, exc.lineno))]
    used = meta.find_undeclared_variables(tree) - set(env.globals)
    reads |= used
    problems = [
        Problem(
            f"template variable '{name}' is not defined",
            Location(path, _first_use(tree, name)),
            did_you_mean(name, known) or f"declare it under 'params' in {META_FILE}",
        )
        for name in sorted(used - known)
    ]
    return template, problems


def _first_use(tree: nodes.Template, name: str) -> int | None:
    lines = [n.lineno for n in tree.find_all(nodes.Name) if n.name == name and n.ctx == "load"]
    return min(lines) if lines else None


def _context_files(env: jinja2.Environment, folder: Path, known: set[str],
                   reads: set[str]) -> tuple[tuple[ContextFile, ...], list[Problem]]:
    files, problems = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative in (META_FILE, BODY_FILE, STAGE_FILE) or "__pycache__" in relative:
            continue
        mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
        template = None
        if relative.endswith(".j2"):
            template, found = _compile(env, folder, relative, known, reads)
            problems += found
            relative = relative[:-3]
        try:
            data = read_bytes(path)
        except SpecError as exc:
            problems += exc.problems
            continue
        files.append(ContextFile(relative, data, mode, template))
    return tuple(files), problems


def _link_problems(folder: Path) -> list[Problem]:
    """Every symbolic link in a fragment must resolve to a file inside the fragment or the repository
    around its library (the folder holding the library folder): a link to /etc/shadow would
    otherwise copy a host file into a build context. Loops and dangling links are errors too."""
    allowed = [folder.resolve(), folder.parent.parent.resolve()]
    problems = []
    for top, dirs, names in os.walk(folder, followlinks=False):
        for name in sorted(dirs + names):
            path = Path(top, name)
            if not path.is_symlink():
                continue
            target = os.readlink(path)
            try:
                resolved = path.resolve(strict=True)
            except RuntimeError:
                problems.append(Problem(f"symbolic link '{name}' -> '{target}' is a loop", Location(path)))
                continue
            except OSError as exc:
                problems.append(Problem(f"symbolic link '{name}' -> '{target}' cannot be followed: {exc.strerror}",
                                        Location(path)))
                continue
            if not any(resolved.is_relative_to(root) for root in allowed):
                problems.append(Problem(f"symbolic link '{name}' -> '{target}' points outside the fragment and repository",
                                        Location(path), "copy the file into the fragment instead of linking it"))
            elif resolved.is_dir():
                problems.append(Problem(f"symbolic link '{name}' -> '{target}' is a directory, which is not copied",
                                        Location(path), "link the files one by one, or copy the folder"))
    return problems
