"""Image references and tags, checked against Docker's grammar at plan time.

A tag Docker would reject must fail `stacks plan`, not the push at the end of
a two-hour run. Some tag variables are known only once the image exists
(`versions` read out of it, its build `date`, the `git_sha` that built it):
at plan time such templates are rendered with placeholder values, so their
grammar and the names they read are still checked, and they are rendered for
real, and checked again, just before a push.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import jinja2

from builder.plan.matrix import Variant
from builder.specification.templating import render_text, template_variables
from builder.specification.models import Settings
from builder.reference import TAG_GRAMMAR, ImageRef, in_registry, is_tag

#: variables whose values come from the built image
LATE = frozenset({"versions", "date", "git_sha"})
#: variables that pin a tag to one content: such tags never move, so they are pushed before the others
PINNED = frozenset({"hash", "git_sha"})


@dataclass(frozen=True)
class Facts:
    """What is known of a built image only."""

    versions: dict[str, str] = field(default_factory=dict)
    date: str = ""  # build date, YYYY-MM-DD (UTC)
    git_sha: str = ""  # short commit; empty when unknown (templates reading it then give no tag)

    @staticmethod
    def placeholders(version_names: Iterable[str]) -> "Facts":
        """Stand-ins for plan time: the same names, values of a typical shape."""
        return Facts({name: "1.2.3" for name in version_names}, "2000-01-01", "0000000")


@dataclass(frozen=True)
class Tag:
    name: str
    template: str
    moving: bool  # may point at other content later (latest, bookworm, python-3.11.2); pushed after pinned tags


def is_late(template: str) -> bool:
    return bool(template_variables(template) & LATE)


def late_templates(settings: Settings) -> list[str]:
    """Templates resolved only for a built image (what `stacks tags` shows for images not built yet)."""
    return [t for t in settings.tags if is_late(t)]


def planned_tags(variant: Variant, settings: Settings, content_hash: str, facts: Facts | None = None,
                 version_names: Iterable[str] = ()) -> list[Tag]:
    """The tags of a variant, in template order; raises ValueError for a tag Docker rejects.

    Without `facts` (plan time), templates reading late variables are checked
    with placeholders for `version_names` and left out of the result.
    """
    known = facts or Facts.placeholders(version_names)
    context: dict[str, Any] = {
        **variant.context, "image": variant.image, "variant": variant.label, "axes": variant.axes,
        "hash": content_hash, "default": variant.is_default,
        "versions": known.versions, "date": known.date, "git_sha": known.git_sha,
    }
    tags: dict[str, Tag] = {}
    for template in settings.tags:
        late = is_late(template)
        for name in _render(template, context):
            if not is_tag(name):
                placeholder = " with placeholders for what is read from the built image" if late and facts is None else ""
                raise ValueError(f"tag '{name}' (from template '{template}'{placeholder}) is not a valid Docker tag: use {TAG_GRAMMAR}")
            if not (late and facts is None):
                tags.setdefault(name, Tag(name, template, moving=not template_variables(template) & PINNED))
    if variant.is_default and settings.latest:
        tags.setdefault("latest", Tag("latest", "latest", moving=True))
    return list(tags.values())


def tags_for(variant: Variant, settings: Settings, content_hash: str, facts: Facts | None = None,
             version_names: Iterable[str] = ()) -> list[str]:
    """The tag names of a variant (see `planned_tags`)."""
    return [tag.name for tag in planned_tags(variant, settings, content_hash, facts, version_names)]


def _render(template: str, context: dict[str, Any]) -> list[str]:
    """One template's tags: whitespace separates several; '-' and '.' at either end are dropped,
    so '{{ variant }}-{{ date }}' is just the date for an image without axes."""
    try:
        text = render_text(template, context)
    except jinja2.TemplateError as exc:
        names = ", ".join(context["versions"]) or "none"
        reads = f" (versions read from this image: {names})" if "versions" in template_variables(template) else ""
        raise ValueError(f"tag template '{template}': {exc}{reads}") from None
    return [name.strip("-.") for name in text.split() if name.strip("-.")]


def push_rank(tag: Tag) -> int:
    """0 for pinned tags, 1 for moving ones, 2 for `latest`: the order a registry sees them in, so it never
    shows a moving tag pointing at content whose pinned tags are not there yet."""
    return 0 if not tag.moving else 2 if tag.name == "latest" else 1


def push_order(tags: Iterable[Tag]) -> list[Tag]:
    """One image's tags in push order (stable within a rank)."""
    return sorted(tags, key=push_rank)


def repository(settings: Settings, repo: str) -> ImageRef:
    """The repository `repo` in the configured registry and namespace, e.g. docker.io/myorg/lab;
    InvalidReference (a ValueError) when Docker would refuse the name."""
    return in_registry(settings.registry.host, settings.registry.namespace, repo)
