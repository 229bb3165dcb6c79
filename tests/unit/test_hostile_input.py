"""Hostile specs and fragments, as a pull request may bring them: each is a located error
(or warning) and the documented exit status, never a traceback, a hang or a blown memory.

Each case sits under the heading of its class: templates (the sandbox and its limits), YAML
(reading, encoding, syntax faults, alias bombs), fragment folders (links, COPY, FROM), --out,
stages (every independent error of every stage in one run, no follow-ons, warnings), inputs
that were accepted (search paths, fragment declarations, hub offers, matrix includes), exit codes.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.errors import SpecError
from builder.plan.plan import load_plan
from builder.specification.load import load_spec
from builder.specification.templating import TemplateFailure, render_text
from builder.specification.yamlsrc import MAX_NODES, load_mapping

from .test_cli import run

from .helpers import make_stack

SPEC = """
bases:
  debian: {pull: "debian:12"}
images:
  lab: {base: debian, fragments: [os, tool]}
"""


def plan_problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as excinfo:
        load_plan(path)
    return [str(p) for p in excinfo.value.problems]


# --- templates -----------------------------------------------------------------


@pytest.mark.parametrize("template, message", [
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
    ("{{ cycler.__init__.__globals__.os.system('id') }}", "unsafe"),
    ("{{ 'a' * 10**9 }}", "more than"),
    ("{{ [1] * 10**9 }}", "more than"),
    ("{{ range(10**9) | list }}", "too"),
    ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", "too much work"),
    ("{{ 9 ** (9 ** 9) }}", "exponent"),
    ("{{ 'x' | center(10**9) }}", "too large"),
    ("{{ '{:>999999999}'.format(1) }}", "width"),
    ("{% set ns = namespace(x='ab') %}{% for i in range(64) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}", "more than"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion"),
    ("{{ 1/0 }}", "division by zero"),
    ("{{ nothing }}", "'nothing' is undefined"),
])
def test_templates_are_sandboxed_and_bounded(template: str, message: str) -> None:
    with pytest.raises(TemplateFailure, match=message):
        render_text(template, {"os": "bookworm"})


def test_plain_substitutions_still_render() -> None:
    assert render_text("{{ os }}-{{ os | upper }}\n", {"os": "bookworm"}) == "bookworm-BOOKWORM"


def test_sandbox_escape_in_build_args_is_a_located_error(tmp_path: Path, capsys) -> None:
    path = make_stack(tmp_path, SPEC.replace(
        "fragments: [os, tool]}", "fragments: [os, tool], build_args: {X: \"{{ ''.__class__.__mro__ }}\"}}"))
    code, _, err = run(capsys, "plan", "-f", str(path))
    assert code == 2 and "stacks.yaml:4:" in err and "build arg 'X'" in err and "unsafe" in err


def test_undefined_variable_in_a_tag_is_a_located_error(tmp_path: Path) -> None:
    path = make_stack(tmp_path, "settings: {tags: ['{{ nope }}']}\n" + SPEC)
    assert any("stacks.yaml:" in p and "'nope' is undefined" in p for p in plan_problems(path))


def test_division_by_zero_in_a_name_is_a_located_error(tmp_path: Path) -> None:
    path = make_stack(tmp_path, SPEC.replace("fragments: [os, tool]}", "fragments: [os, tool], name: '{{ 1/0 }}'}"))
    assert any("stacks.yaml:4:" in p and "division by zero" in p for p in plan_problems(path))


def test_a_fragment_template_cannot_escape_the_sandbox(tmp_path: Path) -> None:
    path = make_stack(tmp_path, SPEC, {"tool": {"body": "RUN echo\n{{ cache.__class__.__init__.__globals__ }}\n"}})
    assert any("tool/Dockerfile.j2:2:" in p and "unsafe" in p for p in plan_problems(path))


# --- YAML: reading, encoding, syntax faults, alias bombs -----------------------------------


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    path = tmp_path / "lol.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError, match=f"more than {MAX_NODES} nodes through aliases"):
        load_mapping(path)


def test_billion_laughs_in_a_list_param_is_refused(tmp_path: Path, capsys) -> None:
    laughs = "x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]\n" for i in range(1, 9))
    path = make_stack(tmp_path, "axes:\n  os: [a]\n" + SPEC.replace("bases:", "x-laughs:\n" + "".join(
        "  " + line + "\n" for line in laughs.splitlines()) + "bases:"))
    code, _, err = run(capsys, "plan", "-f", str(path))
    assert code == 2 and "nodes through aliases" in err


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rec.yaml"
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(SpecError, match="refers to a node that contains it"):
        load_mapping(path)


def test_a_fifo_as_the_spec_is_refused_without_reading_it(tmp_path: Path, capsys) -> None:
    fifo = tmp_path / "stacks.yaml"
    os.mkfifo(fifo)
    code, _, err = run(capsys, "plan", "-f", str(fifo))
    assert code == 2 and "not a regular file (a FIFO)" in err


def test_dev_zero_as_the_spec_is_refused(capsys) -> None:
    code, _, err = run(capsys, "plan", "-f", "/dev/zero")
    assert code == 2 and "not a regular file (a device)" in err


def test_a_huge_spec_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: " + b"x" * (3 * 1024 * 1024))
    with pytest.raises(SpecError, match="larger than 2 MiB"):
        load_mapping(path)


def test_utf16_spec_is_a_clear_error(tmp_path: Path, capsys) -> None:
    path = tmp_path / "stacks.yaml"
    path.write_bytes(SPEC.encode("utf-16"))
    code, _, err = run(capsys, "plan", "-f", str(path))
    assert code == 2 and "stacks.yaml:1:1: error: file is UTF-16 encoded" in err


def test_non_utf8_bytes_are_located(tmp_path: Path) -> None:
    path = tmp_path / "stacks.yaml"
    path.write_bytes(b"images:\n  lab: {base: d\xe9bian}\n")
    with pytest.raises(SpecError, match="not valid UTF-8") as excinfo:
        load_mapping(path)
    assert (excinfo.value.problems[0].location.line, excinfo.value.problems[0].location.column) == (2, 16)


def test_non_utf8_template_is_a_located_error(tmp_path: Path) -> None:
    path = make_stack(tmp_path, SPEC)
    (path.parent / "fragments" / "tool" / "Dockerfile.j2").write_bytes(b"RUN echo \xff\n")
    with pytest.raises(SpecError, match=r"tool/Dockerfile\.j2:1:10: error: file is not valid UTF-8"):
        load_spec(path)


@pytest.mark.parametrize("text, where, message", [
    (b'images:\n  lab: {base: "debian}\n  x: 1\n', "2:15", "this quoted value is never closed"),
    (b"images:\n  lab: 'unclosed\n  x: 1\n", "2:8", "this quoted value is never closed"),
    (b"images:\n  lab: {base: deb\x00ian}\n", "2:18", "YAML does not allow the control character U+0000 (NUL)"),
    ("a: \u00e9\u00e9\u00e9\nb: x\x07y\n".encode(), "2:5", "YAML does not allow the control character U+0007"),
    (b"a: 1\nb: [1, 2\n", "3:1", "did not find expected ',' or ']'\n    hint: a flow sequence began at line 2, column 4"),
])
def test_yaml_faults_name_the_line_at_fault(tmp_path: Path, text: bytes, where: str, message: str) -> None:
    path = tmp_path / "stacks.yaml"
    path.write_bytes(text)
    with pytest.raises(SpecError) as excinfo:
        load_mapping(path)
    assert f"stacks.yaml:{where}: error: " in str(excinfo.value) and message in str(excinfo.value), str(excinfo.value)


def test_a_nul_in_a_fragment_yaml_is_located(tmp_path: Path) -> None:
    path = make_stack(tmp_path, SPEC, {"tool": {"meta": "name: tool\ndescription: a\x00b\n"}})
    assert any("tool/fragment.yaml:2:15: error: YAML does not allow the control character U+0000" in p
               for p in plan_problems(path))


def test_an_oversized_spec_says_why_no_line_is_named(tmp_path: Path, capsys) -> None:
    path = tmp_path / "stacks.yaml"
    path.write_bytes(b"a: " + b"x" * (3 * 1024 * 1024))
    code, _, err = run(capsys, "plan", "-f", str(path))
    assert code == 2 and "stacks.yaml: error: file is larger than 2 MiB" in err and "no line can be named" in err


def test_complex_key_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "stacks.yaml"
    path.write_text("images: {}\n? [a, b]\n: 1\n")
    with pytest.raises(SpecError, match=r"stacks.yaml:2:3: error: a key must be a plain value, not a list"):
        load_mapping(path)


# --- fragment folders ------------------------------------------------------------


def test_symlink_to_a_host_file_is_refused(tmp_path: Path) -> None:
    path = make_stack(tmp_path, SPEC)
    (path.parent / "fragments" / "tool" / "shadow").symlink_to("/etc/shadow")
    with pytest.raises(SpecError, match="symbolic link 'shadow' -> '/etc/shadow' points outside"):
        load_spec(path)


def test_symlink_inside_the_fragment_is_fine(tmp_path: Path) -> None:
    path = make_stack(tmp_path, SPEC, {"tool": {"body": "COPY {{ here }}/link /x\n", "files": {"real": "data"}}})
    (path.parent / "fragments" / "tool" / "link").symlink_to("real")
    node = load_plan(path)["lab"]
    assert node.rendered.files["fragments/tool/link"][0] == b"data"


def test_symlink_loop_is_an_error(tmp_path: Path) -> None:
    path = make_stack(tmp_path, SPEC)
    folder = path.parent / "fragments" / "tool"
    (folder / "a").symlink_to("b")
    (folder / "b").symlink_to("a")
    with pytest.raises(SpecError, match="is a loop"):
        load_spec(path)


def test_copy_of_a_missing_file_is_an_error_at_its_template_line(tmp_path: Path) -> None:
    path = make_stack(tmp_path, SPEC, {"tool": {"body": "RUN echo\nCOPY {{ here }}/missing.sh /usr/local/bin/\n"}})
    assert any("tool/Dockerfile.j2:2: error: COPY of 'fragments/tool/missing.sh'" in p for p in plan_problems(path))


def test_copy_of_a_shipped_file_and_from_a_stage_are_fine(tmp_path: Path) -> None:
    body = "COPY {{ here }}/run.sh /run.sh\nCOPY --from=builder /out /out\nCOPY [\"{{ here }}/dir\", \"/d\"]\n"
    path = make_stack(tmp_path, SPEC, {"tool": {"body": body, "files": {"run.sh": "x", "dir/a": "y"}}})
    assert load_plan(path)["lab"].rendered is not None


def test_from_in_a_fragment_body_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = make_stack(tmp_path, SPEC, {"tool": {"body": "RUN echo\nFROM alpine AS sneaky\n"}})
    assert any("tool/Dockerfile.j2:2: error: a fragment body may not contain FROM" in p for p in plan_problems(path))


# --- --out -------------------------------------------------------------------------


def test_render_into_a_foreign_folder_is_refused_and_deletes_nothing(tmp_path: Path, capsys) -> None:
    path = make_stack(tmp_path / "s", SPEC.replace("lab:", "docs:"))
    out = tmp_path / "repo"
    (out / "docs").mkdir(parents=True)
    (out / "docs" / "index.md").write_text("precious")
    code, _, err = run(capsys, "render", "-f", str(path), "--out", str(out))
    assert code == 2 and "not written by stacks" in err
    assert (out / "docs" / "index.md").read_text() == "precious"
    assert sorted(p.name for p in (out / "docs").iterdir()) == ["index.md"]


def test_render_twice_into_its_own_folder_works(tmp_path: Path, capsys) -> None:
    path = make_stack(tmp_path / "s", SPEC)
    for _ in range(2):
        code, _, err = run(capsys, "render", "-f", str(path), "--out", str(tmp_path / "out"))
        assert code == 0, err
    assert (tmp_path / "out" / "lab" / "Dockerfile").is_file()


@pytest.mark.parametrize("command", [["render"], ["schema"], ["graph"], ["bake"]])
def test_out_pointing_at_a_foreign_file_is_an_error(tmp_path: Path, capsys, command: list[str]) -> None:
    path = make_stack(tmp_path / "s", SPEC)
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    code, _, err = run(capsys, *command, "-f", str(path), "--out", str(target))
    assert code == 2 and "notes.txt: error:" in err
    assert target.read_text() == "mine"


# --- stages: every independent error in one run, no follow-ons, warnings ---------------------


STAGED = """
bases:
  debian: {pull: "debian:12"}
images:
  broken-schema:
    base: debian
    fragmnts: [os]
  broken-ref:
    base: debain
    fragments: [os]
  broken-contract:
    base: debian
    fragments: [lab]
  unknown-fragment:
    base: debian
    fragments: [os, pyy]
  child:
    parent: unknown-fragment
    fragments: [lab]
"""


def test_errors_of_every_stage_show_in_one_run(tmp_path: Path) -> None:
    problems = plan_problems(make_stack(tmp_path, STAGED))
    assert any("unknown key 'fragmnts'" in p for p in problems)  # schema
    assert any("unknown base 'debain'" in p for p in problems)  # references
    assert any("unknown fragment 'pyy'" in p for p in problems)
    assert any("stacks.yaml:12:" in p and "requires 'python>=3.10'" in p for p in problems)  # contracts


def test_schema_errors_in_settings_and_hub_do_not_hide_the_other_stages(tmp_path: Path) -> None:
    spec = "settings: {local_prefix: Bad Prefix}\nhub: {port: 0}\n" + STAGED
    problems = plan_problems(make_stack(tmp_path, spec))
    assert any("stacks.yaml:1:" in p and "settings.local_prefix" in p for p in problems)  # schema, settings
    assert any("stacks.yaml:2:" in p and "hub.port" in p for p in problems)  # schema, hub
    assert any("unknown key 'fragmnts'" in p for p in problems)  # schema, images
    assert any("unknown base 'debain'" in p for p in problems)  # references
    assert any("requires 'python>=3.10'" in p for p in problems)  # contracts


def test_a_broken_fragment_search_path_in_settings_stops_at_the_schema(tmp_path: Path) -> None:
    problems = plan_problems(make_stack(tmp_path, "settings: {fragments: fragments}\n" + STAGED))
    assert any("settings.fragments" in p for p in problems) and not any("unknown fragment" in p for p in problems)


def test_follow_on_errors_are_dropped(tmp_path: Path) -> None:
    problems = plan_problems(make_stack(tmp_path, STAGED))
    assert len([p for p in problems if "nothing before it provides" in p]) == 1  # not also for 'child'
    assert not any("image 'child'" in p or "stacks.yaml:19" in p for p in problems)


def test_an_unknown_parent_dropped_by_the_schema_is_not_reported_again(tmp_path: Path) -> None:
    spec = SPEC + "  bad: {base: debian, fragmnts: [os]}\n  kid: {parent: bad, fragments: [tool]}\n"
    problems = plan_problems(make_stack(tmp_path, spec))
    assert len(problems) == 1 and "unknown key 'fragmnts'" in problems[0]


WARNED = """
bases:
  debian: {pull: "debian:12"}
axes:
  os: [bookworm, trixie]
  py: ["3.11", "3.12"]
images:
  root:
    base: debian
    axes: [os]
    exclude: [{os: trixie}]
    fragments: [os]
  idle:
    parent: root
    axes: [py]
    exclude: [{os: trixie}]
    include: [{os: trixie, py: "3.12"}]
    fragments: [tool]
  gone:
    base: debian
    axes: [os]
    exclude: [{os: [bookworm, trixie]}]
    fragments: [os]
"""


def test_rules_that_do_nothing_and_vanished_images_are_warnings(tmp_path: Path, capsys) -> None:
    path = make_stack(tmp_path, WARNED)
    code, _, err = run(capsys, "plan", "-f", str(path))
    assert code == 0, err
    assert "stacks.yaml:15:15: warning: image 'idle': this exclude rule matches no combination" in err
    assert "stacks.yaml:16:15: warning: image 'idle': this include rule names values no parent variant has" in err
    assert "stacks.yaml:19:5: warning: image 'gone' has no variants" in err
    assert "error" not in err


# --- inputs that were accepted: fragment search paths --------------------------------------


@pytest.mark.parametrize("entry, setup, expected", [
    ("nowhere", None, "stacks.yaml:1:35: error: settings.fragments: 'nowhere' does not exist"),
    ("notes.txt", "file", "stacks.yaml:1:35: error: settings.fragments: 'notes.txt' is a file, not a folder of fragments"),
    ("empty", "folder", "stacks.yaml:1:35: warning: settings.fragments: 'empty' holds no fragment"),
])
def test_fragment_search_paths_that_hold_nothing_are_located(tmp_path: Path, capsys, entry: str, setup: str | None,
                                                             expected: str) -> None:
    path = make_stack(tmp_path, f"settings: {{fragments: [fragments, {entry}]}}\n" + SPEC)
    if setup == "file":
        (tmp_path / entry).write_text("not a folder")
    elif setup == "folder":
        (tmp_path / entry / "sub").mkdir(parents=True)
    code, _, err = run(capsys, "plan", "-f", str(path))
    assert expected in err
    assert code == (0 if setup == "folder" else 2), err


def test_the_default_fragment_folder_may_be_missing(tmp_path: Path, capsys) -> None:
    path = tmp_path / "stacks.yaml"
    path.write_text("bases:\n  debian: {pull: 'debian:12', provides: [apt]}\nimages:\n  lab: {base: debian, fragments: [debian-os]}\n")
    code, _, err = run(capsys, "plan", "-f", str(path))
    assert code == 0 and "settings.fragments" not in err, err


# --- inputs that were accepted: fragment declarations ---------------------------------------


@pytest.mark.parametrize("param, line, message", [
    ({"type": "integer", "default": "three"}, 6, "param 'level': the default contradicts the declaration: expected an integer"),
    ({"type": "string", "default": "c", "choices": ["a", "b"]}, 6, "param 'level': the default contradicts the declaration: 'c' is not one of"),
    ({"type": "boolean", "default": "yes"}, 6, "expected a boolean"),
    ({"type": "integer", "default": 1, "choices": [1, "two"]}, 9, "param 'level': choice 2: expected an integer"),
])
def test_param_defaults_and_choices_must_fit_their_type(tmp_path: Path, param: dict, line: int, message: str) -> None:
    meta = {"params": {"level": {**param, "description": "how much"}}}
    path = make_stack(tmp_path, SPEC, {"tool": {"meta": meta, "body": "RUN echo {{ level }}\n"}})
    problems = plan_problems(path)
    assert any(f"tool/fragment.yaml:{line}:" in p and message in p for p in problems), problems


@pytest.mark.parametrize("check, key", [
    ({"name": "c", "run": "true", "expect": "([unclosed"}, "checks.0.expect"),
    ({"name": "c", "file": {"path": "/x", "contains": "a{1,2"}}, None),  # a valid pattern: no problem
    ({"name": "c", "file": {"path": "/x", "contains": "(?P<x"}}, "checks.0.file.contains"),
    ({"name": "c", "package": {"name": "p", "version": "^{{ version }}(["}}, "checks.0.package.version"),
    ({"name": "c", "env": {"PATH": "*bin"}}, "checks.0.env.PATH"),
    ({"name": "c", "label": {"a": "^{{ version }}$"}}, None),  # templates are not part of the pattern
])
def test_check_patterns_that_cannot_compile_are_located(tmp_path: Path, check: dict, key: str | None) -> None:
    meta = {"params": {"version": {"type": "string", "default": "1"}}, "checks": [check]}
    path = make_stack(tmp_path, SPEC, {"tool": {"meta": meta, "body": "RUN echo {{ version }}\n"}})
    if key is None:
        assert load_plan(path)["lab"] is not None
        return
    problems = plan_problems(path)
    assert any("tool/fragment.yaml:" in p and f"{key}: the regular expression" in p and "does not compile" in p
               for p in problems), problems


def test_a_kernel_expect_that_cannot_compile_is_located(tmp_path: Path) -> None:
    meta = {"kernel": {"name": "k", "language": "x", "snippet": "print(1)", "expect": "1)"}}
    path = make_stack(tmp_path, SPEC, {"tool": {"meta": meta}})
    assert any("tool/fragment.yaml:" in p and "kernel.expect: the regular expression '1)' does not compile" in p
               for p in plan_problems(path))


# --- inputs that were accepted: hub offers and matrix includes -------------------------------


def test_hub_entries_naming_no_image_are_located_warnings(tmp_path: Path, capsys) -> None:
    hub = "hub:\n  image: lab\n  offer: [lab, lba]\n  default: nope\n  gpu: {images: [gone]}\n"
    path = make_stack(tmp_path, SPEC + hub)
    code, _, err = run(capsys, "plan", "-f", str(path))
    assert code == 0, err
    assert "stacks.yaml:7:16: warning: hub.offer: no image or variant named 'lba'" in err
    assert "did you mean 'lab'?" in err
    assert "stacks.yaml:8:12: warning: hub.default: no image or variant named 'nope'" in err
    assert "stacks.yaml:9:18: warning: hub.gpu.images: no image or variant named 'gone'" in err
    assert "hub.image" not in err


INCLUDED = """
bases:
  debian: {pull: "debian:12"}
axes:
  os: [bookworm, trixie]
  py: ["3.11", "3.12"]
images:
  root:
    base: debian
    axes: [os]
    exclude: [{os: trixie}]
    include: [{os: trixie, py: "3.12"}]
    fragments: [os]
"""


def test_plan_warnings_show_beside_errors_of_other_images(tmp_path: Path) -> None:
    spec = SPEC + "  bad: {base: debain, fragments: [os]}\nhub: {image: lab, offer: [nope]}\n"
    problems = plan_problems(make_stack(tmp_path, spec))
    assert any("warning: hub.offer: no image or variant named 'nope'" in p for p in problems)
    assert any("unknown base 'debain'" in p for p in problems)


def test_an_include_naming_an_axis_the_image_lacks_is_located(tmp_path: Path) -> None:
    problems = plan_problems(make_stack(tmp_path, INCLUDED))
    assert any("stacks.yaml:11:28: error: image 'root': this include rule names axis 'py', which the image does not have"
               in p for p in problems), problems


# --- exit codes -------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["plan"], ["plan", "--json"], ["render"], ["graph"], ["matrix"], ["bake"], ["hub-config"], ["tags"],
    ["lint", "--no-hadolint"], ["build"], ["test"], ["push", "--dry-run"],
])
def test_bad_input_exits_2_from_every_command(tmp_path: Path, capsys, command: list[str]) -> None:
    path = make_stack(tmp_path, SPEC.replace("base: debian", "base: debain"))
    extra = ["--out", str(tmp_path / "out")] if command[0] in ("render", "hub-config", "build", "test") else []
    code, _, err = run(capsys, *command, "-f", str(path), *extra)
    assert code == 2, err
    assert "unknown base 'debain'" in err


def test_lint_findings_exit_1(tmp_path: Path, capsys) -> None:
    path = make_stack(tmp_path, SPEC, {"tool": {"body": "RUN curl -sL https://x.example/i.sh | sh\n"}})
    code, _, err = run(capsys, "lint", "--no-hadolint", "-f", str(path))
    assert code == 1 and "piped into an interpreter" in err


def test_new_kernel_refusal_exits_2(tmp_path: Path, capsys) -> None:
    path = make_stack(tmp_path, SPEC)
    code, _, err = run(capsys, "new", "kernel", "x", "-f", str(path), "--package", "no-such-recipe-package")
    assert code == 2, err


def test_usage_error_exits_2(capsys) -> None:
    code, _, _ = run(capsys, "plan", "--no-such-option")
    assert code == 2


def test_unknown_platform_is_a_warning(tmp_path: Path, capsys) -> None:
    path = make_stack(tmp_path, SPEC.replace('pull: "debian:12"', 'pull: "debian:12", platforms: [linux/amd64]'))
    _, _, err = run(capsys, "matrix", "-f", str(path), "--platform", "linux/amd46")
    assert "stacks.yaml:2:3: warning: --platform linux/amd46: no image is built for it" in err
    assert "did you mean 'linux/amd64'?" in err
