"""`stacks test` catches broken images: every kind of check fails, and says what it expected and what came back.

Two small images on top of the reference lab image (their parents are the
reference build's, so only one thin layer each is built):
- smoketest-broken: the python3 kernelspec points at a removed executable, the
  server's command line empties the token, the health check always fails,
  sudo has lost its setuid bit, and a test-only fragment declares one false
  promise of every declarative kind (file, package, account, env, label, run);
- smoketest-dead: the default command exits instead of starting a server.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from builder.check.browser import chromium

from .conftest import stacks

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

BREAKAGE = """\
USER root
# The kernelspec stays listed, but its executable is gone.
RUN sed -i 's#"/opt/venv/bin/python"#"/opt/venv/bin/python-removed"#' /opt/venv/share/jupyter/kernels/python3/kernel.json \\
    && chmod u-s /usr/bin/sudo \\
    && echo hello > /etc/smoketest-file && chmod 0644 /etc/smoketest-file
LABEL org.example.flavour=vanilla
ENV SMOKETEST_COLOUR=blue
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["false"]
# A server that ignores the token: the command line empties it after JUPYTER_TOKEN was read.
CMD ["start-notebook.py", "--IdentityProvider.token="]
USER ${NB_UID}
"""

PROMISES = """\
name: smoketest-breakage
description: Test only - breaks the lab image in every way stacks test must notice.
requires: [jupyter-server]
checks:
  - {name: the probe file is executable, file: {path: /etc/smoketest-file, mode: "0755"}}
  - {name: jupyterlab is version 3, package: {name: jupyterlab, manager: pip, version: "^3\\\\."}}
  - {name: the notebook user has uid 1001, account: {name: jovyan, uid: 1001}}
  - {name: the colour is red, env: {SMOKETEST_COLOUR: "^red$"}}
  - {name: the flavour is chocolate, label: {org.example.flavour: "^chocolate$"}}
  - {name: the probe says goodbye, run: "cat /etc/smoketest-file", expect: "goodbye"}
  - {name: a GPU is visible, run: "nvidia-smi -L", needs: [gpu]}
  - {name: the probe file says hello, file: {path: /etc/smoketest-file, mode: "0644", contains: "^hello$"}}
"""

DEAD = """\
CMD ["start.sh", "bash", "-c", "echo 'this server refuses to start' >&2; exit 3"]
"""


@pytest.fixture(scope="module")
def broken(reference: dict, tmp_path_factory, client) -> Path:
    """A stacks.yaml next to the repository's whose lab chain hashes like the reference build's."""
    folder = tmp_path_factory.mktemp("smoke-failures")
    spec = yaml.safe_load((ROOT / "stacks.yaml").read_text())
    spec["settings"]["fragments"] = ["fragments"]  # same relative paths, so the same hashes as the reference
    spec["bases"] = {"debian": spec["bases"]["debian"]}
    lab = spec["images"]["lab"]
    spec["images"] = {name: spec["images"][name] for name in ("foundation", "python", "lab")}
    spec["images"]["smoketest-broken"] = {"parent": "lab", "fragments": ["smoketest-breakage"]}
    spec["images"]["smoketest-dead"] = {"parent": "lab", "fragments": ["smoketest-dead"]}
    assert lab["parent"] == "python"
    (folder / "stacks.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    fragments = folder / "fragments"
    fragments.mkdir()
    for fragment in (ROOT / "fragments").iterdir():
        (fragments / fragment.name).symlink_to(fragment)
    for name, meta, body in (("smoketest-breakage", PROMISES, BREAKAGE),
                             ("smoketest-dead", "name: smoketest-dead\ndescription: Test only - no server.\n", DEAD)):
        (fragments / name).mkdir()
        (fragments / name / "fragment.yaml").write_text(meta)
        (fragments / name / "Dockerfile.j2").write_text(body)
    built = stacks("build", "smoketest-broken-bookworm", "smoketest-dead-bookworm", cwd=folder, timeout=1200)
    assert built.returncode == 0, built.stderr
    statuses = {i["name"]: i["status"] for i in json.loads((folder / "build" / "report.json").read_text())["images"]}
    assert statuses["lab-bookworm"] == "cached", "the lab chain must be the reference build's"
    yield folder
    for image in json.loads((folder / "build" / "report.json").read_text())["images"]:
        if image["name"].startswith("smoketest-"):
            for ref in (image["ref"], image["ref"].rsplit(":", 1)[0] + ":latest"):
                try:
                    client.images.remove(ref, force=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass


@pytest.fixture(scope="module")
def outcome(broken: Path) -> dict:
    result = stacks("test", "smoketest-broken-bookworm", "smoketest-dead-bookworm", cwd=broken, timeout=900)
    checks = json.loads((broken / "build" / "test-report.json").read_text())["checks"]
    return {"result": result, "folder": broken,
            "checks": {(c["image"].split("-bookworm")[0], c["name"]): c for c in checks}}


def _check(outcome: dict, image: str, name: str) -> dict:
    found = outcome["checks"].get((image, name))
    assert found is not None, f"no check '{name}' for {image}; have: {sorted(n for i, n in outcome['checks'] if i == image)}"
    return found


def test_stacks_test_exits_non_zero_and_names_every_failure(outcome: dict) -> None:
    result = outcome["result"]
    assert result.returncode == 1, result.stderr
    assert "FAILED smoketest-broken-bookworm" in result.stderr and "FAILED smoketest-dead-bookworm" in result.stderr
    assert "the probe says goodbye (smoketest-breakage): expected exit 0 and output matching /goodbye/; got exit 0: hello" in result.stderr
    assert "JUnit XML: " in result.stderr and "reports: " in result.stderr
    report = json.loads((outcome["folder"] / "build" / "test-report.json").read_text())
    assert {name: info["passed"] for name, info in report["images"].items() if name.startswith("smoketest")} == {
        "smoketest-broken-bookworm": False, "smoketest-dead-bookworm": False}
    junit = (outcome["folder"] / "build" / "junit.xml").read_text()
    failed = [c for c in outcome["checks"].values() if c["status"] == "failed"]
    assert junit.count("<failure") == len(failed) >= 11
    markdown = (outcome["folder"] / "build" / "test-report.md").read_text()
    assert "## smoketest-broken-bookworm: the colour is red failed" in markdown and "SMOKETEST_COLOUR='blue'" in markdown
    build_report = (outcome["folder"] / "build" / "report.md").read_text()
    assert "| smoketest-broken-bookworm | **FAILED** |" in build_report


@pytest.mark.parametrize("name, expected, got", [
    ("the probe file is executable", "mode=0755", "mode=0644"),
    ("jupyterlab is version 3", "/^3\\./", "pip package jupyterlab 4."),
    ("the notebook user has uid 1001", "uid=1001", "uid=1000"),
    ("the colour is red", "SMOKETEST_COLOUR matching /^red$/", "SMOKETEST_COLOUR='blue'"),
    ("the flavour is chocolate", "org.example.flavour matching /^chocolate$/", "org.example.flavour='vanilla'"),
    ("the probe says goodbye", "/goodbye/", "hello"),
])
def test_each_declarative_kind_fails_with_expected_and_got(outcome: dict, name: str, expected: str, got: str) -> None:
    check = _check(outcome, "smoketest-broken", name)
    assert check["status"] == "failed"
    assert expected in check["expected"] and got in check["got"], check


def test_a_true_promise_of_the_same_fragment_passes_and_hardware_checks_are_not_run(outcome: dict) -> None:
    assert _check(outcome, "smoketest-broken", "the probe file says hello")["status"] == "passed"
    gpu = _check(outcome, "smoketest-broken", "a GPU is visible")
    assert gpu["status"] == "not run" and "gpu" in gpu["got"]


def test_a_listed_kernel_that_cannot_start_fails_the_image(outcome: dict) -> None:
    kernel = _check(outcome, "smoketest-broken", "kernel python3 runs its snippet")
    assert kernel["status"] == "failed" and "python-removed" in kernel["got"], kernel
    assert _check(outcome, "smoketest-broken", "the REST API lists every declared kernel")["status"] == "passed"


def test_a_server_that_ignores_the_token_fails(outcome: dict) -> None:
    refused = _check(outcome, "smoketest-broken", "requests without the token are refused")
    assert refused["status"] == "failed" and "no token: 200" in refused["got"], refused
    if chromium():
        browser = _check(outcome, "smoketest-broken", "without the token the browser gets the login page, not the launcher")
        assert browser["status"] == "failed" and "launcher shown" in browser["got"], browser


def test_a_failing_health_check_and_a_broken_sudo_fail(outcome: dict) -> None:
    health = _check(outcome, "smoketest-broken", "the image's health check reports healthy")
    assert health["status"] == "failed" and health["got"].startswith("unhealthy"), health
    sudo = _check(outcome, "smoketest-broken", "GRANT_SUDO=yes gives the user passwordless sudo")
    assert sudo["status"] == "failed" and "setuid" in sudo["got"], sudo


def test_a_server_that_never_starts_fails_with_its_exit_and_logs(outcome: dict) -> None:
    started = _check(outcome, "smoketest-dead", "the default command starts a server answering on port 8888")
    assert started["status"] == "failed"
    assert "exited (exit 3)" in started["got"] and "this server refuses to start" in started["got"], started
    # the checks that need a running server are not reported as passed; the container checks still ran
    dead = [c for (image, _), c in outcome["checks"].items() if image == "smoketest-dead"]
    assert [c["name"] for c in dead if c["kind"] in ("server", "browser") and c is not started] == []
    assert _check(outcome, "smoketest-dead", "kernel python3 runs its snippet")["status"] == "passed"


def test_only_passing_images_are_publishable(outcome: dict) -> None:
    from builder.reports.report import tested_images

    assert not any(name.startswith("smoketest-") for name in tested_images(outcome["folder"] / "build"))


def test_a_check_that_could_not_run_fails_the_image_unless_allowed_by_name(broken: Path) -> None:
    """Without Chromium the browser checks cannot run: that must not pass as a tested image."""
    env = {"STACKS_CHROMIUM": "/nonexistent/chromium"}
    # --force: the image passed earlier with Chromium; a record proves the image, not this host
    strict = stacks("test", "lab-bookworm", "--force", "--out", "build-nochromium", cwd=broken, env=env, timeout=900)
    assert strict.returncode == 1, strict.stderr
    checks = json.loads((broken / "build-nochromium" / "test-report.json").read_text())["checks"]
    browser = [c for c in checks if c["kind"] == "browser"]
    assert browser and all(c["status"] == "failed" and "--allow-not-run" in c["got"] for c in browser), browser
    from builder.reports.report import tested_images

    assert "lab-bookworm" not in tested_images(broken / "build-nochromium")
    # --force again: a waiver is part of the record's key, and an earlier run may have recorded this one
    allowed = stacks("test", "lab-bookworm", "--force", "--out", "build-nochromium", "--allow-not-run", "browser",
                     cwd=broken, env=env, timeout=900)
    assert allowed.returncode == 0, allowed.stderr
    checks = json.loads((broken / "build-nochromium" / "test-report.json").read_text())["checks"]
    assert {c["status"] for c in checks if c["kind"] == "browser"} == {"not run"}
    assert "lab-bookworm" in tested_images(broken / "build-nochromium")
