"""Image references and tags, checked against Docker's grammar at plan time.

A tag Docker would reject must fail `stacks plan`, not the push at the end of
a two-hour run.
"""
from __future__ import annotations

import re
from typing import Any

import jinja2

from .matrix import Variant, render_text
from .models import Settings

TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")


def tags_for(variant: Variant, settings: Settings, content_hash: str) -> list[str]:
    """The tags of a variant from the tag templates; raises ValueError for a tag Docker rejects."""
    context: dict[str, Any] = {
        **variant.context, "image": variant.image, "variant": variant.label,
        "axes": variant.axes, "hash": content_hash, "default": variant.is_default,
    }
    tags: list[str] = []
    for template in settings.tags:
        try:
            tag = render_text(template, context).strip()
        except jinja2.TemplateError as exc:
            raise ValueError(f"tag template '{template}': {exc}") from None
        if tag and tag not in tags:
            tags.append(tag)
    if variant.is_default and settings.latest and "latest" not in tags:
        tags.append("latest")
    for tag in tags:
        if not TAG.match(tag):
            raise ValueError(
                f"tag '{tag}' (from template '{_template_of(tag, settings, context)}') is not a valid Docker tag: "
                "use letters, digits, '_', '.', '-', at most 128 characters, not starting with '.' or '-'"
            )
    return tags


def _template_of(tag: str, settings: Settings, context: dict[str, Any]) -> str:
    for template in settings.tags:
        try:
            if render_text(template, context).strip() == tag:
                return template
        except jinja2.TemplateError:
            continue
    return "latest"


def repository(settings: Settings, repo: str) -> str:
    """The full repository name in the configured registry, e.g. docker.io/myorg/lab."""
    parts = [settings.registry.host, settings.registry.namespace, repo]
    return "/".join(p.strip("/") for p in parts if p)


def check_repository(name: str) -> None:
    path = name.split("/", 1)[1] if "/" in name and ("." in name.split("/")[0] or ":" in name.split("/")[0]) else name
    if not REPOSITORY.match(path):
        raise ValueError(f"'{name}' is not a valid repository name (lowercase letters, digits, separators . _ __ -)")
