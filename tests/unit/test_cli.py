"""The command line: exit status 2 and no traceback on bad input; plan/render/graph/schema output."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from builder.app.cli import main

MINI = Path(__file__).resolve().parent.parent / "fixtures" / "mini" / "stacks.yaml"
BROKEN = """
bases:
  debian: {pull: "debian:12"}
images:
  lab:
    base: debain
    fragmnts: [os]
"""


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit status, stdout, stderr). Whatever the input, never a traceback."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_bad_input_exits_2_without_traceback_in_a_real_process(stack) -> None:
    path = stack(BROKEN)
    result = subprocess.run([sys.executable, "-m", "builder", "plan", "-f", str(path)],
                            capture_output=True, text=True, cwd=path.parent, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "stacks.yaml:6:5: error: unknown key 'fragmnts' in images.lab" in result.stderr
    assert "hint: did you mean 'fragments'?" in result.stderr
    assert result.stderr.rstrip().endswith("1 error")


@pytest.mark.parametrize("command", [["plan"], ["plan", "--json"], ["render"], ["graph"], ["graph", "--format", "dot"]])
def test_every_command_reports_spec_errors_with_status_2(stack, capsys, tmp_path, command) -> None:
    path = stack(BROKEN.replace("fragmnts", "fragments").replace("[os]", "[os, pyy]"))
    extra = ["--out", str(tmp_path / "out")] if command == ["render"] else []
    code, _, err = run(capsys, *command, "-f", str(path), *extra)
    assert code == 2
    assert "Traceback" not in err
    assert "unknown base 'debain'" in err and "unknown fragment 'pyy'" in err
    assert err.rstrip().endswith("2 errors")


@pytest.mark.parametrize("text, needle", [
    ("", "file is empty"),
    ("images: [a\n", "YAML syntax error"),
    ("- a\n", "top level must be a mapping"),
])
def test_yaml_problems_exit_2(stack, capsys, text: str, needle: str) -> None:
    code, _, err = run(capsys, "plan", "-f", str(stack(text)))
    assert code == 2 and needle in err and "Traceback" not in err


def test_missing_spec_file_exits_2(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "plan", "-f", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read file" in err


def test_unknown_option_is_a_usage_error(capsys) -> None:
    code, _, err = run(capsys, "plan", "--nope")
    assert code == 2 and "No such option" in err


def test_plan_table(capsys) -> None:
    code, out, _ = run(capsys, "plan", "-f", str(MINI))
    assert code == 0
    assert out.splitlines()[0].split() == ["IMAGE", "PLATFORM", "KIND", "PARENT", "FRAGMENTS", "TAGS", "HASH", "CI"]
    assert "kernels-bookworm-extra" in out
    assert out.rstrip().splitlines()[-1].startswith(
        "22 nodes on 2 platforms (linux/amd64, linux/arm64): 16 images to build, 6 bases; 16 unverified")
    code, out, _ = run(capsys, "plan", "-f", str(MINI), "--platform", "linux/arm64")
    rows = [line.split() for line in out.splitlines()[1:] if line.startswith("kernels-bookworm-extra")]
    assert code == 0 and [row[1] for row in rows] == ["linux/arm64"]


def test_plan_json_schema(capsys) -> None:
    code, out, _ = run(capsys, "plan", "-f", str(MINI), "--json", "--platform", "linux/amd64")
    assert code == 0
    rows = json.loads(out)
    assert isinstance(rows, list) and len(rows) == 11 and {row["platform"] for row in rows} == {"linux/amd64"}
    for row in rows:
        assert {"name", "parent", "fragments", "tags", "hash"} <= set(row)
        assert isinstance(row["name"], str) and isinstance(row["tags"], list)
        assert isinstance(row["fragments"], list) and all(isinstance(f["name"], str) for f in row["fragments"])
        assert len(row["hash"]) == 64 and int(row["hash"], 16) >= 0
    by_name = {row["name"]: row for row in rows}
    bases = [row for row in rows if row["kind"] != "image"]
    assert {row["name"] for row in bases} == {"debian-bookworm", "debian-trixie", "ubuntu"}
    assert all(row["parent"] is None and row["fragments"] == [] for row in bases)
    extra = by_name["kernels-bookworm-extra"]
    assert extra["parent"] == "python-bookworm"
    assert extra["fragments"] == [
        {"name": "kernel-a", "version": "2.0", "params": {}},
        {"name": "tool", "version": None, "params": {"level": 3}},
    ]
    assert extra["tags"] == ["bookworm-extra"]
    assert by_name["python-trixie"]["fragments"][0]["params"] == {"version": "3.13"}
    # parents come first
    position = {row["name"]: i for i, row in enumerate(rows)}
    assert all(position[row["parent"]] < position[row["name"]] for row in rows if row["parent"])


def test_render_twice_gives_identical_trees(capsys, tmp_path: Path) -> None:
    trees = []
    for name in ("a", "b"):
        code, out, _ = run(capsys, "render", "-f", str(MINI), "--out", str(tmp_path / name))
        assert code == 0 and "rendered 8 images" in out
        root = tmp_path / name
        trees.append({
            p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mode & 0o777)
            for p in sorted(root.rglob("*")) if p.is_file()
        })
    assert trees[0] == trees[1]
    assert len([p for p in trees[0] if p.endswith("/Dockerfile")]) == 8
    assert trees[0]["python-trixie/fragments/py/hello.sh"][1] == 0o755


def test_graph_mermaid(capsys) -> None:
    code, out, _ = run(capsys, "graph", "-f", str(MINI))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "flowchart TD"
    assert sum("-->" in line for line in lines) == 8  # one edge per built image
    assert any("kernels-bookworm-extra<br/>kernel-a, tool" in line for line in lines)


def test_graph_dot(capsys) -> None:
    code, out, _ = run(capsys, "graph", "-f", str(MINI), "--format", "dot")
    assert code == 0
    assert out.startswith("digraph stacks {") and out.rstrip().endswith("}")
    assert '"python-bookworm" -> "kernels-bookworm-extra";' in out
    assert '"ubuntu" [shape=cylinder' in out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_graph_svg(capsys, tmp_path: Path) -> None:
    target = tmp_path / "g" / "graph.svg"
    code, _, err = run(capsys, "graph", "-f", str(MINI), "--format", "svg", "--out", str(target))
    assert code == 0 and "wrote" in err
    data = target.read_text()
    assert "<svg" in data and "kernels&#45;bookworm&#45;extra" in data  # dot escapes "-"


def test_graph_svg_without_graphviz_is_a_clear_error(capsys, monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    code, _, err = run(capsys, "graph", "-f", str(MINI), "--format", "svg")
    assert code == 2 and "needs Graphviz's 'dot' command" in err


@pytest.mark.parametrize("kind", ["stacks", "fragment"])
def test_schema_prints_json_schema(capsys, kind: str) -> None:
    args = ["schema"] if kind == "stacks" else ["schema", "--kind", kind]
    code, out, _ = run(capsys, *args)
    assert code == 0
    document = json.loads(out)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["type"] == "object" and document["additionalProperties"] is False
    assert ("images" if kind == "stacks" else "description") in document["required"]
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(document)


# --- --json: stdout is JSON whatever other flag comes with it -------------------------------------

#: every command with --json, with the other flags it is checked with
JSON_RUNS = {
    "plan": [[], ["--explain"]],
    "tags": [[], ["python"], ["--registry", "127.0.0.1:5000/team"], ["--platform", "linux/amd64", "--platform", "linux/arm64"]],
    "matrix": [[], ["--platform", "linux/amd46"], ["--only-verified", "--max-jobs", "1"]],
}


def _commands_with_json() -> set[str]:
    import click

    from builder.app.cli import cli

    found = set()
    for name, command in cli.commands.items():
        subcommands = command.commands.items() if isinstance(command, click.Group) else [(name, command)]
        for sub, leaf in subcommands:
            if any("--json" in p.opts for p in leaf.params if isinstance(p, click.Option)):
                found.add(sub if sub == name else f"{name} {sub}")
    return found


#: commands with --json that need a registry, checked in their own test file with --json and other flags
JSON_CHECKED_ELSEWHERE = {"cache prune": "tests/unit/test_cache_prune_cli.py", "outdated": "tests/unit/test_outdated.py",
                          "diff": "tests/unit/test_inventory_cli.py"}


def test_every_command_with_json_is_checked_here() -> None:
    assert _commands_with_json() == set(JSON_RUNS) | set(JSON_CHECKED_ELSEWHERE)


@pytest.mark.parametrize("command, flags", [(c, f) for c, runs in JSON_RUNS.items() for f in runs])
def test_json_with_any_other_flag_prints_only_json(capsys, monkeypatch, tmp_path, command: str, flags: list[str]) -> None:
    from builder.app.workspace import Workspace

    from .fakes import FakeEngine

    monkeypatch.setattr(Workspace, "engine", property(lambda self: FakeEngine()))
    code, out, err = run(capsys, command, "-f", str(MINI), "--json", *flags,
                         *(["--out", str(tmp_path)] if command == "tags" else []))
    assert code in (0, 1), err
    document = json.loads(out)
    if command == "plan" and "--explain" in flags:
        assert all(set(row["build"]) == {"cached", "reasons"} for row in document)
        assert document[0]["name"] and document[0]["build"]["reasons"]
    if command == "matrix" and "--platform" in flags:
        assert "warning: --platform linux/amd46" in err
    if command == "tags" and "--platform" in flags:  # per platform what each would put in the index
        assert document and all(set(row["platforms"]) == {"linux/amd64", "linux/arm64"} for row in document)
        assert all(p["state"] and p["hash"] for row in document for p in row["platforms"].values())


def test_tags_of_several_platforms_exit_as_for_one_when_nothing_is_built(capsys, monkeypatch, tmp_path) -> None:
    """Not built is a state, not a problem, for `stacks tags` of one platform or of several."""
    from builder.app.workspace import Workspace

    from .fakes import FakeEngine

    monkeypatch.setattr(Workspace, "engine", property(lambda self: FakeEngine()))
    one, text, _ = run(capsys, "tags", "-f", str(MINI), "--out", str(tmp_path))
    both, lines, err = run(capsys, "tags", "-f", str(MINI), "--out", str(tmp_path),
                           "--platform", "linux/amd64", "--platform", "linux/arm64")
    assert one == both == 0, err
    assert "(not built)" in text and "  linux/arm64: not built, hash " in lines


def test_plan_warnings_go_to_stderr_beside_json(stack, capsys) -> None:
    path = stack("""
    bases:
      debian: {pull: "debian:12"}
    axes:
      os: [bookworm, trixie]
    images:
      lab: {base: debian, axes: [os], fragments: [os]}
    hub: {image: lab, offer: [nope]}
    """)
    code, out, err = run(capsys, "matrix", "-f", str(path), "--json")
    assert code == 0 and json.loads(out) and "warning: hub.offer: no image or variant named 'nope'" in err
