"""`stacks outdated`: the stack's pins against the newest releases, through the indexes builds use."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from builder.adapters.indexes import IndexUnreachable, PackageIndexes
from builder.app.commands import workspace
from builder.building.site import ca_bundle
from builder.plan.outdated import Outdated, check, collect


def run_outdated(spec_file: Path, ca_certs: tuple[Path, ...], show_all: bool, with_lock: bool, as_json: bool) -> int:
    """Print the table (or JSON); 1 when an index could not be reached, else 0 (outdated pins are information)."""
    ws = workspace(spec_file)
    plan = ws.plan()
    site = ws.site(plan, ca_certs)
    missing = [str(p) for p in site.ca_certificates if not Path(p).is_file()]
    if missing:
        raise click.ClickException(f"CA certificate file not found: {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="stacks-outdated-") as folder:
        bundle = None
        if site.ca_certificates:
            bundle = Path(folder) / "ca-bundle.pem"
            bundle.write_bytes(ca_bundle(site.ca_certificates))
        indexes = PackageIndexes(site.pip_index_url, site.npm_registry, bundle)
        result = check(collect(plan, with_lock), indexes.latest, IndexUnreachable)
    if as_json:
        click.echo(json.dumps({"pins": [p.row() for p in result.pins], "unreachable": result.unreachable,
                               "indexes": {"pip": indexes.pypi.url, "npm": indexes.npm.url}}, indent=2))
    else:
        click.echo(table(result, show_all), nl=False)
    for message in result.unreachable.values():
        ws.say(f"error: {message}")
    return 1 if result.unreachable else 0


def table(result: Outdated, show_all: bool) -> str:
    """PACKAGE MANAGER PINNED LATEST WHERE; only what is behind (or unknown) unless `show_all`."""
    shown = [p for p in result.pins if show_all or p.state in ("outdated", "missing", "unknown")]
    rows = [("PACKAGE", "MANAGER", "PINNED", "LATEST", "STATE", "PINNED BY")]
    for pin in shown:
        sources = sorted(pin.sources)
        where = ", ".join(sources[:3]) + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")
        rows.append((pin.package, pin.manager, pin.version, pin.latest or "-", pin.state, where))
    counts = {state: sum(p.state == state for p in result.pins) for state in ("outdated", "current", "newer", "missing", "unknown")}
    summary = f"{len(result.pins)} pins: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    if len(rows) == 1:
        return summary + " (--all lists every pin)\n" if not show_all else summary + "\n"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines) + "\n\n" + summary + "\n"
