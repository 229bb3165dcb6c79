"""Image sizes as people write and read them: decimal units, the ones `docker images` prints.

Budgets in stacks.yaml are parsed here, and every report, progress line and
check prints sizes through the same function, so a budget and the size it is
compared with always look alike.
"""
from __future__ import annotations

UNITS = {"kB": 1e3, "MB": 1e6, "GB": 1e9}


def parse_size(text: str) -> int:
    """'600MB' -> 600_000_000."""
    number, unit = text[:-2].strip(), text[-2:]
    return round(float(number) * UNITS[unit])


def human_size(size: int | None) -> str:
    """600_000_000 -> '600.0 MB'; None (not measured) -> '-'."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "kB") else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
