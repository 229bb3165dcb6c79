"""Shell completion of image names (click's completion: `_STACKS_COMPLETE=bash_source stacks`).

Completing runs on every Tab: it reads the plan of the stacks file named by
-f (default stacks.yaml) and offers image definitions and variant names. It
must be quick and say nothing: a broken or missing spec completes to nothing
rather than printing errors into the user's command line.
"""
from __future__ import annotations

from pathlib import Path

import click
from click.shell_completion import CompletionItem


def complete_images(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Image definitions, then their variants, that start with what was typed."""
    spec_file = ctx.params.get("spec_file") or Path("stacks.yaml")
    try:
        from builder.plan.plan import load_plan

        plan = load_plan(Path(spec_file))
    except Exception:  # noqa: BLE001 - completion must never fail or print
        return []
    images = plan.images()
    names: dict[str, str] = {}
    for node in images:
        if node.image:
            names.setdefault(node.image, "image definition: all its variants")
    for node in images:
        names.setdefault(node.name, "variant")
    return [CompletionItem(name, help=help_text) for name, help_text in names.items() if name.startswith(incomplete)]
