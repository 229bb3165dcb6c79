"""`stacks lint`: lint/rules.py finds the problems, this module prints them and sets the exit status."""
from __future__ import annotations

from pathlib import Path

import click

from builder.lint.rules import lint


def run_lint(spec_file: Path, hadolint: str | None, use_hadolint: bool) -> int:
    """`stacks lint`: print every finding; exit 2 when the input does not load, 1 when a finding is at or
    above the failure threshold (the exit-code rule in README.md)."""
    result = lint(spec_file, hadolint, use_hadolint)
    for finding in result.findings:
        click.echo(str(finding), err=True)
    failed = len(result.failed)
    summary = (f"{len(result.findings)} problem{'s' if len(result.findings) != 1 else ''} "
               f"({failed} at or above '{result.threshold}')" if result.findings else "no problems")
    click.echo(f"stacks lint: {summary} in {result.fragments} fragments, {spec_file} and {result.images} rendered images",
               err=True)
    return 2 if result.invalid else 1 if failed else 0
