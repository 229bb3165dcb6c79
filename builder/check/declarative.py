"""Declarative checks of fragment.yaml: `run:` commands through the container interface, the rest
through pytest-testinfra's modules, whose commands run through the same container interface.

A check states what must be true (a file's mode, an account's uid, a
package's version, an environment variable, a label, or a command's output)
and testinfra finds out what is, inside a running container of the image. A
failed check reports both sides in the same words, so the difference is
visible without re-running anything.

testinfra's own docker backend shells out to whichever `docker` is on PATH,
which finds its engine by itself (DOCKER_HOST, DOCKER_CONTEXT, the current
context): possibly not the engine the image was built on. `ContainerBackend`
runs testinfra's commands with `Container.exec` instead, on the connection
the composition root opened to the one engine of the run.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import testinfra.backend.base
import testinfra.host

from builder.adapters.containers import Container
from builder.specification.models import AccountExpect, Check, FileExpect, PackageExpect

Verdict = tuple[bool, str, str]  # (passed, expected, got)


class ContainerBackend(testinfra.backend.base.BaseBackend):
    """A testinfra backend that runs each command with `Container.exec` (as `user` when given)."""

    NAME = "docker"  # testinfra's modules treat it as the docker backend it replaces

    def __init__(self, container: Container, user: str | None = None):
        super().__init__(container.name)
        self.container, self.user = container, user

    def run(self, command: str, *args: str, **kwargs: Any) -> testinfra.backend.base.CommandResult:
        cmd = self.get_command(command, *args)
        done = self.container.exec(["/bin/sh", "-c", cmd], user=self.user, split=True)
        return self.result(done.exit_code if done.exit_code is not None else -1, self.encode(cmd), done.stdout, done.stderr)


def host_for(container: Container, user: str | None = None) -> Any:
    """A testinfra host whose commands run in `container` (as `user` when given)."""
    backend = ContainerBackend(container, user)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host


def evaluate(check: Check, container: Container, labels: dict[str, str]) -> Verdict:
    """Run one declarative check against the running container; labels come from the image."""
    if check.label is not None:
        return _labels(check.label, labels)
    if check.kind == "run":
        return _run(container, check)
    host = host_for(container, check.user)
    kinds: dict[str, Callable[[Any, Any], Verdict]] = {"file": _file, "account": _account, "package": _package, "env": _env}
    return kinds[check.kind](host, getattr(check, check.kind))


def _run(container: Container, check: Check) -> Verdict:
    """A `run:` check: the command's exit status and its output (stdout, then stderr) against the expectation."""
    expected = f"exit {check.status}" + (f" and output matching /{check.expect}/" if check.expect else "")
    out = container.exec(["sh", "-c", check.run or ""], timeout=check.timeout, user=check.user, split=True)
    text = out.text + (("\n" + out.error_text) if out.error_text else "")
    if out.timed_out:
        return False, expected, f"timed out after {check.timeout} s: {text.strip()[-2000:]}"
    ok = out.exit_code == check.status and (not check.expect or re.search(check.expect, text, re.MULTILINE) is not None)
    return ok, expected, f"exit {out.exit_code}: {text.strip()[-2000:]}"


def _file(host: Any, want: FileExpect) -> Verdict:
    f = host.file(want.path)
    if not want.exists:
        return not f.exists, f"{want.path} does not exist", f"{want.path} {'exists' if f.exists else 'does not exist'}"
    if not f.exists:
        return False, _describe(want.path, _wanted_file(want)), f"{want.path} does not exist"
    wanted = _wanted_file(want)
    actual: dict[str, str] = {}
    if want.type:
        actual["type"] = "symlink" if f.is_symlink else "directory" if f.is_directory else "file" if f.is_file else "other"
    if want.mode:
        actual["mode"] = f"{f.mode:04o}"
    if want.owner:
        actual["owner"] = f.user
    if want.group:
        actual["group"] = f.group
    if want.linked_to:
        actual["linked_to"] = f.linked_to
    ok = all(actual[k] == v for k, v in wanted.items() if k != "contains")
    if want.contains:
        found = re.search(want.contains, f.content_string, re.MULTILINE) is not None
        actual["contains"] = want.contains if found else "(no match)"
        ok = ok and found
    return ok, _describe(want.path, wanted), _describe(want.path, actual)


def _wanted_file(want: FileExpect) -> dict[str, str]:
    wanted = {"type": want.type, "mode": f"{int(want.mode, 8):04o}" if want.mode else None, "owner": want.owner,
              "group": want.group, "linked_to": want.linked_to, "contains": want.contains}
    return {k: v for k, v in wanted.items() if v is not None}


def _account(host: Any, want: AccountExpect) -> Verdict:
    user = host.user(want.name)
    ids = {k: int(v) for k, v in (("uid", want.uid), ("gid", want.gid)) if v is not None}
    wanted: dict[str, Any] = {**ids, **{k: v for k, v in (("group", want.group), ("home", want.home),
                                                          ("shell", want.shell)) if v is not None}}
    if want.groups:
        wanted["groups"] = sorted(want.groups)
    if not user.exists:
        return False, _describe(want.name, wanted), f"no account named {want.name}"
    actual: dict[str, Any] = {k: getattr(user, k) for k in wanted if k != "groups"}
    ok = all(actual[k] == v for k, v in wanted.items() if k != "groups")
    if want.groups:
        member_of = sorted(user.groups)
        actual["groups"] = member_of
        ok = ok and set(want.groups) <= set(member_of)
    return ok, _describe(want.name, wanted), _describe(want.name, actual)


def _package(host: Any, want: PackageExpect) -> Verdict:
    package = host.pip(want.name) if want.manager == "pip" else host.package(want.name)
    expected = f"{want.manager} package {want.name} installed" + (f", version matching /{want.version}/" if want.version else "")
    if not package.is_installed:
        return False, expected, f"{want.manager} package {want.name} is not installed"
    version = package.version
    ok = not want.version or re.search(want.version, version) is not None
    return ok, expected, f"{want.manager} package {want.name} {version}"


def _env(host: Any, want: dict[str, str]) -> Verdict:
    environment = host.environment()
    expected = ", ".join(f"{k} matching /{v}/" for k, v in want.items())
    got = ", ".join(f"{k}={environment[k]!r}" if k in environment else f"{k} unset" for k in want)
    ok = all(k in environment and re.search(v, environment[k]) is not None for k, v in want.items())
    return ok, expected, got


def _labels(want: dict[str, str], labels: dict[str, str]) -> Verdict:
    expected = ", ".join(f"label {k} matching /{v}/" for k, v in want.items())
    got = ", ".join(f"{k}={labels[k][:200]!r}" if k in labels else f"{k} missing" for k in want)
    ok = all(k in labels and re.search(v, labels[k]) is not None for k, v in want.items())
    return ok, expected, got


def _describe(subject: str, fields: dict[str, Any]) -> str:
    return f"{subject}: " + (", ".join(f"{k}={v}" for k, v in fields.items()) or "exists")
