"""Render one image's Dockerfile and build context from its fragments.

The Dockerfile is `FROM <parent>` followed by each fragment's body in order,
each under a header naming the fragment. For BuildKit every RUN gets the
optional `stacks-ca` secret mounted and the CA variables declared as ARGs,
so pip, npm and Python trust a corporate proxy's certificate during the
build without it ever entering a layer. Output is byte-for-byte
deterministic: the same inputs give the same text and the same hash.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal

import jinja2

from builder.errors import Location, Problem, SpecError
from builder.plan.dockerfile import instructions
from builder.plan.context_check import body_problems
from builder.specification import templating
from builder.plan.resolve import Applied

if TYPE_CHECKING:
    from builder.owned import OwnedDir

Mode = Literal["buildkit", "classic"]

#: Build arguments that point tools at the mounted CA bundle; values are set per run, never hashed.
CA_ARGS = ("PIP_CERT", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
#: Mirror settings reach builds the same way (ARGs whose values are per run).
MIRROR_ARGS = ("PIP_INDEX_URL", "NPM_CONFIG_REGISTRY")
CA_SECRET = "stacks-ca"
CA_PATH = f"/run/secrets/{CA_SECRET}"
_RUN = re.compile(r"^(\s*)RUN(\s+)", re.IGNORECASE)


@dataclass(frozen=True)
class Rendered:
    dockerfile: str
    #: path in the build context -> (content, mode)
    files: dict[str, tuple[bytes, int]]
    #: fragment name -> the Dockerfile text that fragment produced (for explain and hashing)
    sections: dict[str, str]


@dataclass(frozen=True)
class CacheMounts:
    """BuildKit cache-mount flags fragments may put after RUN; empty strings in classic mode."""

    apt: str
    pip: str
    npm: str

    @classmethod
    def for_mode(cls, mode: Mode, scope: str) -> "CacheMounts":
        if mode == "classic":
            return cls("", "", "")
        return cls(
            apt=(f"--mount=type=cache,target=/var/cache/apt,id=stacks-apt-{scope},sharing=locked "
                 f"--mount=type=cache,target=/var/lib/apt/lists,id=stacks-apt-lists-{scope},sharing=locked"),
            pip="--mount=type=cache,target=/root/.cache/pip,id=stacks-pip",
            npm="--mount=type=cache,target=/root/.npm,id=stacks-npm",
        )


def render_image(
    name: str, parent_ref: str, fragments: tuple[Applied, ...], image_info: dict[str, Any], cache_scope: str, mode: Mode
) -> Rendered:
    """The Dockerfile and context of one image; raises SpecError for template errors."""
    cache = CacheMounts.for_mode(mode, cache_scope)
    sections: dict[str, str] = {}
    stages: list[str] = []
    files: dict[str, tuple[bytes, int]] = {}
    for applied in fragments:
        stage, section, fragment_files = _render_fragment(applied, cache, image_info)
        if stage is not None:
            stages.append(stage)
        sections[applied.name] = section
        files.update(fragment_files)
    context = frozenset(files) | {"Dockerfile"}
    problems = [p for applied in fragments
                for p in body_problems(applied.fragment.folder / "Dockerfile.j2", sections[applied.name], context)]
    if problems:
        raise SpecError(problems)
    header = f"# Rendered by stacks for image '{name}'. Edit the fragments, not this file.\n"
    text = header + "".join(s.strip("\n") + "\n\n" for s in stages) + f"FROM {parent_ref}\n\n" + "\n".join(sections.values())
    dockerfile = _inject_build_env(text, mode)
    return Rendered(dockerfile, dict(sorted(files.items())), sections)


_Output = tuple[str | None, str, dict[str, tuple[bytes, int]]]
_MEMO: dict[tuple, _Output] = {}


def _render_fragment(applied: Applied, cache: CacheMounts, image_info: dict[str, Any]) -> _Output:
    """One fragment's stage, section and files. A matrix applies the same fragment with the same
    params to many images, so the output is memoised on everything it can depend on."""
    fragment = applied.fragment
    if fragment.reads_image:  # output differs per image: nothing to share
        return _render_fragment_now(applied, cache, image_info)
    key = (fragment.body, repr(sorted(applied.params.items())), cache)
    if key not in _MEMO:
        if len(_MEMO) > 50_000:
            _MEMO.clear()
        _MEMO[key] = _render_fragment_now(applied, cache, image_info)
    return _MEMO[key]


def _render_fragment_now(applied: Applied, cache: CacheMounts, image_info: dict[str, Any]) -> _Output:
    fragment = applied.fragment
    context = {**applied.params, "here": f"fragments/{fragment.name}", "cache": cache, "image": image_info}
    stage = None
    if fragment.stage is not None:
        stage = _render(fragment.stage, context, fragment.folder / "stage.Dockerfile.j2")
    body = _render(fragment.body, context, fragment.folder / "Dockerfile.j2").strip("\n")
    version = f" {fragment.meta.version}" if fragment.meta.version else ""
    section = f"# --- fragment: {fragment.name}{version} ---\n{body}\n"
    files = {}
    for file in fragment.files:
        data = file.data
        if file.template is not None:
            data = _render(file.template, context, fragment.folder / f"{file.path}.j2").encode()
        files[f"fragments/{fragment.name}/{file.path}"] = (data, file.mode)
    return stage, section, files


def _render(template: jinja2.Template, context: dict[str, Any], path: Path) -> str:
    try:
        return templating.render(template, context)
    except templating.TemplateFailure as exc:
        raise SpecError([Problem(f"template error: {exc.message}", Location(path, exc.lineno))]) from None


def _inject_build_env(text: str, mode: Mode) -> str:
    """Declare the per-run ARGs after every FROM and, with BuildKit, mount the optional CA secret into every RUN."""
    starts = {ins.first: ins.keyword for ins in instructions(text)}
    out: list[str] = []
    for index, line in enumerate(text.split("\n")):
        keyword = starts.get(index)
        if keyword == "FROM":
            out += [line, "ARG " + " ".join(CA_ARGS + MIRROR_ARGS)]
        elif keyword == "RUN" and mode == "buildkit":
            out.append(_RUN.sub(lambda m: f"{m[1]}RUN --mount=type=secret,id={CA_SECRET},mode=0444{m[2]}", line, count=1))
        else:
            out.append(line)
    return "\n".join(out)


def write_context(rendered: Rendered, folder: Path) -> None:
    """Write a rendered image into `folder`, replacing what an earlier run wrote there (and nothing else)."""
    from builder.owned import claim_dir

    with claim_dir(folder, legacy=_legacy_context) as owned:
        write_rendered(rendered, owned)


def write_rendered(rendered: Rendered, owned: "OwnedDir", prefix: str = "") -> None:
    """Write a rendered image's Dockerfile and context files into `owned` (below `prefix`)."""
    base = f"{prefix}/" if prefix else ""
    owned.write(f"{base}Dockerfile", rendered.dockerfile)
    for relative, (data, mode) in rendered.files.items():
        owned.write(base + relative, data, mode)


def write_all(images: Iterable[Any], out: Path) -> int:
    """`stacks render`: every image's folder below `out`, which stacks owns as a whole; returns the count."""
    from builder.owned import claim_dir

    count = 0
    with claim_dir(out, legacy=_legacy_render) as owned:
        for node in images:
            write_rendered(node.rendered, owned, node.name)
            count += 1
    return count


def _legacy_context(folder: Path) -> bool:
    """A context written before stacks kept manifests: its Dockerfile starts with the render header."""
    try:
        with open(folder / "Dockerfile", "rb") as handle:
            return handle.read(len(_HEADER_START)) == _HEADER_START
    except OSError:
        return False


def _legacy_render(folder: Path) -> bool:
    """A `stacks render` folder written before manifests: only folders, each a legacy context."""
    entries = list(folder.iterdir())
    return all(e.is_dir() and not e.is_symlink() and _legacy_context(e) for e in entries)


_HEADER_START = b"# Rendered by stacks for image "
