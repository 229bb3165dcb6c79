"""Concrete bases: what a root image variant starts from.

A base in stacks.yaml may depend on axis values (`suite: "{{ os }}"`), so
each root variant gets the base rendered with its own axes. Variants that
render to the same base share one base node, named after the base and the
axis values it actually reads (`debian-bookworm`), never after axes it
ignores.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jinja2

from builder.specification.capabilities import Provided, parse_provided
from builder.errors import Problem
from builder.plan.matrix import Variant
from builder.specification.templating import render_text, template_variables
from builder.specification.models import Base, Bootstrap
from builder.specification.load import Spec
from builder.reference import ImageRef, InvalidReference

@dataclass(frozen=True)
class BaseImage:
    name: str
    key: str
    pull: str | None
    bootstrap: Bootstrap | None
    provides: tuple[Provided, ...]
    platforms: tuple[str, ...]
    unverified: str | None = None  # why CI cannot obtain it; None when it can
    versions: tuple[tuple[str, str], ...] = ()  # (name, command) read from images built on it; not part of its identity

    @property
    def kind(self) -> str:
        return "pull" if self.pull else "bootstrap"

    def identity(self) -> dict[str, Any]:
        """What makes this base what it is; hashed into the base's content hash."""
        return {"pull": self.pull, "bootstrap": self.bootstrap.model_dump() if self.bootstrap else None}


def base_for(spec: Spec, key: str, variant: Variant, problems: list[Problem]) -> BaseImage:
    """Render base `key` for `variant`'s axes."""
    base = spec.model.bases[key]
    raw = base.model_dump()
    used = [axis for axis in variant.axes if axis in _variables(raw)]
    name = "-".join([key] + [str(variant.axes[a]) for a in used])
    try:
        rendered = _render(raw, variant.context)
        provides = tuple(parse_provided(p) for p in rendered["provides"])
    except (jinja2.TemplateError, ValueError) as exc:
        problems.append(Problem(f"base '{key}': {exc}", spec.where("bases", key)))
        return BaseImage(name, key, base.pull, base.bootstrap, (), tuple(base.platforms), _unverified(base))
    if rendered["pull"] is not None:
        try:
            ImageRef.parse(rendered["pull"])
        except InvalidReference as exc:
            problems.append(Problem(f"base '{key}': {exc}", spec.where("bases", key, "pull")))
    bootstrap = Bootstrap(**rendered["bootstrap"]) if rendered["bootstrap"] else None
    return BaseImage(name, key, rendered["pull"], bootstrap, provides, tuple(rendered["platforms"]), _unverified(base),
                     tuple(rendered["versions"].items()))


def _unverified(base: Base) -> str | None:
    if base.verified:
        return None
    return base.unverified_reason or "marked unverified"


def _variables(value: Any) -> set[str]:
    return set(template_variables(json.dumps(value)))


def _render(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return render_text(value, context)
    if isinstance(value, list):
        return [_render(v, context) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, context) for k, v in value.items()}
    return value

