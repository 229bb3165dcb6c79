"""docs/reference.md stays whole: every command and option, every environment variable the tool reads."""
from __future__ import annotations

import re
from pathlib import Path

from builder.app.reference import BEGIN, END, commands_markdown, with_commands
from builder.app.workspace import ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reference.md"
#: STACKS_* names in the code that are not read from the tool's environment
NOT_READ = {"STACKS_CA_FILE"}  # the CA secret's variable inside a bake build


def test_the_command_reference_is_the_generated_one() -> None:
    page = PAGE.read_text()
    assert BEGIN in page and END in page
    assert with_commands(page) == page, "run `python -m builder.app.reference docs/reference.md`"


def test_every_command_is_on_the_page() -> None:
    from builder.app.cli import cli

    page = PAGE.read_text()
    names = [name for name, command in cli.commands.items()
             for name in ([f"{name} {sub}" for sub in getattr(command, "commands", {})] or [name])]
    assert len(names) >= 13
    assert [n for n in names if f"### `stacks {n}`" not in page] == []
    assert f"### `stacks {names[0]}`" in commands_markdown()


def _stacks_names_in_code() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "builder").rglob("*.py"):
        found |= set(re.findall(r"\"(STACKS_[A-Z0-9_]+)\"", path.read_text()))
    return found - NOT_READ


def _read_by_environment_module() -> set[str]:
    text = (ROOT / "builder" / "app" / "environment.py").read_text()
    return set(re.findall(r"env(?:\.get\(|\[)\"([A-Z_]+)\"", text))


def test_every_environment_variable_read_is_listed_and_documented() -> None:
    code = _stacks_names_in_code()
    assert {"STACKS_CACHE", "STACKS_REGISTRY_PASSWORD", "STACKS_DEBUG"} <= code | set(ENVIRONMENT)
    assert code - set(ENVIRONMENT) == set(), "add them to builder.app.workspace.ENVIRONMENT"
    engine = _read_by_environment_module()
    assert {"DOCKER_HOST", "DOCKER_CONTEXT", "XDG_CACHE_HOME"} <= engine
    page = PAGE.read_text()
    assert [name for name in sorted(set(ENVIRONMENT) | code | engine) if f"`{name}`" not in page] == []


# --- shell completion of image names ------------------------------------------------------------------


def _complete(args: list[str], incomplete: str) -> list[str]:
    from click.shell_completion import ShellComplete

    from builder.app.cli import cli

    return [item.value for item in ShellComplete(cli, {}, "stacks", "_STACKS_COMPLETE").get_completions(args, incomplete)]


def test_images_complete_from_the_plan_of_the_spec_given() -> None:
    mini = str(ROOT / "tests" / "fixtures" / "mini" / "stacks.yaml")
    found = _complete(["build", "-f", mini], "ke")
    assert found[0] == "kernels" and "kernels-bookworm-plain" in found
    assert all(name.startswith("ke") for name in found)
    assert "python-trixie" in _complete(["test", "-f", mini, "kernels"], "py")


def test_completion_of_a_broken_spec_is_silent(tmp_path: Path, capsys) -> None:
    (tmp_path / "stacks.yaml").write_text("images: {lab: {base: nowhere}}\n")
    assert _complete(["build", "-f", str(tmp_path / "stacks.yaml")], "") == []
    assert _complete(["build", "-f", str(tmp_path / "missing.yaml")], "") == []
    assert capsys.readouterr() == ("", "")


def test_every_images_argument_completes() -> None:
    import click

    from builder.app.cli import cli
    from builder.app.completion import complete_images

    arguments = [(name, p) for name, c in cli.commands.items() for p in c.params
                 if isinstance(p, click.Argument) and p.name == "images"]
    assert {name for name, _ in arguments} == {"build", "test", "tags", "push", "matrix", "bake", "lock"}
    assert all(p._custom_shell_complete is complete_images for _, p in arguments)


def test_the_input_limits_on_the_page_are_the_code_s() -> None:
    from builder.specification.sources import MAX_FILE_BYTES, MAX_TEXT_BYTES
    from builder.specification.templating import MAX_OUTPUT, MAX_WORK
    from builder.specification.yamlsrc import MAX_NODES

    page = PAGE.read_text()
    assert f"| {MAX_TEXT_BYTES // 2**20} MiB each |" in page and f"| {MAX_FILE_BYTES // 2**20} MiB each |" in page
    assert f"| {MAX_NODES:,} per file |" in page
    assert f"{MAX_OUTPUT:,} characters of output, {MAX_WORK:,} steps" in page
