"""Check fragment contracts for every variant, before anything is built.

Walking each variant's chain (its base, its ancestors' fragments, then its
own), every fragment must find what it `requires` already provided, must not
meet anything it (or an earlier fragment) `conflicts` with, and must be
given only parameters it declares, of the declared types. The result says,
per variant, which fragments apply with which final parameter values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2

from builder.plan.bases import BaseImage, base_for
from builder.specification.capabilities import Provided, parse_provided, parse_required
from builder.errors import Location, Problem, did_you_mean, raise_if_any
from builder.specification.fragments import Fragment
from builder.plan.matrix import Variant, matches, render_text
from builder.specification.models import FragmentUse
from builder.specification.load import Spec


@dataclass(frozen=True)
class Applied:
    """A fragment as one image applies it."""

    fragment: Fragment
    params: dict[str, Any]
    provides: tuple[Provided, ...]
    owner: str  # the image (definition) that lists it

    @property
    def name(self) -> str:
        return self.fragment.name


@dataclass(frozen=True)
class Resolved:
    variant: Variant
    base: BaseImage | None  # set for root variants
    own: tuple[Applied, ...]  # fragments this image adds
    chain: tuple[Applied, ...]  # every fragment from the root, own last
    provides: tuple[tuple[Provided, str], ...]  # capability, who provides it


def resolve(spec: Spec, variants: list[Variant], collect: list[Problem] | None = None) -> dict[str, Resolved]:
    """Resolve all variants; raise SpecError naming both sides of every broken contract.

    With `collect`, problems are added to it instead, and the result holds only the
    variants whose contracts hold (their descendants, whose problems would be
    follow-ons, are left out silently).
    """
    problems: _Problems = _Problems()
    resolved: dict[str, Resolved] = {}
    for variant in variants:
        if variant.parent is not None and variant.parent not in resolved:
            continue  # its parent is broken
        problems.dirty = False
        definition = spec.images[variant.image]
        if variant.parent is None:
            before = len(problems.items)
            base = base_for(spec, definition.base or "", variant, problems.items)
            problems.dirty = len(problems.items) > before
            chain: list[Applied] = []
            provides = [(p, f"base '{base.key}'") for p in base.provides]
        else:
            parent = resolved[variant.parent]
            base, chain, provides = None, list(parent.chain), list(parent.provides)
        own: list[Applied] = []
        for index, use in enumerate(definition.uses()):
            if use.when and not matches(use.when, variant.axes):
                continue
            where = spec.where("images", variant.image, "fragments", index)
            applied = _apply(spec, variant, use, index, problems)
            if applied is None:
                continue
            _check_contract(applied, chain, provides, where, spec, problems)
            chain.append(applied)
            own.append(applied)
            provides += [(p, f"fragment '{applied.name}'") for p in applied.provides]
        if not problems.dirty:
            resolved[variant.name] = Resolved(variant, base, tuple(own), tuple(chain), tuple(provides))
    if collect is None:
        raise_if_any(problems.items)
    else:
        collect += problems.items
    return resolved


class _Problems:
    """Problems deduplicated by message: a matrix repeats the same mistake per variant."""

    def __init__(self) -> None:
        self.items: list[Problem] = []
        self._seen: set[tuple[str, Location | None]] = set()
        self.dirty = False  # a problem (new or repeated) since the flag was last cleared

    def add(self, problem: Problem) -> None:
        self.dirty = True
        key = (problem.message, problem.location)
        if key not in self._seen:
            self._seen.add(key)
            self.items.append(problem)


def _apply(spec: Spec, variant: Variant, use: FragmentUse, index: int, problems: _Problems) -> Applied | None:
    fragment = spec.library[use.use]
    params_path = ("images", variant.image, "fragments", index, "params")
    params = _params(spec, variant, fragment, use, params_path, problems)
    if params is None:
        return None
    provides = []
    for text in fragment.meta.provides:
        try:
            provides.append(parse_provided(render_text(text, params)))
        except (ValueError, jinja2.TemplateError) as exc:
            problems.add(Problem(f"fragment '{fragment.name}' provides: {exc}", Location(fragment.folder / "fragment.yaml")))
    return Applied(fragment, params, tuple(provides), variant.image)


def _params(
    spec: Spec, variant: Variant, fragment: Fragment, use: FragmentUse, path: tuple, problems: _Problems
) -> dict[str, Any] | None:
    declared = fragment.meta.params
    values: dict[str, Any] = {}
    ok = True
    for key, raw in use.params.items():
        if key not in declared:
            ok = False
            problems.add(Problem(
                f"fragment '{fragment.name}' has no parameter '{key}'",
                spec.where(*path, key, key=True),
                did_you_mean(key, declared) or (f"its parameters: {', '.join(declared)}" if declared else "it takes no parameters"),
            ))
            continue
        try:
            values[key] = declared[key].typed(_render_value(raw, variant.context))
        except (ValueError, jinja2.TemplateError) as exc:
            ok = False
            problems.add(Problem(f"fragment '{fragment.name}' parameter '{key}': {exc}", spec.where(*path, key)))
    for key, param in declared.items():
        if key in values or key in use.params:  # given, even if invalid (reported above)
            continue
        if param.required:
            ok = False
            problems.add(Problem(
                f"fragment '{fragment.name}' needs parameter '{key}' ({param.description or param.type})",
                spec.where(*path[:-1]),
                f"add 'params: {{{key}: ...}}' to this fragment entry",
            ))
        else:
            values[key] = param.default
    return values if ok else None


def _render_value(raw: Any, context: dict[str, Any]) -> Any:
    if isinstance(raw, str):
        return render_text(raw, context)
    if isinstance(raw, list):
        return [_render_value(v, context) for v in raw]
    return raw


def _check_contract(
    applied: Applied,
    chain: list[Applied],
    provides: list[tuple[Provided, str]],
    where: Location,
    spec: Spec,
    problems: _Problems,
) -> None:
    name = applied.name
    for earlier in chain:
        if earlier.name == name:
            problems.add(Problem(
                f"fragment '{name}' is applied twice: already by image '{earlier.owner}'",
                where, "an image inherits its ancestors' fragments; list each fragment once",
            ))
    for text in applied.fragment.meta.requires:
        try:
            required = parse_required(text)
        except ValueError as exc:
            problems.add(Problem(f"fragment '{name}' requires: {exc}", Location(applied.fragment.folder / "fragment.yaml")))
            continue
        if not any(required.satisfied_by(p) for p, _ in provides):
            have = [f"{p} (from {who})" for p, who in provides if p.name == required.name]
            offer = spec.library.providers(required.name)
            problems.add(Problem(
                f"fragment '{name}' requires '{required}', which nothing before it provides"
                + (f"; found only {', '.join(have)}" if have else ""),
                where,
                f"add a fragment that provides it first: {', '.join(offer)}" if offer else
                f"no fragment in the library provides '{required.name}'",
            ))
    for other in chain:
        for left, right in ((applied, other), (other, applied)):
            clash = _conflict(left, right)
            if clash:
                problems.add(Problem(
                    f"fragments '{left.name}' and '{right.name}' conflict: '{left.name}' declares "
                    f"conflicts: [{clash}] (image '{applied.owner}' adds '{applied.name}', "
                    f"'{other.name}' comes from image '{other.owner}')",
                    where, "an image can hold only one of them; put them in separate images",
                ))


def _conflict(declaring: Applied, other: Applied) -> str | None:
    """The entry of `declaring`'s conflicts that `other` hits (by name or by a capability it provides)."""
    for entry in declaring.fragment.meta.conflicts:
        if entry == other.name or any(p.name == entry for p in other.provides):
            return entry
    return None
