"""`stacks new kernel`: a fragment that lints clean, added to stacks.yaml without losing its comments."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from builder.app.cli import cli
from builder.errors import SpecError
from builder.lint.rules import lint
from builder.plan.plan import load_plan
from builder.outputs.scaffold import add_image, add_to_image, new_kernel, recipe_for

ROOT = Path(__file__).resolve().parents[2]

SPEC = """\
# the stack of a test
version: 1
bases:
  debian: {bootstrap: {suite: bookworm}, provides: [apt]}   # bootstrapped
images:
  # the lab
  lab:
    parent: venv
    fragments:
      - jupyter
  tools:
    parent: lab
    fragments: [tool]
  venv:
    base: debian
    fragments:
      - os     # first
      - use: py
        params: {version: "3.11"}

# trailing comment
"""
FRAGMENTS = {  # bodies without RUN: hadolint would ask to merge consecutive RUNs of different fragments
    "os": {"meta": {"provides": ["shell"]}, "body": "ENV OS=debian\n"},
    "jupyter": {"meta": {"provides": ["jupyter-server"], "requires": ["python>=3.10"]}, "body": "ENV LAB=1\n"},
    "py": {"meta": {"provides": ["python={{ version }}", "venv"], "params": {"version": {"type": "string"}}},
           "body": "ENV PYTHON={{ version }}\n"},
    "tool": {"body": "ENV TOOL=1\n"},
}


@pytest.fixture
def spec(stack) -> Path:
    path = stack(SPEC, FRAGMENTS)
    shutil.copy(ROOT / ".hadolint.yaml", path.parent / ".hadolint.yaml")
    return path


def default_recipe():
    return recipe_for(None, None, None, None, None, None, None, "demo")


def test_new_image_on_lab(spec: Path) -> None:
    made = new_kernel(spec, "demo", default_recipe())
    assert made.fragment == "kernel-demo" and made.image == "lab-demo" and made.created_image
    assert made.variants == ("lab-demo",)
    assert [a.name for a in load_plan(spec)["tools"].chain][-1] == "tool"
    text = spec.read_text()
    assert text.startswith(SPEC.split("\n# trailing comment")[0].rstrip("\n"))  # every original line, in place
    assert "# trailing comment" in text and "# first" in text and "# bootstrapped" in text
    data = yaml.safe_load(text)
    assert data["images"]["lab-demo"] == {
        "description": "JupyterLab with the Bash kernel (bash_kernel from PyPI).", "parent": "lab", "fragments": ["kernel-demo"]}
    meta = yaml.safe_load((made.folder / "fragment.yaml").read_text())
    assert meta["kernel"] == {"name": "bash", "language": "bash", "snippet": "echo $((6 * 7))", "expect": "42"}
    assert meta["version"] == meta["params"]["version"]["default"] == "0.10.0"
    assert "kernelspec:bash" in meta["provides"]
    body = (made.folder / "Dockerfile.j2").read_text()
    assert '"bash_kernel=={{ version }}"' in body and body.startswith("USER root") and body.rstrip().endswith("USER ${NB_UID}")
    plan = load_plan(spec)
    assert [a.name for a in plan["lab-demo"].fragments] == ["kernel-demo"]


def test_the_scaffold_lints_clean(spec: Path) -> None:
    new_kernel(spec, "demo", default_recipe())
    assert [str(f) for f in lint(spec).findings] == []


def test_into_a_block_list_and_a_flow_list(spec: Path) -> None:
    recipe = recipe_for("scheme_kernel", "1.4.8", "scheme", None, None, None, None, "scheme")
    assert (recipe.kernelspec, recipe.install) == ("scheme", "python -m scheme_kernel.install --sys-prefix")
    made = new_kernel(spec, "scheme", recipe, into="lab")
    assert not made.created_image
    data = yaml.safe_load(spec.read_text())
    assert data["images"]["lab"]["fragments"] == ["jupyter", "kernel-scheme"]
    assert "      - jupyter\n      - kernel-scheme\n" in spec.read_text()
    made = new_kernel(spec, "demo", default_recipe(), into="tools")
    assert "    fragments: [tool, kernel-demo]\n" in spec.read_text()
    assert "# first" in spec.read_text() and "# the lab" in spec.read_text()
    meta = yaml.safe_load((made.folder.parent / "kernel-scheme" / "fragment.yaml").read_text())
    assert meta["kernel"]["snippet"] == "(display (* 6 7))" and meta["version"] == "1.4.8"


def test_known_recipes() -> None:
    scheme = recipe_for("calysto_scheme", None, None, None, None, None, None, "scheme")
    assert (scheme.version, scheme.kernelspec, scheme.snippet) == ("2.1.9", "calysto_scheme", "(display (* 6 7))")
    pinned = recipe_for("bash_kernel", "0.9.3", None, None, None, "echo 42", None, "b")
    assert (pinned.version, pinned.snippet, pinned.kernelspec) == ("0.9.3", "echo 42", "bash")


def test_refusals(spec: Path) -> None:
    new_kernel(spec, "demo", default_recipe())
    with pytest.raises(ValueError, match="exists already"):
        new_kernel(spec, "demo", default_recipe())
    with pytest.raises(ValueError, match="no image 'nope'"):
        new_kernel(spec, "other", default_recipe(), parent="nope")
    with pytest.raises(ValueError, match="no image 'nope'"):
        new_kernel(spec, "other", default_recipe(), into="nope")
    with pytest.raises(ValueError, match="exists already"):
        new_kernel(spec, "other", default_recipe(), image="lab-demo")
    with pytest.raises(ValueError, match="lowercase"):
        new_kernel(spec, "Bad Name", default_recipe())
    with pytest.raises(ValueError, match="--version"):
        recipe_for("some_kernel", None, None, None, None, None, None, "x")
    with pytest.raises(ValueError, match="--snippet"):
        recipe_for("some_kernel", "1.0", "klingon", None, None, None, None, "x")


def test_a_scaffold_that_does_not_plan_writes_nothing(spec: Path) -> None:
    new_kernel(spec, "demo", default_recipe())
    before = spec.read_text()
    with pytest.raises(SpecError) as excinfo:  # a second bash kernelspec in the same image conflicts
        new_kernel(spec, "other", default_recipe(), into="lab-demo")
    assert spec.read_text() == before
    assert not (spec.parent / "fragments" / "kernel-other").exists()
    assert not list(spec.parent.glob(".*.new"))
    assert all(p.location.file == spec for p in excinfo.value.problems)


def test_text_edits_keep_everything_else() -> None:
    text = "version: 1\nimages:\n  a:\n    base: b\n    fragments: []\n# about settings\nsettings: {}\n"
    edited = add_image(text, "c", ["c:", "  parent: a", "  fragments: [x]"])
    assert edited == ("version: 1\nimages:\n  a:\n    base: b\n    fragments: []\n\n  c:\n    parent: a\n    fragments: [x]\n"
                      "# about settings\nsettings: {}\n")
    assert add_to_image(text, "a", "x").count("fragments: [x]") == 1
    with pytest.raises(ValueError, match="flow-style"):
        add_to_image("images: {a: {fragments: [y]}}\n", "a", "x")
    with pytest.raises(ValueError, match="not written as a block"):
        add_to_image("images:\n  a: {fragments: [y]}\n", "a", "x")


def test_cli(spec: Path) -> None:
    result = CliRunner().invoke(cli, ["new", "kernel", "demo", "-f", str(spec)])
    assert result.exit_code == 0, result.output
    assert "added image 'lab-demo'" in result.output and "stacks build" in result.output and "lab-demo" in result.output
    result = CliRunner().invoke(cli, ["new", "kernel", "demo", "-f", str(spec)])
    assert result.exit_code == 2 and "exists already" in result.output


def test_on_a_copy_of_the_project(tmp_path: Path) -> None:
    """The scaffold a contributor makes in this repository plans and lints clean."""
    for name in ("stacks.yaml", ".hadolint.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "fragments", tmp_path / "fragments")
    shutil.copytree(ROOT / "schema", tmp_path / "schema")
    made = new_kernel(tmp_path / "stacks.yaml", "demo", default_recipe())
    assert made.variants == ("lab-demo-bookworm", "lab-demo-trixie")
    assert (made.folder / "fragment.yaml").read_text().startswith("# yaml-language-server: $schema=../../schema/fragment.schema.json")
    assert [str(f) for f in lint(tmp_path / "stacks.yaml").findings] == []
    plan = load_plan(tmp_path / "stacks.yaml")
    assert plan["lab-demo-bookworm"].verified and plan["lab-demo-bookworm"].parent == "lab-bookworm"
