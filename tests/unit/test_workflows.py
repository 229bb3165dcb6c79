"""The CI workflows and the pre-commit hook call what exists, wired to what `stacks matrix --json` prints.

GitHub Actions itself cannot run here, so these checks stand in for it: the
files parse; every `make` target they name is in the Makefile and every
`stacks` command line parses with the real CLI; the matrix jobs read only
fields the matrix has; artifacts handed from roots to branch jobs match;
pull requests never publish, and the one publish job waits for every platform;
actionlint (with shellcheck on every run: script) and zizmor find nothing; and
the security rules of docs/ci.md hold: actions pinned by commit digest with
their version, no expression inside a script, checkouts without credentials,
permissions per job, secrets only in the steps that use them. The paths the
workflow takes at run time are tests/integration/test_workflow_paths.py's.
"""
from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import click
import pytest
import yaml
from click.testing import CliRunner

from builder.app.cli import cli

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
STACKS_CALL = re.compile(r"(?<![\w/.$-])(?:\.venv/bin/)?stacks\s+([a-z][\w-]*)((?:[^|;&)>\"\n]|\"[^\"\n]*\")*)")
PLACEHOLDER = "lab-bookworm"  # stands for ${{ ... }} values when a command line is parsed


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in document:  # YAML 1.1 reads the key `on` as a boolean
        document["on"] = document.pop(True)
    return document


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {m[1] for m in re.finditer(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.MULTILINE)}


def steps(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, job in document["jobs"].items():
        for step in job.get("steps", []):
            yield name, job, step


def shell_lines(script: str) -> Iterator[str]:
    for line in script.splitlines():
        if line.strip() and not line.strip().startswith("#"):
            yield line


def expand(text: str, env: dict[str, str]) -> str:
    """Expressions become a placeholder; $VAR from the workflow's env becomes its value."""
    text = EXPRESSION.sub(PLACEHOLDER, text)
    return re.sub(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", lambda m: env.get(m[1], m[0]), text)


def make_targets_of(line: str) -> list[str]:
    """The targets of every `make` on a shell line (variables and flags skipped)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    targets, in_make = [], False
    for token in lexer:
        if token and token[0] in "|;&>()":
            in_make = False
        elif token == "make":
            in_make = True
        elif in_make and "=" not in token and not token.startswith("-"):
            targets.append(token)
    return targets


def check_stacks_call(command: str, rest: str) -> None:
    """Parse the arguments with the real click command (raises on an unknown command or option)."""
    words = shlex.split(rest)
    group: click.Group = cli
    name = command
    target = group.get_command(click.Context(group), name)
    assert target is not None, f"`stacks {name}` is not a command"
    while isinstance(target, click.Group):
        assert words, f"`stacks {name}` needs a subcommand"
        name, words = words[0], words[1:]
        target = target.get_command(click.Context(target), name)
        assert target is not None, f"`stacks ... {name}` is not a command"
    target.make_context(name, [w for w in words if w != "[TARGET...]"])


def all_commands() -> Iterator[tuple[str, str, dict[str, str]]]:
    """(where, shell line, env) for every run: line of every workflow and the pre-commit entries."""
    for path in WORKFLOWS:
        document = load(path)
        for job_name, job, step in steps(document):
            env = {**document.get("env", {}), **job.get("env", {}), **step.get("env", {})}
            for line in shell_lines(step.get("run", "")):
                yield f"{path.name}: job {job_name}", line, {k: str(v) for k, v in env.items()}
    precommit = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    for repo in precommit["repos"]:
        for hook in repo["hooks"]:
            yield f".pre-commit-config.yaml: hook {hook['id']}", hook["entry"], {}


@pytest.fixture(scope="module")
def matrix_json() -> dict[str, Any]:
    """What the plan job's `stacks matrix --json $SELECT` prints for this repository."""
    select = load(ROOT / ".github/workflows/ci.yml")["env"]["SELECT"].split()
    result = CliRunner().invoke(cli, ["matrix", "-f", str(ROOT / "stacks.yaml"), "--json", *select])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_workflows_parse() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "bake.yml"}
    for path in WORKFLOWS:
        document = load(path)
        assert document["name"] and document["on"] and document["jobs"]
        for job in document["jobs"].values():
            assert "runs-on" in job and job.get("steps")


def test_every_make_target_exists() -> None:
    targets = makefile_targets()
    used = [(where, t) for where, line, env in all_commands() for t in make_targets_of(expand(line, env))]
    assert used, "the workflows build through the Makefile's entry points"
    missing = [f"{where}: make {t}" for where, t in used if t not in targets]
    assert missing == [], "Makefile has no such target: " + "; ".join(missing)
    assert {t for _, t in used} >= {"lint", "unit", "stacks", "push"}


def test_every_stacks_command_line_parses() -> None:
    calls = 0
    for where, line, env in all_commands():
        for match in STACKS_CALL.finditer(expand(line, env)):
            try:
                check_stacks_call(match[1], match[2])
            except (click.UsageError, AssertionError) as exc:
                pytest.fail(f"{where}: `{match[0].strip()}`: {exc}")
            calls += 1
    assert calls >= 5


USES = re.compile(r"^\s*-?\s*uses:\s*(\S+)(.*)$", re.MULTILINE)
PINNED = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")
VERSION_COMMENT = re.compile(r"\s+#\s*v\d+(\.\d+){0,2}\s*")


def test_actions_are_pinned_by_commit_digest_with_their_version() -> None:
    """A tag can be moved to other code; a commit cannot. The comment says which release the digest is."""
    pinned = 0
    for path in WORKFLOWS:
        for match in USES.finditer(path.read_text(encoding="utf-8")):
            where = f"{path.name}: {match[0].strip()}"
            assert PINNED.fullmatch(match[1]), f"{where}: not pinned by a 40-hex commit digest"
            assert VERSION_COMMENT.fullmatch(match[2]), f"{where}: no `# vX.Y.Z` comment"
            pinned += 1
    assert pinned >= 10


def test_one_action_one_digest() -> None:
    """Every use of an action names the same commit and version (an update cannot miss one)."""
    seen: dict[str, str] = {}
    for path in WORKFLOWS:
        for match in USES.finditer(path.read_text(encoding="utf-8")):
            action, _, digest = match[1].partition("@")
            pin = f"{digest} {match[2].strip()}"
            assert seen.setdefault(action, pin) == pin, f"{path.name}: {action} pinned as {pin}, elsewhere {seen[action]}"


def test_no_expression_in_a_script() -> None:
    """Values from the matrix (stacks.yaml, which a pull request can change), inputs and events reach
    a script only through env:, never spliced into its text."""
    for path in WORKFLOWS:
        for job_name, _, step in steps(load(path)):
            assert not EXPRESSION.search(step.get("run", "")), f"{path.name}: job {job_name}: ${{{{ }}}} in run: {step['run']}"


def test_checkouts_keep_no_credentials_and_jobs_ask_for_least_privilege() -> None:
    for path in WORKFLOWS:
        document = load(path)
        assert document["permissions"] in ({}, {"contents": "read"}), f"{path.name}: workflow-wide permissions"
        for job_name, job in document["jobs"].items():
            assert "permissions" in job or document["permissions"] == {"contents": "read"}, f"{path.name}: job {job_name}"
            granted = job.get("permissions", document["permissions"])
            assert set(granted.values()) <= {"read", "write"} and granted.get("contents") == "read", job_name
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, f"{path.name}: job {job_name}"
    ci = load(ROOT / ".github/workflows/ci.yml")
    assert ci["jobs"]["plan"]["permissions"] == {"contents": "read"}  # lint, tests, matrix: no registry


def test_secrets_only_where_they_are_used() -> None:
    for path in WORKFLOWS:
        document = load(path)
        assert "secrets." not in yaml.safe_dump(document.get("env", {})), path.name
        for job_name, job, step in steps(document):
            assert "secrets." not in yaml.safe_dump(job.get("env", {})), f"{path.name}: job {job_name}"
            if "secrets." in yaml.safe_dump(step):
                named = set(re.findall(r"secrets\.(\w+)", yaml.safe_dump(step)))
                assert named and ("uses" in step or named <= set(step.get("env", {}))), f"{path.name}: {step}"


def test_workflows_pass_zizmor() -> None:
    """zizmor's security audits (template injection, credentials kept by checkouts, unpinned actions,
    excessive permissions, ...), offline: the same run as `make check`."""
    result = subprocess.run([_tool("zizmor"), "--offline", "--no-progress", ".github/workflows"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_matrix_wiring(matrix_json: dict[str, Any]) -> None:
    ci = load(ROOT / ".github/workflows/ci.yml")
    jobs = ci["jobs"]
    producer = jobs["plan"]
    step = next(s for s in producer["steps"] if "stacks matrix --json" in s.get("run", ""))
    assert f'"${{{{ steps.{step["id"]}.outputs.matrix }}}}"'.strip('"') == producer["outputs"]["matrix"]
    assert "matrix=$(" in step["run"] and "$GITHUB_OUTPUT" in step["run"]
    consumers = 0
    for name, job in jobs.items():
        strategy = job.get("strategy", {}).get("matrix")
        if not isinstance(strategy, str):
            continue
        match = re.fullmatch(r"\$\{\{ fromJSON\(needs\.(\w+)\.outputs\.(\w+)\)\.(\w+) \}\}", strategy)
        assert match, f"job {name}: strategy.matrix must be fromJSON(needs.<job>.outputs.<name>).<stage>"
        needs = job["needs"] if isinstance(job["needs"], list) else [job["needs"]]
        assert match[1] in needs and match[2] in jobs[match[1]]["outputs"]
        stage = match[3]
        assert "include" in matrix_json[stage], f"job {name}: `stacks matrix --json` has no {stage}.include"
        assert f"fromJSON(needs.{match[1]}.outputs.{match[2]}).{stage}.include[0] != null" in job["if"]
        fields = set(re.findall(r"\bmatrix\.(\w+)", yaml.safe_dump(job)))
        entries = matrix_json[stage]["include"]
        assert entries, f"the project's matrix has {stage} jobs"
        assert fields <= set(entries[0]), f"job {name} reads matrix fields the matrix lacks: {fields - set(entries[0])}"
        assert job["runs-on"] == "${{ matrix.runner }}"
        consumers += 1
    assert consumers == 2


def _braces(pattern: str) -> list[str]:
    """minimatch's {a,b} alternatives (what actions/download-artifact matches `pattern` with)."""
    match = re.search(r"\{([^{}]*,[^{}]*)\}", pattern)
    if not match:
        return [pattern]
    return [alt for part in match[1].split(",") for alt in _braces(pattern[:match.start()] + part + pattern[match.end():])]


def test_branch_jobs_download_exactly_their_parents(matrix_json: dict[str, Any]) -> None:
    ci = load(ROOT / ".github/workflows/ci.yml")
    upload = next(s for s in ci["jobs"]["roots"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact") and "matrix.artifact" in str(s))
    download = next(s for s in ci["jobs"]["branches"]["steps"] if s.get("uses", "").startswith("actions/download-artifact"))
    assert upload["with"]["name"] == "${{ matrix.artifact }}"
    assert download["with"]["pattern"] == "${{ matrix.artifacts }}"
    assert upload["if"] == "matrix.export && env.STACKS_CACHE_READONLY == '1'"  # a writable cache hands them on
    assert upload["with"]["if-no-files-found"] == "error"  # the list of what was handed on is always there
    assert download["if"] == "env.STACKS_CACHE_READONLY == '1'"
    uploaded = {e["id"]: e["artifact"] for e in matrix_json["roots"]["include"]}
    exported = {e["id"] for e in matrix_json["roots"]["include"] if e["export"]}
    assert exported == {need for e in matrix_json["branches"]["include"] for need in e["needs"].split()}
    for entry in matrix_json["branches"]["include"]:
        patterns = _braces(entry["artifacts"])
        got = {name for name in uploaded.values() if any(fnmatch.fnmatchcase(name, p) for p in patterns)}
        assert got == {uploaded[need] for need in entry["needs"].split()}, entry["id"]
    save = next(s for s in ci["jobs"]["roots"]["steps"] if "docker save" in s.get("run", ""))
    assert save["env"] == {"REFS": "${{ matrix.refs }}", "ARTIFACT": "${{ matrix.artifact }}"}
    assert "docker image inspect" in save["run"]  # cache hits were never pulled: only what is here is saved


def test_pull_requests_never_publish_and_publishing_waits_for_every_platform() -> None:
    ci = load(ROOT / ".github/workflows/ci.yml")
    assert "pull_request" in ci["on"] and ci["on"]["push"]["branches"] == ["main"]
    publishing = [(job, step) for job, _, step in steps(ci) if re.search(r"\b(make push|stacks push)\b", step.get("run", ""))]
    assert [job for job, _ in publishing] == ["publish"]
    publish = ci["jobs"]["publish"]
    guard = " ".join(publish["if"].split())
    assert "github.event_name == 'push'" in guard and "github.ref == 'refs/heads/main'" in guard
    assert "!contains(needs.*.result, 'failure')" in guard and "!cancelled()" in guard
    assert set(publish["needs"]) == {"plan", "roots", "branches"} and "strategy" not in publish
    step = publishing[0][1]
    assert "matrix." not in yaml.safe_dump(publish) and 'STACKS_SELECT="$SELECT"' in step["run"]
    assert "STACKS_CACHE" in step["run"]  # from the cache: nothing is rebuilt
    for job, _, step in steps(ci):
        if "secrets." in yaml.safe_dump(step):
            assert step in [s for _, s in publishing], f"job {job}: only the publishing step sees secrets"


def test_each_platform_job_passes_its_platform_to_stacks(matrix_json: dict[str, Any]) -> None:
    ci = load(ROOT / ".github/workflows/ci.yml")
    assert {e["runner"] for e in matrix_json["roots"]["include"] if e["platform"] == "linux/arm64"} == {"ubuntu-24.04-arm"}
    assert {e["runner"] for e in matrix_json["roots"]["include"] if e["platform"] == "linux/amd64"} == {"ubuntu-24.04"}
    for name in ("roots", "branches"):
        job = ci["jobs"][name]
        assert job["env"]["STACKS_PLATFORM"] == "${{ matrix.platform }}"
        build = next(s for s in job["steps"] if "make stacks" in s.get("run", ""))
        assert "STACKS_PLATFORM" in build["run"].split("--preserve-env=", 1)[1].split()[0].split(",")
        assert "STACKS_EXTRA= " in build["run"]  # the matrix places every image; no job builds extras


def test_bake_workflow_uses_the_file_it_writes() -> None:
    bake = load(ROOT / ".github/workflows/bake.yml")
    runs = "\n".join(step.get("run", "") for _, _, step in steps(bake))
    out = re.search(r"stacks bake .*--out (\S+)", runs)
    used = re.search(r"docker buildx bake -f (\S+)", runs)
    assert out and used and out[1] == used[1]
    assert "--bases-from" in runs


def test_precommit_runs_lint() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    lint = next(h for h in hooks if h["id"] == "stacks-lint")
    assert lint["entry"] in ("make lint", "stacks lint") and lint["pass_filenames"] is False
    assert re.search(lint["files"], "fragments/kernel-r/Dockerfile.j2") and re.search(lint["files"], "stacks.yaml")


def test_the_checks_can_fail() -> None:
    """The helpers above reject what does not exist."""
    assert make_targets_of("sudo make stacks STACKS_SELECT=\"a b\" && make nonsense") == ["stacks", "nonsense"]
    with pytest.raises(AssertionError):
        check_stacks_call("deploy", "")
    with pytest.raises(click.UsageError):
        check_stacks_call("matrix", "--jsonn")
    with pytest.raises(AssertionError):
        check_stacks_call("new", "")
    check_stacks_call("new", "kernel demo --package x --version 1")
    assert _braces("{images-a,images-b}") == ["images-a", "images-b"]
    moving = USES.search("      - uses: actions/checkout@v5  # v5.1.0")
    assert moving and not PINNED.fullmatch(moving[1])
    bare = USES.search("      - uses: actions/checkout@" + "f" * 40)
    assert bare and PINNED.fullmatch(bare[1]) and not VERSION_COMMENT.fullmatch(bare[2])


def _tool(name: str) -> str:
    """The tool from this interpreter's environment (the test extra installs actionlint there) or PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"`{name}` is not installed: `pip install -e .[test]` brings actionlint, scripts/ensure-engine.sh brings shellcheck"
    return found


def test_workflows_pass_actionlint_with_shellcheck() -> None:
    """actionlint knows the runner's expression types and each action's runtime; shellcheck reads every run: script."""
    result = subprocess.run(
        [_tool("actionlint"), "-no-color", f"-shellcheck={_tool('shellcheck')}", *map(str, WORKFLOWS)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_jobs_use_the_registry_cache_and_forks_only_read_it() -> None:
    ci = load(ROOT / ".github/workflows/ci.yml")
    for name in ("roots", "branches"):
        job = ci["jobs"][name]
        assert job["permissions"] == {"contents": "read", "packages": "write"}
        cache = next(s for s in job["steps"] if "STACKS_CACHE=" in s.get("run", ""))
        assert "$CACHE_REGISTRY/${OWNER,,}/stacks-cache" in cache["run"] and "STACKS_CACHE_READONLY=1" in cache["run"]
        assert cache["env"]["FORK"] == "${{ github.event.pull_request.head.repo.fork || false }}"
        assert ci["env"]["CACHE_REGISTRY"] == "ghcr.io"
        assert 'docker login "$CACHE_REGISTRY"' in cache["run"] and "--password-stdin" in cache["run"]
        build = next(s for s in job["steps"] if "make stacks" in s.get("run", ""))
        assert "STACKS_CACHE,STACKS_CACHE_READONLY" in build["run"]
        order = [s.get("name", s.get("uses", "")) for s in job["steps"]]
        assert order.index(cache["name"]) < order.index(build["name"])


def test_bake_builds_each_image_for_the_platforms_its_matrix_jobs_build(matrix_json: dict[str, Any], tmp_path: Path) -> None:
    """`stacks bake` and the CI matrix read the same plan: an image's bake `platforms` are exactly the
    platforms whose jobs build it (the plan job writes the bake file with the same selection)."""
    select = load(ROOT / ".github/workflows/ci.yml")["env"]["SELECT"].split()
    out = tmp_path / "docker-bake.json"
    result = CliRunner().invoke(cli, ["bake", "-f", str(ROOT / "stacks.yaml"), *select, "--out", str(out)])
    assert result.exit_code == 0, result.output
    targets = json.loads(out.read_text())["target"]
    built: dict[str, set[str]] = {}
    for stage in ("roots", "branches"):
        for entry in matrix_json[stage]["include"]:
            for name in entry["images"].split():
                built.setdefault(name, set()).add(entry["platform"])
    assert set(targets) == set(built)
    assert {name: set(t["platforms"]) for name, t in targets.items()} == built
    assert set(matrix_json["platforms"]) == {p for t in targets.values() for p in t["platforms"]}
