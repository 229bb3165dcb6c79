"""Pictures of the plan: Mermaid and DOT text, and SVG/PNG through Graphviz."""
from __future__ import annotations

import shutil
import subprocess

from builder.errors import Problem, SpecError
from builder.plan.plan import Node, Plan

_SHAPES = {"pull": "cylinder", "bootstrap": "cylinder", "image": "box"}


def _label(node: Node) -> str:
    if node.kind != "image":
        return f"{node.name}\\n({node.kind}: {node.local_ref if node.kind == 'pull' else 'mmdebstrap'})"
    fragments = ", ".join(a.name for a in node.fragments)
    return f"{node.name}\\n{fragments}" if fragments else node.name


def mermaid(plan: Plan) -> str:
    lines = ["flowchart TD"]
    ids = {node.name: f"n{i}" for i, node in enumerate(plan)}
    for node in plan:
        text = _label(node).replace("\\n", "<br/>").replace('"', "'")
        shape = f'[("{text}")]' if node.kind != "image" else f'["{text}"]'
        lines.append(f"    {ids[node.name]}{shape}")
    for node in plan:
        if node.parent:
            lines.append(f"    {ids[node.parent]} --> {ids[node.name]}")
    return "\n".join(lines) + "\n"


def dot(plan: Plan) -> str:
    lines = ["digraph stacks {", "    rankdir=TB;", '    node [fontname="Helvetica", fontsize=10];']
    for node in plan:
        label = _label(node).replace('"', "'")
        lines.append(f'    "{node.name}" [shape={_SHAPES[node.kind]}, label="{label}"];')
    for node in plan:
        if node.parent:
            lines.append(f'    "{node.parent}" -> "{node.name}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def picture(plan: Plan, fmt: str) -> bytes:
    """SVG or PNG bytes drawn by Graphviz's `dot`; a clear error when it is not installed."""
    exe = shutil.which("dot")
    if exe is None:
        raise SpecError([Problem(
            f"--format {fmt} needs Graphviz's 'dot' command, which is not installed",
            hint="install it (Debian/Ubuntu: apt-get install graphviz) or use --format dot / --format mermaid",
        )])
    result = subprocess.run([exe, f"-T{fmt}"], input=dot(plan).encode(), capture_output=True, check=False)
    if result.returncode != 0:
        raise SpecError([Problem(f"graphviz failed: {result.stderr.decode(errors='replace').strip()}")])
    return result.stdout
