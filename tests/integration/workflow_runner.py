"""Run a GitHub Actions workflow's jobs here, step by step, as a runner would.

GitHub Actions cannot run on this machine, so this stands in for it, for the
parts of a workflow that decide what happens to images: the `${{ }}`
expressions (contexts `github`, `env`, `matrix`, `needs`, `steps`, `secrets`;
`fromJSON`, `contains`, `join`, `always`, `cancelled`, `success`), job and step `if:`,
`needs` with outputs and results, `strategy.matrix` from a job output,
`$GITHUB_ENV` / `$GITHUB_OUTPUT`, the `run:` shell (`defaults.run.shell`), and
the few actions the workflows use: checkout (a fresh copy of the project),
setup-python (nothing), upload-artifact and download-artifact (a folder per
artifact, `pattern` with `{a,b}` alternatives, `merge-multiple`).

Every job starts on a fresh runner: a new checkout folder, an empty record
store and Docker config, and the caller's `fresh_engine()` (which removes
what earlier jobs left in the engine). `sudo` is a shim that keeps only the
variables `--preserve-env` names (and the runner's own state), as sudo does.
Unknown expressions or actions raise: the workflow may only use what is
emulated here.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}", re.DOTALL)
TOKEN = re.compile(r"'(?:[^']|'')*'|&&|\|\||!=|==|!|needs\.\*\.result|[A-Za-z_][\w-]*|\S")
SUDO_SHIM = textwrap.dedent("""\
    #!/bin/bash
    # sudo as a runner's: only PATH and what --preserve-env names pass (plus the runner's own state).
    keep=(HOME USER LOGNAME TERM XDG_CACHE_HOME DOCKER_CONFIG DOCKER_HOST TMPDIR)
    while [[ "${1:-}" == -* ]]; do
      case "$1" in
        --preserve-env=*) IFS=, read -ra more <<< "${1#--preserve-env=}"; keep+=("${more[@]}") ;;
      esac
      shift
    done
    args=()
    for name in "${keep[@]}"; do
      if [ -n "${!name+x}" ]; then args+=("$name=${!name}"); fi
    done
    exec env -i "${args[@]}" "$@"
    """)


class _Null:
    """GitHub's null: falsy, every property of it is null too."""

    def __getattr__(self, name: str) -> _Null:
        return self

    def __getitem__(self, key: object) -> _Null:
        return self

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, _Null)

    def __hash__(self) -> int:
        return 0


NULL = _Null()


class _Object(dict):
    def __getattr__(self, name: str) -> Any:
        return wrap(self[name]) if name in self else NULL


class _Array(list):
    def __getitem__(self, index: Any) -> Any:
        try:
            return wrap(list.__getitem__(self, index))
        except (IndexError, TypeError):
            return NULL


def wrap(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, _Object):
        return _Object(value)
    if isinstance(value, list) and not isinstance(value, _Array):
        return _Array(value)
    return NULL if value is None else value


def _translate(expression: str) -> str:
    """GitHub's expression syntax as a Python expression over the same names."""
    words = {"&&": " and ", "||": " or ", "!": " not ", "null": "NULL", "true": "True", "false": "False",
             "needs.*.result": "_needs_results"}
    out = []
    for token in TOKEN.findall(expression):
        if token.startswith("'"):
            out.append(repr(token[1:-1].replace("''", "'")))
        else:
            out.append(words.get(token, token))
    return "".join(out)


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    names = {name: wrap(value) for name, value in context.items()}
    names.update(NULL=NULL, fromJSON=lambda text: wrap(json.loads(text)),
                 contains=lambda haystack, needle: needle in haystack,
                 join=lambda items, separator=",": separator.join(render(item) for item in items),
                 always=lambda: True, cancelled=lambda: False, success=lambda: not context.get("_failed"),
                 failure=lambda: bool(context.get("_failed")),
                 _needs_results=[n["result"] for n in context.get("needs", {}).values()])
    return eval(_translate(expression), {"__builtins__": {}}, names)  # our own workflow, translated above


def render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, _Null):
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def substitute(text: Any, context: dict[str, Any]) -> Any:
    """`${{ }}` in a string replaced by its value as GitHub prints it; other values as they are."""
    if not isinstance(text, str):
        return text
    return EXPRESSION.sub(lambda m: render(evaluate(m[1], context)), text)


def condition(text: Any, context: dict[str, Any], default: str = "success()") -> bool:
    expression = str(text).strip() if text is not None and text != "" else default
    match = EXPRESSION.fullmatch(expression)
    expression = match[1] if match else expression
    if not re.search(r"\b(always|cancelled|success|failure)\(\)", expression):
        expression = f"success() && ({expression})"
    return bool(evaluate(expression, context))


def _braces(pattern: str) -> list[str]:
    match = re.search(r"\{([^{}]*,[^{}]*)\}", pattern)
    if not match:
        return [pattern]
    return [alt for part in match[1].split(",") for alt in _braces(pattern[:match.start()] + part + pattern[match.end():])]


@dataclass
class Event:
    """What triggered the run: a push to a branch, or a pull request (from a fork or not)."""

    name: str  # "push" | "pull_request"
    ref: str
    owner: str  # github.repository_owner: the repository the workflow runs for
    fork: bool = False

    def github(self) -> dict[str, Any]:
        event: dict[str, Any] = {}
        if self.name == "pull_request":
            event = {"pull_request": {"head": {"repo": {"fork": self.fork}}}}
        return {"event_name": self.name, "ref": self.ref, "repository_owner": self.owner, "token": "job-token",
                "actor": "stacks-bot", "event": event}


@dataclass
class StepResult:
    name: str
    outcome: str  # success | failure | skipped
    log: str = ""


@dataclass
class JobResult:
    name: str
    matrix: dict[str, Any]
    result: str  # success | failure | skipped
    folder: Path | None
    steps: list[StepResult] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    def step(self, name_part: str) -> StepResult:
        return next(s for s in self.steps if name_part in s.name)

    def explain(self) -> str:
        return "\n".join(f"--- {self.name} {self.matrix.get('id', '')}: step {s.name}: {s.outcome}\n{s.log[-3000:]}"
                         for s in self.steps if s.outcome == "failure")


@dataclass
class WorkflowRun:
    """One run of `workflow` for `event`; each job on a fresh runner in `folder`."""

    workflow: dict[str, Any]
    event: Event
    folder: Path
    checkout: Callable[[Path], None]  # copies the project into a job's folder
    fresh_engine: Callable[[], None]
    env: dict[str, str]  # the runner's environment (PATH, DOCKER_HOST, ...)
    overrides: dict[str, str] = field(default_factory=dict)  # workflow env: values replaced for this machine
    secrets: dict[str, str] = field(default_factory=dict)
    skip_steps: dict[str, str] = field(default_factory=dict)  # step name -> why this test does not run it
    runs_here: Callable[[dict[str, Any]], bool] = lambda matrix: True  # a matrix entry this machine can run
    jobs: dict[str, list[JobResult]] = field(default_factory=dict)

    def run(self) -> dict[str, list[JobResult]]:
        self.folder.mkdir(parents=True, exist_ok=True)
        shim = self.folder / "shim"
        shim.mkdir(exist_ok=True)
        (shim / "sudo").write_text(SUDO_SHIM)
        (shim / "sudo").chmod(0o755)
        for name in self._order():
            self.jobs[name] = self._run_job(name, self.workflow["jobs"][name])
        return self.jobs

    def _order(self) -> list[str]:
        done: list[str] = []
        jobs = self.workflow["jobs"]
        while len(done) < len(jobs):
            ready = [n for n, job in jobs.items() if n not in done and set(_needs(job)) <= set(done)]
            assert ready, "the jobs' needs form a cycle"
            done.append(ready[0])
        return done

    def _needs_context(self, job: dict[str, Any]) -> dict[str, Any]:
        found = {}
        for need in _needs(job):
            results = self.jobs[need]
            outcome = ("skipped" if all(r.result == "skipped" for r in results)
                       else "failure" if any(r.result == "failure" for r in results) else "success")
            outputs = results[0].outputs if len(results) == 1 else {}
            found[need] = {"result": outcome, "outputs": outputs}
        return found

    def _context(self, job: dict[str, Any], matrix: dict[str, Any] | None = None) -> dict[str, Any]:
        needs = self._needs_context(job)
        failed = any(n["result"] != "success" for n in needs.values())
        return {"github": self.event.github(), "needs": needs, "matrix": matrix or {}, "secrets": self.secrets,
                "env": self._workflow_env(), "steps": {}, "_failed": failed}

    def _workflow_env(self) -> dict[str, str]:
        return {k: self.overrides.get(k, str(v)) for k, v in self.workflow.get("env", {}).items()}

    def _run_job(self, name: str, job: dict[str, Any]) -> list[JobResult]:
        context = self._context(job)
        if not condition(job.get("if"), context):
            return [JobResult(name, {}, "skipped", None)]
        strategy = job.get("strategy", {}).get("matrix")
        if strategy is None:
            return [self._run_instance(name, job, {})]
        match = EXPRESSION.fullmatch(strategy.strip()) if isinstance(strategy, str) else None
        value = evaluate(match[1], context) if match else strategy
        entries = [dict(entry) for entry in value["include"]]
        return [self._run_instance(name, job, entry) for entry in entries if self.runs_here(entry)]

    def _run_instance(self, name: str, job: dict[str, Any], matrix: dict[str, Any]) -> JobResult:
        self.fresh_engine()
        label = f"{len(list(self.folder.glob('job-*')))}-{name}-{matrix.get('id', '')}".strip("-")
        workspace = self.folder / f"job-{label}"
        self.checkout(workspace)
        runner = self.folder / f"runner-{label}"  # root's ~/.cache and ~/.docker on this runner
        files = {key: runner / key.lower() for key in ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")}
        for path in files.values():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        context = self._context(job, matrix)
        base = {**self.env, "PATH": f"{self.folder / 'shim'}:{self.env['PATH']}", "XDG_CACHE_HOME": str(runner / "cache"),
                "DOCKER_CONFIG": str(runner / "docker"), "GITHUB_ACTOR": "stacks-bot", "GITHUB_WORKSPACE": str(workspace),
                **{k: str(v) for k, v in files.items()}}
        job_env = {k: substitute(v, context) for k, v in job.get("env", {}).items()}
        context["env"] = {**context["env"], **job_env}
        shell = job.get("defaults", self.workflow.get("defaults", {})).get("run", {}).get("shell")
        result = JobResult(name, matrix, "success", workspace)
        for index, step in enumerate(job["steps"]):
            step_name = step.get("name") or step.get("uses", f"step {index}")
            context["_failed"] = any(s.outcome == "failure" for s in result.steps)
            if step_name in self.skip_steps or not condition(step.get("if"), context):
                result.steps.append(StepResult(step_name, "skipped", self.skip_steps.get(step_name, "")))
                continue
            step_env = {k: render(substitute(v, context)) for k, v in step.get("env", {}).items()}
            env = {**base, **{k: str(v) for k, v in context["env"].items()}, **step_env}
            if "run" in step:
                outcome, log = self._shell(step["run"], step.get("shell", shell), env, workspace, runner, index)
            else:
                outcome, log = self._action(step, context, workspace)
            result.steps.append(StepResult(step_name, outcome, log))
            context["env"].update(_key_values(files["GITHUB_ENV"]))
            if "id" in step:
                context["steps"][step["id"]] = {"outputs": _key_values(files["GITHUB_OUTPUT"]), "outcome": outcome}
            files["GITHUB_OUTPUT"].write_text("")
        if any(s.outcome == "failure" for s in result.steps):
            result.result = "failure"
        result.outputs = {k: render(substitute(v, context)) for k, v in job.get("outputs", {}).items()}
        return result

    def _shell(self, script: str, shell: str | None, env: dict[str, str], workspace: Path, runner: Path,
               index: int) -> tuple[str, str]:
        path = runner / f"step-{index}.sh"
        path.write_text(script)
        argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)] if shell == "bash" else ["bash", "-e", str(path)]
        done = subprocess.run(argv, cwd=workspace, env=env, capture_output=True, text=True, timeout=1200)
        return ("success" if done.returncode == 0 else "failure"), done.stdout + done.stderr

    def _action(self, step: dict[str, Any], context: dict[str, Any], workspace: Path) -> tuple[str, str]:
        action = step["uses"].split("@")[0]
        given = {k: render(substitute(v, context)) for k, v in step.get("with", {}).items()}
        store = self.folder / "artifacts"
        if action in ("actions/checkout", "actions/setup-python"):
            return "success", "the job's folder is a fresh checkout; the runner's Python is the test's"
        if action == "actions/upload-artifact":
            found = list(_matches(workspace, given["path"]))
            if not found:
                missing = given.get("if-no-files-found", "warn") == "error"
                return ("failure" if missing else "success"), f"no files at {given['path']}"
            target = store / given["name"]
            assert not target.exists(), f"artifact {given['name']} uploaded twice in one run"
            for source, relative in found:
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / relative)
            return "success", f"{len(found)} files in artifact {given['name']}"
        if action == "actions/download-artifact":
            patterns = _braces(given["pattern"])
            names = [p.name for p in sorted(store.glob("*")) if any(fnmatch.fnmatchcase(p.name, x) for x in patterns)]
            into = workspace / given["path"]
            for artifact in names:
                shutil.copytree(store / artifact, into if given.get("merge-multiple") == "true" else into / artifact,
                                dirs_exist_ok=True)
            return "success", f"downloaded {names}"
        raise AssertionError(f"the workflow uses {action}, which this runner does not emulate")


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _key_values(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            pairs[key] = value
    return pairs


def _matches(workspace: Path, paths: str) -> Iterator[tuple[Path, Path]]:
    """(file, path inside the artifact) for upload-artifact's `path` lines (a folder's files keep their
    place below it when it is the only line, as the action roots an artifact at the paths' common folder)."""
    lines = [line.strip() for line in paths.splitlines() if line.strip()]
    for line in lines:
        for hit in sorted(workspace.glob(line.rstrip("/"))):
            if hit.is_dir():
                root = hit if len(lines) == 1 else workspace
                yield from ((f, f.relative_to(root)) for f in sorted(hit.rglob("*")) if f.is_file())
            elif hit.is_file():
                yield hit, hit.relative_to(workspace)


def load_workflow(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in document:  # YAML 1.1 reads the key `on` as a boolean
        document["on"] = document.pop(True)
    return document


def runner_environment() -> dict[str, str]:
    """What a runner's steps see of this machine: PATH, the engine's address, the CA bundle, the home."""
    keep = ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "DOCKER_HOST", "STACKS_CA_CERTS", "LANG")
    return {k: os.environ[k] for k in keep if k in os.environ}
