"""The check vocabulary of fragment.yaml, its params, what each kind compares, and the test reports."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from builder.check import browser as browser_check
from builder.check import declarative as host_checks
from builder.reports import report as reports
from builder.building.results import ImageResult
from builder.check.result import CheckResult
from builder.specification.fragments import load_library
from builder.specification.models import Check
from builder.reports.report import TESTS_MARKER, write_reports, write_test_reports
from builder.check.server_process import server_port
from builder.check.smoke import checks_for, render_check

from .helpers import plan_of, write_fragment


def test_a_check_has_exactly_one_kind(tmp_path: Path) -> None:
    root = tmp_path / "fragments"
    write_fragment(root, "two", """
        name: two
        description: Two kinds in one check.
        checks:
          - name: fine
            package: {name: tini}
          - name: both
            run: "id"
            file: {path: /etc/passwd}
          - name: neither
            expect: "x"
        """)
    _, problems = load_library([root])
    assert sorted(p.location.line for p in problems) == [6, 9]
    assert all("exactly one of run, file, account, package, env, label" in p.message for p in problems)
    assert "got run, file" in problems[0].message or "got run, file" in problems[1].message


def test_file_mode_must_be_octal(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pattern"):
        Check(name="m", file={"path": "/x", "mode": "rwxr-xr-x"})
    assert Check(name="m", file={"path": "/x", "mode": "0755"}).kind == "file"


def test_checks_are_filled_with_the_params_the_image_applies(stack) -> None:
    path = stack("""
        bases:
          debian: {pull: "debian:12"}
        images:
          base: {base: debian, fragments: [os, {use: user, params: {name: alice}}]}
          child: {parent: base, fragments: [tool]}
        """, {
        "user": {"meta": {
            "params": {"name": {"type": "string", "default": "jovyan"}, "uid": {"type": "integer", "default": 1000}},
            "checks": [
                {"name": "account of {{ name }}", "account": {"name": "{{ name }}", "uid": "{{ uid }}"}},
                {"name": "home", "run": "pwd", "expect": "^/home/{{ name }}$"},
                {"name": "broken", "env": {"X": "{{ nope }}"}},
            ],
        }},
        "tool": {"meta": {"kernel": {"name": "k", "language": "x", "snippet": "1", "expect": "1"},
                          "checks": [{"name": "tool", "run": "true"}]}},
    })
    found = checks_for(plan_of(path)["child"])
    assert [(fragment, c.name) for fragment, c in found.commands] == [
        ("user", "account of alice"), ("user", "home"), ("tool", "tool")]  # inherited first
    account = found.commands[0][1].account
    assert (account.name, int(account.uid)) == ("alice", 1000)
    assert found.commands[1][1].expect == "^/home/alice$"
    assert [k.name for _, k in found.kernels] == ["k"]
    (broken,) = found.problems
    assert broken.status == "failed" and "nope" in broken.got and broken.fragment == "user"


def test_regex_braces_and_shell_variables_survive_rendering() -> None:
    check = render_check(Check(name="x", run='echo "${HOME}"', expect=r"^\d{3}$"), {})
    assert (check.run, check.expect) == ('echo "${HOME}"', r"^\d{3}$")


class FakeFile(SimpleNamespace):
    pass


class FakeHost:
    """Stands in for a testinfra host: only the attributes the comparisons read."""

    def __init__(self, **files) -> None:
        self.files = files
        self.env = {"NB_USER": "jovyan"}

    def file(self, path):
        return self.files.get(path) or FakeFile(exists=False)

    def environment(self):
        return self.env

    def user(self, name):
        return SimpleNamespace(exists=name == "jovyan", uid=1000, gid=100, group="users", groups=["users"],
                               home="/home/jovyan", shell="/bin/bash")

    def pip(self, name):
        return SimpleNamespace(is_installed=name == "jupyterlab", version="4.6.6")

    def package(self, name):
        return SimpleNamespace(is_installed=False, version="")


def _start_sh(**changes) -> FakeFile:
    attrs = dict(exists=True, is_symlink=False, is_directory=False, is_file=True, mode=0o755, user="root",
                 group="root", linked_to="/usr/local/bin/start.sh", content_string="export NB_UID\n")
    return FakeFile(**{**attrs, **changes})


@pytest.mark.parametrize("want, file, ok, got", [
    ({"mode": "0755", "owner": "root"}, _start_sh(), True, "mode=0755, owner=root"),
    ({"mode": "755"}, _start_sh(mode=0o775), False, "mode=0775"),
    ({"owner": "root", "group": "users"}, _start_sh(), False, "owner=root, group=root"),
    ({"type": "directory"}, _start_sh(), False, "type=file"),
    ({"contains": "^export NB_UID$"}, _start_sh(), True, "contains=^export NB_UID$"),
    ({"contains": "GRANT_SUDO"}, _start_sh(), False, "contains=(no match)"),
    ({"exists": False}, _start_sh(), False, "exists"),
    ({}, None, False, "does not exist"),
])
def test_file_checks_say_what_is_there(want, file, ok, got) -> None:
    host = FakeHost(**({"/usr/local/bin/start.sh": file} if file else {}))
    passed, expected, actual = host_checks._file(host, Check(name="f", file={"path": "/usr/local/bin/start.sh", **want}).file)
    assert passed is ok and got in actual and expected.startswith("/usr/local/bin/start.sh")


def test_account_package_env_and_label_checks() -> None:
    host = FakeHost()
    ok, _, got = host_checks._account(host, Check(name="a", account={"name": "jovyan", "uid": "1000", "groups": ["users"]}).account)
    assert ok and "uid=1000" in got
    ok, expected, got = host_checks._account(host, Check(name="a", account={"name": "jovyan", "gid": 1000}).account)
    assert not ok and "gid=1000" in expected and "gid=100" in got
    assert host_checks._account(host, Check(name="a", account={"name": "bob"}).account)[0] is False
    ok, expected, got = host_checks._package(host, Check(name="p", package={"name": "jupyterlab", "manager": "pip", "version": "^3"}).package)
    assert not ok and got == "pip package jupyterlab 4.6.6" and "/^3/" in expected
    assert "not installed" in host_checks._package(host, Check(name="p", package={"name": "tini"}).package)[2]
    ok, _, got = host_checks._env(host, {"NB_USER": "^jovyan$", "NB_UID": "."})
    assert not ok and got == "NB_USER='jovyan', NB_UID unset"
    ok, _, got = host_checks._labels({"io.stacks.name": "lab"}, {"io.stacks.name": "lab-bookworm"})
    assert ok and "lab-bookworm" in got


def test_server_port_comes_from_the_image() -> None:
    assert server_port({"Env": ["A=1", "JUPYTER_PORT=8123"], "ExposedPorts": {"9999/tcp": {}}}) == 8123
    assert server_port({"Env": [], "ExposedPorts": {"9999/tcp": {}}}) == 9999
    assert server_port({}) == 8888


def test_browser_check_is_not_run_without_chromium(tmp_path: Path) -> None:
    server = SimpleNamespace(base_url="http://127.0.0.1:1/", token="t", kernelspecs={})
    results = browser_check.launcher_checks(server, "lab", "jupyterlab", tmp_path, "no-such-chromium-binary")
    assert [r.status for r in results] == ["not run", "not run"]
    assert all("chromium not installed" in r.got for r in results)


def _results() -> list[CheckResult]:
    return [
        CheckResult("lab", "kernel python3 runs its snippet", "ipykernel", "kernel", "passed", 1.5, "42", "42"),
        CheckResult("lab", "launcher", "jupyterlab", "browser", "passed", 8.0, "x", "y", artifact="screenshots/lab.png"),
        CheckResult("lab", "gpu", "cuda", "run", "not run", 0, "", "needs gpu"),
        CheckResult("py", "pip pinned", "python-venv", "package", "failed", 0.3, "pip package pip 26.3", "pip package pip 24.0"),
    ]


def test_test_reports_in_json_markdown_junit_and_the_build_report(tmp_path: Path) -> None:
    build = [ImageResult(n, "image", None, h, f"stacks/{n}:x", "built") for n, h in
             (("lab", "a" * 64), ("py", "b" * 64), ("other", "c" * 64))]
    write_reports(build, tmp_path, {"engine": "test"})
    assert "No image of this report has been tested yet" in (tmp_path / "report.md").read_text()
    write_test_reports(_results(), tmp_path, {"lab": "a" * 64, "py": "b" * 64})
    document = json.loads((tmp_path / "test-report.json").read_text())
    assert document["images"]["lab"] == {"hash": "a" * 64, "passed": True, "checks": {"passed": 2, "not run": 1},
                                         "seconds": 9.5, "screenshot": "screenshots/lab.png"}
    assert document["images"]["py"]["passed"] is False
    assert reports.tested_images(tmp_path) == {"lab": "a" * 64}
    markdown = (tmp_path / "test-report.md").read_text()
    assert "Expected: pip package pip 26.3" in markdown and "pip package pip 24.0" in markdown
    assert "![JupyterLab of lab](screenshots/lab.png)" in markdown
    junit = (tmp_path / "junit.xml").read_text()
    assert junit.count("<failure") == 1 and junit.count("<skipped") == 1 and "[[ATTACHMENT|screenshots/lab.png]]" in junit
    # the build report of the same folder now carries the results, once, and only for the tested hashes
    report = json.loads((tmp_path / "report.json").read_text())
    tests = {image["name"]: image["tests"] for image in report["images"]}
    assert tests["lab"]["passed"] is True and tests["py"]["passed"] is False and tests["other"] is None
    write_test_reports(_results()[:1], tmp_path, {"lab": "a" * 64})
    text = (tmp_path / "report.md").read_text()
    assert text.count(TESTS_MARKER) == 1 and "| lab | passed | 1 | 0 | 0 | - |" in text
    assert "| py | **FAILED** |" in text  # the earlier result of an image not tested this time stays
    # a rebuilt image (new hash) no longer shows the old result
    build[0] = ImageResult("lab", "image", None, "d" * 64, "stacks/lab:y", "built")
    write_reports(build, tmp_path, {"engine": "test"})
    assert {i["name"]: i["tests"] for i in json.loads((tmp_path / "report.json").read_text())["images"]}["lab"] is None


def test_notebook_cards_are_found_in_a_localised_launcher() -> None:
    from builder.check.browser import notebook_cards

    def card(title: str, category: str) -> str:
        return f'<div class="jp-LauncherCard" title="{title}" tabindex="0" data-category="{category}">'

    english = card("Python 3 (ipykernel)", "Notebook") + card("R", "Notebook") + card("Python 3 (ipykernel)", "Console") + card("Terminal", "Other")
    chinese = card("Python 3 (ipykernel)", "笔记本") + card("Python 3 (ipykernel)", "控制台") + card("终端", "其他")
    assert notebook_cards(english) == ["Python 3 (ipykernel)", "R"]
    assert notebook_cards(chinese) == ["Python 3 (ipykernel)"]
    assert notebook_cards(card("Terminal", "Other").replace("jp-LauncherCard", "jp-Other")) == []
