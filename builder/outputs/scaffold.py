"""`stacks new kernel NAME`: a kernel fragment that lints clean and builds, and its place in stacks.yaml.

The scaffold installs a Jupyter kernel from PyPI into the image's Python
environment and registers it system-wide, the way the project's own kernel
fragments do, with a smoke snippet `stacks test` runs over the Jupyter
protocol. With no package named it installs bash_kernel, so a newcomer's
first scaffold builds before anything is edited.

stacks.yaml is edited as text, not re-dumped, so its comments and layout
stay; the edited text is loaded and planned before it replaces the file.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from builder.errors import Location, Problem, SpecError
from builder.specification.models import NAME_PATTERN, FragmentFile
from builder.plan.plan import make_plan
from builder.specification.load import load_spec
from builder.specification.yamlsrc import load_mapping


@dataclass(frozen=True)
class KernelRecipe:
    """What a PyPI kernel package needs: how it registers itself and what proves it runs."""

    package: str
    version: str
    kernelspec: str
    language: str
    install: str
    snippet: str
    expect: str = "42"


#: Packages whose details are known; others need --version (and --snippet for an unknown language).
RECIPES = {
    "bash_kernel": KernelRecipe("bash_kernel", "0.10.0", "bash", "bash", "python -m bash_kernel.install --sys-prefix",
                                "echo $((6 * 7))"),
    "calysto_scheme": KernelRecipe("calysto_scheme", "2.1.9", "calysto_scheme", "scheme",
                                   "python -m calysto_scheme install --sys-prefix", "(display (* 6 7))"),
}
DEFAULT_PACKAGE = "bash_kernel"
#: A line of code that prints 42, per language (the smoke snippet when none is given).
SNIPPETS = {
    "python": "print(6 * 7)", "bash": "echo $((6 * 7))", "sh": "echo $((6 * 7))", "r": "cat(6 * 7)",
    "julia": "println(6 * 7)", "javascript": "console.log(6 * 7)", "typescript": "console.log(6 * 7)",
    "ruby": "puts 6 * 7", "lua": "print(6 * 7)", "scheme": "(display (* 6 7))", "prolog": "X is 6 * 7, write(X).",
    "octave": "disp(6 * 7)", "scala": "println(6 * 7)", "java": "System.out.println(6 * 7);",
    "sql": "SELECT 6 * 7;", "gnuplot": "print 6 * 7",
}


@dataclass(frozen=True)
class Scaffold:
    fragment: str
    folder: Path
    files: tuple[Path, ...]
    image: str  # the image that now uses the fragment
    created_image: bool
    variants: tuple[str, ...]  # concrete images to build and test


def recipe_for(package: str | None, version: str | None, language: str | None, kernelspec: str | None,
               install: str | None, snippet: str | None, expect: str | None, name: str) -> KernelRecipe:
    """A known recipe, adjusted by the options; for an unknown package, one made from the options."""
    package = package or DEFAULT_PACKAGE
    known = RECIPES.get(package)
    if known is None:
        if not version:
            raise ValueError(f"pass --version for {package} (see `pip index versions {package}`): kernels are pinned")
        language = language or name
        code = snippet or SNIPPETS.get(language.lower())
        if code is None:
            raise ValueError(f"no example snippet for language '{language}': pass --snippet CODE (that prints 42) and --expect 42")
        known = KernelRecipe(package, version, kernelspec or name, language,
                             install or f"python -m {package.replace('-', '_')}.install --sys-prefix", code)
    changes = {key: value for key, value in {
        "version": version, "language": language, "kernelspec": kernelspec, "install": install,
        "snippet": snippet, "expect": expect,
    }.items() if value}
    return replace(known, **changes)


def new_kernel(spec_path: Path, name: str, recipe: KernelRecipe, parent: str = "lab", image: str | None = None,
               into: str | None = None) -> Scaffold:
    """Write fragments/kernel-NAME/ and add it to stacks.yaml (a new image on `parent`, or `into` an existing one)."""
    spec_path = Path(spec_path)
    short = name.removeprefix("kernel-")
    fragment = f"kernel-{short}"
    if not re.match(NAME_PATTERN, fragment):
        raise ValueError(f"'{name}': use lowercase letters, digits and . _ - (e.g. 'scheme')")
    spec = load_spec(spec_path)
    if fragment in spec.library:
        raise ValueError(f"a fragment named {fragment} exists already ({spec.library[fragment].folder})")
    folder = spec_path.parent / spec.model.settings.fragments[0] / fragment
    if folder.exists():
        raise ValueError(f"{folder} exists already")
    text = spec_path.read_text(encoding="utf-8")
    if into is not None:
        if into not in spec.images:
            raise ValueError(f"no image '{into}' in {spec_path}")
        target, created, new_text = into, False, add_to_image(text, into, fragment)
    else:
        target = image or f"{parent}-{short}"
        if target in spec.images:
            raise ValueError(f"an image named '{target}' exists already: pass --image NAME or --into {target}")
        if parent not in spec.images:
            raise ValueError(f"no image '{parent}' in {spec_path} to build on: pass --parent IMAGE")
        created, new_text = True, add_image(text, target, _image_block(target, parent, fragment, recipe))
    _check_edit(new_text, target, fragment, spec_path)
    files = write_fragment(folder, fragment, recipe, spec_path.parent)
    try:
        variants = _apply(spec_path, new_text, target)
    except SpecError:
        for path in files:
            path.unlink()
        folder.rmdir()
        raise
    return Scaffold(fragment, folder, files, target, created, variants)


def _apply(spec_path: Path, new_text: str, image: str) -> tuple[str, ...]:
    """Plan the edited stacks.yaml from a sibling file; only a file that plans replaces the original."""
    candidate = spec_path.with_name(f".{spec_path.name}.new")
    candidate.write_text(new_text, encoding="utf-8")
    try:
        plan = make_plan(load_spec(candidate))
    except SpecError as exc:
        candidate.unlink()
        raise SpecError([_moved(p, candidate, spec_path) for p in exc.problems]) from None
    os.replace(candidate, spec_path)
    return tuple(node.name for node in plan.images() if node.image == image)


def _moved(problem: Problem, candidate: Path, original: Path) -> Problem:
    """A problem of the edited copy, told against the file the user knows (nothing was changed)."""
    location = problem.location
    if location is not None and location.file == candidate:
        location = Location(original, location.line, location.column)
    return Problem(f"{problem.message} (with the scaffold added; nothing was written)", location, problem.hint)


def write_fragment(folder: Path, fragment: str, recipe: KernelRecipe, root: Path) -> tuple[Path, ...]:
    folder.mkdir(parents=True)
    meta, body = folder / "fragment.yaml", folder / "Dockerfile.j2"
    meta.write_text(fragment_yaml(fragment, recipe, folder, root), encoding="utf-8")
    body.write_text(dockerfile_j2(recipe), encoding="utf-8")
    return meta, body


def fragment_yaml(fragment: str, recipe: KernelRecipe, folder: Path, root: Path) -> str:
    r = recipe
    listed = re.escape(r.kernelspec) + r"\s+/opt/venv/share/jupyter/kernels/" + re.escape(r.kernelspec)
    schema = root / "schema" / "fragment.schema.json"
    lines = []
    if schema.is_file():
        lines.append(f"# yaml-language-server: $schema={os.path.relpath(schema, folder)}")
    lines += [
        f"name: {fragment}",
        "description: " + _q(f"The {_title(r.language)} kernel ({r.package} from PyPI) in the Python environment, "
                             f"registered system-wide as `{r.kernelspec}`."),
        f"version: {_q(r.version)}",
        f"provides: [{_q('kernelspec:' + r.kernelspec)}]",
        'requires: [jupyter-server, "python>=3.9", venv]',
        f"conflicts: [{_q('kernelspec:' + r.kernelspec)}]",
        "params:",
        f"  version: {{type: string, default: {_q(r.version)}, description: {_q(r.package + ' version (PyPI).')}}}",
        "platforms: [linux/amd64, linux/arm64]",
        "verified: true",
        "weight: 1",
    ]
    if "versions" in FragmentFile.model_fields:
        probe = f"python -c 'from importlib.metadata import version; print(version(\"{r.package}\"))'"
        lines += ["versions:", f"  {_version_name(r.package)}: {_q(probe)}"]
    lines += [
        "kernel:",
        f"  name: {r.kernelspec}",
        f"  language: {r.language}",
        f"  snippet: {_q(r.snippet)}",
        f"  expect: {_q(r.expect)}",
        "checks:",
        f"  - name: the {r.kernelspec} kernelspec is installed system-wide",
        '    run: "jupyter kernelspec list"',
        f"    expect: {_q(listed)}",
    ]
    return "\n".join(lines) + "\n"


def dockerfile_j2(recipe: KernelRecipe) -> str:
    return (
        "USER root\n"
        f"# {recipe.package} from PyPI into the environment; its installer registers the kernelspec\n"
        "# system-wide (--sys-prefix), so every user and every derived image sees it.\n"
        'RUN {{ cache.pip }} pip install {{ "--cache-dir=/root/.cache/pip" if cache.pip else "--no-cache-dir" }} '
        f'-q "{recipe.package}=={{{{ version }}}}" \\\n'
        f"    && {recipe.install} \\\n"
        '    && rm -rf "${HOME}/.cache" "${HOME}/.local" "${HOME}/.ipython" /tmp/* \\\n'
        '    && fix-permissions "${VIRTUAL_ENV}"\n'
        "USER ${NB_UID}\n"
    )


def _image_block(image: str, parent: str, fragment: str, recipe: KernelRecipe) -> list[str]:
    return [
        f"{image}:",
        "  description: " + _q(f"JupyterLab with the {_title(recipe.language)} kernel ({recipe.package} from PyPI)."),
        f"  parent: {parent}",
        f"  fragments: [{fragment}]",
    ]


# --- comment-preserving edits of stacks.yaml ------------------------------------


def add_image(text: str, image: str, block: list[str]) -> str:
    """Append an image definition at the end of the top-level `images:` mapping."""
    lines = text.split("\n")
    start = _top_level_key(lines, "images")
    end = _block_end(lines, start, 0)
    indent = _child_indent(lines, start, end) or "  "
    while end > start + 1 and _blank_or_comment(lines[end - 1]) and not lines[end - 1].startswith(" "):
        end -= 1  # a top-level comment before the next key belongs to that key
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    new = [""] + [indent + line for line in block]
    return "\n".join(lines[:end] + new + lines[end:]) + ("" if text.endswith("\n") or lines[-1] == "" else "\n")


def add_to_image(text: str, image: str, fragment: str) -> str:
    """Add `fragment` at the end of an existing image's `fragments:` list (flow or block style)."""
    lines = text.split("\n")
    images = _top_level_key(lines, "images")
    images_end = _block_end(lines, images, 0)
    indent = _child_indent(lines, images, images_end) or "  "
    head = _key_line(lines, images + 1, images_end, indent, image)
    if head is None or re.sub(r"\s#.*$", "", lines[head]).split(":", 1)[1].strip():
        raise ValueError(f"image '{image}' is not written as a block under images: (edit stacks.yaml by hand)")
    head_end = _block_end(lines, head, len(indent))
    field_indent = _child_indent(lines, head, head_end)
    key = _key_line(lines, head + 1, head_end, field_indent or "", "fragments") if field_indent else None
    if key is None:
        raise ValueError(f"image '{image}' has no fragments: list to add to (edit stacks.yaml by hand)")
    line = lines[key]
    flow = re.match(r"^(\s*fragments:\s*\[)(.*)\](\s*(#.*)?)$", line)
    if flow:
        items = flow[2].strip()
        lines[key] = f"{flow[1]}{items + ', ' if items else ''}{fragment}]{flow[3]}"
        return "\n".join(lines)
    end = _block_end(lines, key, len(field_indent or ""))
    items = [i for i in range(key + 1, end) if lines[i].lstrip().startswith("- ")]
    if not items:
        raise ValueError(f"the fragments of image '{image}' are neither a [flow] nor a - block list (edit stacks.yaml by hand)")
    item_indent = lines[items[0]][: len(lines[items[0]]) - len(lines[items[0]].lstrip())]
    last = end
    while last > key + 1 and _blank_or_comment(lines[last - 1]):
        last -= 1
    return "\n".join(lines[:last] + [f"{item_indent}- {fragment}"] + lines[last:])


def _top_level_key(lines: list[str], key: str) -> int:
    for index, line in enumerate(lines):
        if re.match(rf"^{re.escape(key)}:\s*(#.*)?$", line):
            return index
    raise ValueError(f"no top-level '{key}:' block in stacks.yaml (a flow-style '{key}: {{...}}' cannot be edited)")


def _key_line(lines: list[str], start: int, end: int, indent: str, key: str) -> int | None:
    pattern = re.compile(rf"^{re.escape(indent)}{re.escape(key)}:(\s|$)")
    return next((i for i in range(start, end) if pattern.match(lines[i])), None)


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """The index after the last line of the block whose key is at lines[start] with `indent` spaces."""
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if line.strip() and not line.lstrip().startswith("#") and len(line) - len(line.lstrip()) <= indent:
            return index
    return len(lines)


def _child_indent(lines: list[str], start: int, end: int) -> str | None:
    for index in range(start + 1, end):
        line = lines[index]
        if line.strip() and not line.lstrip().startswith("#"):
            return line[: len(line) - len(line.lstrip())]
    return None


def _blank_or_comment(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("#")


def _check_edit(new_text: str, image: str, fragment: str, path: Path) -> None:
    """The edit must leave valid YAML whose image lists the fragment last; otherwise nothing is written."""
    try:
        data = load_mapping(path, new_text)
    except SpecError as exc:
        raise SpecError([Problem(f"editing stacks.yaml would break it: {p.message}", p.location) for p in exc.problems]) from None
    fragments = ((data.get("images") or {}).get(image) or {}).get("fragments") or []
    last = fragments[-1] if fragments else None
    if (last.get("use") if isinstance(last, dict) else last) != fragment:
        raise SpecError([Problem(f"could not add {fragment} to image '{image}' by a text edit; add it by hand", Location(path))])


def _q(text: str) -> str:
    """A YAML double-quoted scalar."""
    return yaml.safe_dump(text, default_style='"', width=10_000).strip().removesuffix("\n...")


def _title(language: str) -> str:
    return language if any(c.isupper() for c in language) else language.capitalize()


def _version_name(package: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", package.lower()).strip("-")
