"""Every path of `.github/workflows/ci.yml`, job by job, on fresh runners against a registry on 127.0.0.1.

The jobs' `run:` commands are taken from ci.yml and run in order with the
values GitHub would give them (`workflow_runner`): plan, roots, branches and
publish, each on a fresh runner (a new checkout, an empty record store and
Docker config, and the stack's images removed from the engine; a base built
under another prefix of this shared engine may still be found, as the only
approximation; the base here has a package of its own, so no other stack
shares it). The registry cache is `CACHE_REGISTRY/<owner>/stacks-cache`
with `CACHE_REGISTRY` pointed at the registry here, or, for a pull request
from a fork, at a read-only front that answers every write with 403, as a
fork's token gets.

Paths, on a tiny stack (a bootstrapped minbase Debian base, one image on it;
the matrix cuts it into a roots job for the base and a branches job for the
image, so the hand-off between them is exercised):

1. push to main, cold cache: everything built, cached, published;
2. push to main, warm cache: nothing built, the tags published again;
3. pull request from a fork, cold cache: the roots job hands the base it made
   on as an artifact, the branches job loads it and builds the image;
4. pull request from a fork, warm cache: nothing built, nothing to hand on
   (the roots' images are cache hits that were never pulled: the case that
   broke `docker save`), and the branches job finds everything in the cache;
5. the same with the fork's image edited: the branches job pulls the base from
   the read-only cache and builds the image on it.

The plan job's unit-test step is left out (tests/unit is its own suite).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import requests

from .conftest import ROOT, RegistryServer, write_fragment
from .read_only_front import ReadOnlyFront
from .workflow_runner import Event, JobResult, WorkflowRun, load_workflow, runner_environment

pytestmark = pytest.mark.integration

CI = ROOT / ".github" / "workflows" / "ci.yml"
SKIPPED = {"Unit tests": "tests/unit is a suite of its own; it needs no engine state"}
HERE = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}[os.uname().machine]


class Paths:
    """The tiny stack, the registries, and the runs of the workflow on them."""

    def __init__(self, folder: Path, client, registry: RegistryServer, front: ReadOnlyFront):
        self.folder, self.client, self.registry, self.front = folder, client, registry, front
        self.nonce = uuid.uuid4().hex[:8]
        self.prefix = f"wfpaths{self.nonce}"
        self.namespace = f"release-{self.nonce}"
        self.release = f"{registry.host}/{self.namespace}"
        self.source = folder / "project"
        self.runs = 0
        self.write_stack("hello")

    def write_stack(self, text: str) -> None:
        (self.source / "fragments").mkdir(parents=True, exist_ok=True)
        (self.source / "stacks.yaml").write_text(textwrap.dedent(f"""\
            version: 1
            settings:
              local_prefix: {self.prefix}
              registry: {{host: "{self.registry.host}", namespace: {self.namespace}}}
            bases:
              debian-bookworm:
                bootstrap: {{suite: bookworm, variant: minbase, packages: [netbase]}}  # a base of this test's own
                provides: ["os=debian", apt]
                platforms: [{HERE}]
            images:
              hello:
                base: debian-bookworm
                fragments: [{{use: note, params: {{text: {text}}}}}]
                push: true
            """))
        write_fragment(self.source, "note", f"RUN echo {{{{ text }}}} > /etc/stacks-note && echo {self.nonce} > /etc/nonce\n",
                       "verified: true\nparams:\n  text: {type: string}\n"
                       f"checks:\n  - {{name: note, run: cat /etc/stacks-note, expect: '^{text}$'}}\n")

    def checkout(self, into: Path) -> None:
        """A fresh clone: the stack, and the project's Makefile, scripts and installed tool."""
        shutil.copytree(self.source, into)
        shutil.copy2(ROOT / "Makefile", into / "Makefile")
        (into / "pyproject.toml").symlink_to(ROOT / "pyproject.toml")
        (into / "scripts").symlink_to(ROOT / "scripts")
        (into / ".venv").mkdir()
        (into / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
        (into / ".venv" / ".installed").touch()  # what the runner's `make` installs; the test's environment has it

    def fresh_engine(self) -> None:
        """Remove every image this test's runs left in the engine (its prefix, its registries)."""
        mine = (f"{self.prefix}/", f"{self.registry.host}/", f"{self.front.host}/")
        for image in self.client.images.list():
            for tag in image.tags:
                if tag.startswith(mine):
                    self.client.images.remove(tag, noprune=False)

    def run(self, event: Event) -> dict[str, list[JobResult]]:
        self.runs += 1
        host = self.front.host if event.fork else self.registry.host
        run = WorkflowRun(
            workflow=load_workflow(CI), event=event, folder=self.folder / f"run-{self.runs}", checkout=self.checkout,
            fresh_engine=self.fresh_engine, env={**runner_environment(), "STACKS_CA_CERTS": os.environ.get("STACKS_CA_CERTS", "")},
            overrides={"CACHE_REGISTRY": host}, secrets={}, skip_steps=SKIPPED,
            runs_here=lambda matrix: matrix["platform"] == HERE,
        )
        jobs = run.run()
        self.fresh_engine()
        return jobs

    def cache_tags(self, owner: str) -> list[str]:
        reply = requests.get(f"http://{self.registry.host}/v2/{owner.lower()}/stacks-cache/tags/list", timeout=30)
        return (reply.json().get("tags") or []) if reply.status_code == 200 else []


def passed(jobs: dict[str, list[JobResult]], *names: str) -> None:
    for name in names:
        assert jobs[name] and all(job.result == "success" for job in jobs[name]), \
            f"job {name}: " + "; ".join(f"{j.matrix.get('id')}: {j.result}" for j in jobs[name]) + "\n" + \
            "\n".join(j.explain() for j in jobs[name])


def statuses(job: JobResult) -> dict[str, str]:
    assert job.folder is not None
    report = json.loads((job.folder / "build" / "report.json").read_text())
    return {image["name"]: image["status"] for image in report["images"]}


def only(jobs: dict[str, list[JobResult]], name: str) -> JobResult:
    assert len(jobs[name]) == 1, [j.matrix.get("id") for j in jobs[name]]
    return jobs[name][0]


def handed_on(job: JobResult) -> list[str]:
    assert job.folder is not None
    lists = list((job.folder / "handoff").glob("*.txt"))
    assert len(lists) == 1, "the roots job writes the list of what it hands on"
    return lists[0].read_text().split()


@pytest.fixture
def paths(tmp_path: Path, client):
    registry = RegistryServer(tmp_path / "registry")
    front = ReadOnlyFront(registry.host)
    state = Paths(tmp_path, client, registry, front)
    yield state
    state.fresh_engine()
    front.stop()
    registry.stop()


def test_every_path_of_the_ci_workflow(paths: Paths) -> None:
    started, timings = time.monotonic(), {}
    main = Event("push", "refs/heads/main", owner=f"Stacks-{paths.nonce}")
    matrix = None

    # 1. push to main, cold cache
    jobs = paths.run(main)
    timings["main, cold"] = time.monotonic() - started
    passed(jobs, "plan", "roots", "branches", "publish")
    matrix = json.loads(only(jobs, "plan").outputs["matrix"])
    assert [e["nodes"] for e in matrix["roots"]["include"]] == ["debian-bookworm"]
    assert [e["nodes"] for e in matrix["branches"]["include"]] == ["hello"]
    assert statuses(only(jobs, "roots")) == {"debian-bookworm": "built"}
    assert statuses(only(jobs, "branches")) == {"debian-bookworm": "cached", "hello": "built"}
    assert only(jobs, "roots").step("Hand on").outcome == "skipped"  # a writable cache hands the images on
    tags = paths.cache_tags(main.owner)
    assert any(t.startswith("debian-bookworm-") for t in tags) and any(t.startswith("hello-") for t in tags)
    assert sum(t.endswith(".stacks-test") for t in tags) == 1  # hello's test record
    publish = only(jobs, "publish").step("Publish").log
    assert "copied from the cache" in publish and "Pushed" not in publish, publish  # registry-side: nothing rebuilt or uploaded
    released = f"{paths.release}/hello:latest"
    shown = subprocess.run(["docker", "run", "--rm", "--pull", "always", released, "cat", "/etc/stacks-note"],
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0 and shown.stdout.strip() == "hello", shown.stderr
    paths.fresh_engine()

    # 2. push to main, warm cache: nothing is built or tested again
    mark = time.monotonic()
    jobs = paths.run(main)
    timings["main, warm"] = time.monotonic() - mark
    passed(jobs, "plan", "roots", "branches", "publish")
    assert set(statuses(only(jobs, "roots")).values()) == {"cached"}
    assert set(statuses(only(jobs, "branches")).values()) == {"cached"}
    assert "passed earlier" in only(jobs, "branches").step("Build and smoke-test").log

    # 3. pull request from a fork, cold cache (the upstream's cache holds nothing of it yet)
    mark = time.monotonic()
    cold = Event("pull_request", "refs/pull/7/merge", owner=f"Upstream-{paths.nonce}", fork=True)
    jobs = paths.run(cold)
    timings["fork, cold"] = time.monotonic() - mark
    passed(jobs, "plan", "roots", "branches")
    assert jobs["publish"][0].result == "skipped"
    assert handed_on(only(jobs, "roots")) == matrix["roots"]["include"][0]["refs"].split()  # the base made here
    assert statuses(only(jobs, "branches")) == {"debian-bookworm": "cached", "hello": "built"}  # the base came as the artifact
    assert paths.cache_tags(cold.owner) == []  # a fork writes nothing to the cache

    # 4. pull request from a fork, warm cache: the roots' images are cache hits, never pulled
    mark = time.monotonic()
    warm = Event("pull_request", "refs/pull/8/merge", owner=main.owner, fork=True)
    before = paths.cache_tags(main.owner)
    jobs = paths.run(warm)
    timings["fork, warm"] = time.monotonic() - mark
    passed(jobs, "plan", "roots", "branches")
    assert handed_on(only(jobs, "roots")) == []
    assert set(statuses(only(jobs, "branches")).values()) == {"cached"}
    assert jobs["publish"][0].result == "skipped"

    # 5. the fork edits the image: its parent is pulled from the read-only cache, the image built on it
    mark = time.monotonic()
    paths.write_stack("forked")
    jobs = paths.run(warm)
    timings["fork, warm, image edited"] = time.monotonic() - mark
    passed(jobs, "plan", "roots", "branches")
    assert handed_on(only(jobs, "roots")) == []
    assert statuses(only(jobs, "branches")) == {"debian-bookworm": "cached", "hello": "built"}
    assert "passed hello: " in only(jobs, "branches").step("Build and smoke-test").log
    assert sorted(paths.cache_tags(main.owner)) == sorted(before)  # read, never written

    total = time.monotonic() - started
    print("workflow paths: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f"; total {total:.0f} s")
