"""Capabilities: the vocabulary of fragment contracts.

A fragment `provides` capabilities (`python=3.12`, `jupyter-server`,
`kernelspec:java`) and `requires` others, optionally with a PEP 440 version
specifier (`python>=3.10`). Keeping the grammar here lets the resolver, the
linter and the docs agree on what a capability string means.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.:/+-]*"
_PROVIDED = re.compile(rf"^(?P<name>{_NAME})(?:=(?P<version>[^=<>!~\s]+))?$")
_REQUIRED = re.compile(rf"^(?P<name>{_NAME})\s*(?P<spec>(?:[=<>!~]=?|===).*)?$")


@dataclass(frozen=True)
class Provided:
    name: str
    version: str | None

    def __str__(self) -> str:
        return f"{self.name}={self.version}" if self.version else self.name


@dataclass(frozen=True)
class Required:
    name: str
    spec: SpecifierSet | None

    def __str__(self) -> str:
        if self.spec and str(self.spec).startswith("==="):
            return f"{self.name}={str(self.spec)[3:]}"  # as written: `os=debian`
        return f"{self.name}{self.spec}" if self.spec else self.name

    def satisfied_by(self, provided: Provided) -> bool:
        if provided.name != self.name:
            return False
        if self.spec is None:
            return True
        if provided.version is None:
            return False
        try:
            return Version(provided.version) in self.spec
        except InvalidVersion:
            return any(s.operator in ("==", "===") and s.version == provided.version for s in self.spec)


def capability_name(text: str) -> str:
    match = re.match(_NAME, text.strip())
    return match.group(0) if match else text


def parse_provided(text: str) -> Provided:
    """Parse `name` or `name=version`; ValueError explains what is wrong."""
    match = _PROVIDED.match(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not a capability; write 'name' or 'name=version'")
    return Provided(match["name"], match["version"])


def parse_required(text: str) -> Required:
    """Parse `name` or `name<specifier>` (a single '=' means '==')."""
    match = _REQUIRED.match(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not a requirement; write 'name' or 'name>=version'")
    spec_text = (match["spec"] or "").strip()
    if not spec_text:
        return Required(match["name"], None)
    if re.match(r"^=[^=]", spec_text):
        spec_text = "=" + spec_text
    try:
        return Required(match["name"], SpecifierSet(spec_text))
    except InvalidSpecifier:
        pass
    if re.match(r"^==[^=<>!~\s,]+$", spec_text):
        # a version that is no PEP 440 version (`os=debian`, `java=temurin`) matches as an exact string
        return Required(match["name"], SpecifierSet("=" + spec_text))
    raise ValueError(f"'{text}' has an invalid version specifier '{spec_text}' (PEP 440, e.g. >=3.10)") from None
