"""Versions read out of a built image, and checked against what the spec declares.

Each fragment (and base) says in its `versions:` map how to read what it
installs: a shell command that prints the version. The commands run in one
idle container of the built image, as its user, with no network. What they
print feeds the tag templates (`{{ versions.python }}`), and every version the
spec declares in `provides` (`python=3.11`, a base's `cuda=12.6`) must be
compatible with what the image reports before anything is pushed: a tag must
never say 3.12 on an image that runs 3.11. Running the commands is
check/versions.py's job; this module only plans and compares.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

import jinja2
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from builder.plan.matrix import render_text

if TYPE_CHECKING:
    from builder.plan.bases import BaseImage
    from builder.plan.resolve import Applied

_SEPARATORS = ".-+_~"


@dataclass(frozen=True)
class Probe:
    name: str
    command: str
    source: str  # "fragment 'python-venv'" or "base 'debian'"


@dataclass
class VersionReport:
    """What one image reports, and how it compares with what its spec declares."""

    image: str
    versions: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # name -> why the command gave no version
    mismatches: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # declared, but nothing reads them

    @property
    def ok(self) -> bool:
        return not self.failures and not self.mismatches

    def problems(self) -> list[str]:
        failed = [f"{self.image}: could not read version '{name}': {why}" for name, why in self.failures.items()]
        return failed + [f"{self.image}: {m}" for m in self.mismatches]


def commands(wanted: dict[str, Probe]) -> dict[str, str]:
    """name -> command: what a test record keeps, and what a push compares, to know the versions are current."""
    return {probe.name: probe.command for probe in wanted.values()}


def probes(chain: Iterable["Applied"], base: "BaseImage | None") -> dict[str, Probe]:
    """Every version command of an image: its base's, then its fragments' (params filled in); later ones win."""
    found: dict[str, Probe] = {}
    if base is not None:
        for name, command in base.versions:
            found[name] = Probe(name, command, f"base '{base.key}'")
    for applied in chain:
        for name, command in applied.fragment.meta.versions.items():
            try:
                text = render_text(command, applied.params)
            except jinja2.TemplateError as exc:
                text = f"echo 'version command of {applied.name} does not render: {exc}' >&2; exit 1"
            found[name] = Probe(name, text, f"fragment '{applied.name}'")
    return found


def probe_names(chain: Iterable["Applied"], base: "BaseImage | None") -> list[str]:
    """The names `probes` gives, without rendering commands (plan time, once per variant)."""
    names = [name for name, _ in base.versions] if base is not None else []
    names += [name for applied in chain for name in applied.fragment.meta.versions]
    return list(dict.fromkeys(names))


def declared(chain: Iterable["Applied"], base: "BaseImage | None") -> dict[str, tuple[str, str]]:
    """name -> (version, who declares it) for every versioned capability of the chain; later ones win."""
    found: dict[str, tuple[str, str]] = {}
    if base is not None:
        found.update({p.name: (p.version, f"base '{base.key}'") for p in base.provides if p.version})
    for applied in chain:
        found.update({p.name: (p.version, f"fragment '{applied.name}'") for p in applied.provides if p.version})
    return found


def compatible(declared_version: str, reported: str) -> bool:
    """Whether an image reporting `reported` has the declared version: equal, or the declared one
    is a prefix of it at a component boundary (3.11 ~ 3.11.2, 12 ~ 12.8, debian ~ debian-12; 3.1 !~ 3.11)."""
    if reported == declared_version:
        return True
    try:
        return SpecifierSet(f"=={declared_version}.*").contains(Version(reported), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        pass
    rest = reported[len(declared_version):]
    return reported.startswith(declared_version) and bool(rest) and rest[0] in _SEPARATORS


def compare(report: VersionReport, wanted: dict[str, tuple[str, str]]) -> VersionReport:
    """Fill `mismatches` and `unchecked` of `report` from the declared versions."""
    for name, (version, source) in wanted.items():
        if name in report.failures:
            continue
        got = report.versions.get(name)
        if got is None:
            report.unchecked.append(f"{name}={version}")
        elif not compatible(version, got):
            report.mismatches.append(f"{source} declares {name}={version}, but the image reports {name} {got}")
    return report
