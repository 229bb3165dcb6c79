"""`stacks bake`: a valid bake file whose graph is the plan's graph (docker buildx is not needed to check it)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import networkx as nx
import pytest
from click.testing import CliRunner

from builder.plan.dockerfile import froms
from builder.outputs.bake import (BakeOptions, bake_graph, check_bake, graph_difference, make_bake,
                          plan_graph, write_bake)
from builder.app.cli import cli
from builder.plan.labels import CREATED_LABEL, image_labels
from builder.plan.plan import Plan, load_plan
from builder.plan.render import CA_ARGS, CA_PATH, CA_SECRET

from .helpers import plan_of

ROOT = Path(__file__).resolve().parents[2]

SPEC = """
version: 1
settings:
  registry: {host: registry.example.com, namespace: team}
bases:
  debian: {bootstrap: {suite: bookworm}, provides: [apt]}
  hub: {pull: "example/base:1.0"}
images:
  root: {base: debian, fragments: [os]}
  mid:
    parent: root
    push: false
    fragments: [{use: py, params: {version: "3.11"}}]
  leaf: {parent: mid, fragments: [tool], build_args: {FLAVOUR: plain}}
  amd: {parent: mid, fragments: [amd-only]}
  other: {base: hub, fragments: [os]}
"""
FRAGMENTS = {"amd-only": {"meta": {"platforms": ["linux/amd64"]}, "body": "RUN echo amd64\n"}}


@pytest.fixture
def plan(stack) -> Plan:
    return plan_of(stack(SPEC, FRAGMENTS))


def bake(plan: Plan, folder: Path, nodes=None, **options) -> tuple[dict, BakeOptions]:
    chosen = BakeOptions(contexts_dir=folder / "bake", **options)
    return make_bake(plan, list(plan) if nodes is None else nodes, chosen, relative_to=folder), chosen


def test_graph_equals_the_plan(plan: Plan, tmp_path: Path) -> None:
    document, options = bake(plan, tmp_path)
    assert check_bake(document, tmp_path) == []
    graph = bake_graph(document, tmp_path)
    assert graph_difference(plan_graph(list(plan), options), graph) == []
    expected = {("mid", "leaf"), ("mid", "amd"), ("root", "mid"),
                ("docker-image://" + plan["debian"].local_ref, "root"), ("example/base:1.0", "other")}
    assert set(graph.edges) == expected
    # the graph read from the Dockerfiles' FROM lines is the one the named contexts give
    assert set(bake_graph(document, None).edges) - {("example/base:1.0", "other")} == expected - {("example/base:1.0", "other")}


def test_targets(plan: Plan, tmp_path: Path) -> None:
    document, _ = bake(plan, tmp_path)
    targets = document["target"]
    assert set(targets) == {n.name for n in plan.images()}
    leaf = targets["leaf"]
    assert leaf["context"] == "bake/leaf" and (tmp_path / "bake/leaf/Dockerfile").read_text() == plan["leaf"].rendered.dockerfile
    assert leaf["contexts"] == {plan["mid"].local_ref: "target:mid"}
    assert froms(plan["leaf"].rendered.dockerfile)[-1][0] == plan["mid"].local_ref
    assert leaf["tags"] == ["registry.example.com/team/leaf:latest"]
    assert leaf["args"] == {"FLAVOUR": "plain"}
    assert leaf["labels"]["io.stacks.hash"] == plan["leaf"].hash
    assert leaf["labels"] == {k: v for k, v in image_labels(plan, plan["leaf"]).items() if k != CREATED_LABEL}
    assert targets["root"]["contexts"] == {plan["debian"].local_ref: "docker-image://" + plan["debian"].local_ref}
    assert "contexts" not in targets["other"]  # FROM names the pulled image itself
    assert targets["amd"]["platforms"] == ["linux/amd64"] and leaf["platforms"] == ["linux/amd64", "linux/arm64"]
    assert "mid" not in document["group"]["default"]["targets"]  # push: false
    assert set(document["group"]["all"]["targets"]) == set(targets)
    assert leaf["cache-to"] == ["type=inline"] and leaf["cache-from"] == ["type=registry,ref=registry.example.com/team/leaf:latest"]


def test_bases_from_a_registry_and_caches(plan: Plan, tmp_path: Path) -> None:
    document, _ = bake(plan, tmp_path, bases_from="registry.example.com/bases/", cache="registry")
    ref = plan["debian"].local_ref
    assert document["target"]["root"]["contexts"] == {ref: "docker-image://registry.example.com/bases/" + ref.split("/", 1)[1]}
    assert document["target"]["leaf"]["cache-to"] == ["type=registry,ref=registry.example.com/team/leaf:cache-leaf,mode=max"]
    assert check_bake(document, tmp_path) == []
    gha, _ = bake(plan, tmp_path, cache="gha")
    assert gha["target"]["leaf"]["cache-from"] == ["type=gha,scope=leaf"]
    none, _ = bake(plan, tmp_path, cache="none")
    assert "cache-from" not in none["target"]["leaf"]


def test_the_ca_secret_matches_the_dockerfiles(plan: Plan, tmp_path: Path) -> None:
    document, _ = bake(plan, tmp_path, ca_file=tmp_path / "ca.pem", build_args=(("PIP_INDEX_URL", "https://mirror/simple"),))
    assert document["variable"] == {"STACKS_CA_FILE": {"default": "ca.pem"}}
    for name, target in document["target"].items():
        assert target["secret"] == [f"id={CA_SECRET},src=${{STACKS_CA_FILE}}"]
        assert {k: target["args"][k] for k in CA_ARGS} == {k: CA_PATH for k in CA_ARGS}
        assert target["args"]["PIP_INDEX_URL"] == "https://mirror/simple"
        runs = [line for line in plan[name].rendered.dockerfile.splitlines() if line.startswith("RUN ")]
        assert runs and all(f"--mount=type=secret,id={CA_SECRET}," in line for line in runs)
    assert check_bake(document, tmp_path) == []
    plain, _ = bake(plan, tmp_path)
    assert "variable" not in plain and all("secret" not in t for t in plain["target"].values())


def test_platform_narrowing(plan: Plan, tmp_path: Path) -> None:
    document, options = bake(plan, tmp_path, platforms=("linux/arm64",))
    assert "amd" not in document["target"]
    assert all(t["platforms"] == ["linux/arm64"] for t in document["target"].values())
    assert graph_difference(plan_graph(list(plan), options), bake_graph(document, tmp_path)) == []


def test_deterministic(plan: Plan, tmp_path: Path) -> None:
    first, _ = bake(plan, tmp_path)
    second, _ = bake(plan, tmp_path)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


@pytest.mark.parametrize("only_verified", [True, False])
def test_the_project_bake_file(tmp_path: Path, only_verified: bool) -> None:
    plan = load_plan(ROOT / "stacks.yaml")
    nodes = plan.select(only_verified=only_verified)
    document, options = bake(plan, tmp_path, nodes)
    path = tmp_path / "docker-bake.json"
    write_bake(document, path)
    document = json.loads(path.read_text())
    assert check_bake(document, tmp_path) == []
    graph = bake_graph(document, tmp_path)
    assert graph_difference(plan_graph(nodes, options), graph) == []
    assert nx.is_directed_acyclic_graph(graph)
    images = {n.name for n in nodes if n.kind == "image"}
    assert set(document["target"]) == images
    # independently of plan_graph: each image's parent image is its only target: context
    for name in images:
        parent = plan[plan[name].parent]
        targets = [v for v in document["target"][name].get("contexts", {}).values() if v.startswith("target:")]
        assert targets == ([f"target:{parent.name}"] if parent.kind == "image" else [])
    # platforms: parent's narrowed by the fragments (xeus-cling has no arm64 build)
    for name in images:
        parent = plan[name].parent
        assert set(document["target"][name]["platforms"]) <= set(plan[parent].platforms)
    if not only_verified:
        assert document["target"]["upstream-kernels-bookworm-3.12"]["platforms"] == ["linux/amd64"]


# --- the checker catches what would break bake ------------------------------


@pytest.fixture
def good(plan: Plan, tmp_path: Path) -> dict:
    return bake(plan, tmp_path)[0]


@pytest.mark.parametrize("damage, expected", [
    (lambda d: d["target"]["leaf"]["contexts"].update({next(iter(d["target"]["leaf"]["contexts"])): "target:nope"}), "unknown target 'target:nope'"),
    (lambda d: d["target"]["root"].update(contexts={**d["target"]["root"]["contexts"], "x": "target:leaf"}), "cycle"),
    (lambda d: d["target"]["leaf"].update(tags=["registry.example.com/Team/leaf:latest"]), "not a valid image reference"),
    (lambda d: d["target"]["leaf"].update(tags=["registry.example.com/team/leaf:-bad"]), "not a valid image reference"),
    (lambda d: d["target"]["mid"].update(platforms=["linux/amd64"]), "parent 'mid' does not"),
    (lambda d: d["target"]["leaf"].update(bogus=1), "unknown attribute 'bogus'"),
    (lambda d: d["target"]["leaf"].update(tags="x"), "'tags' must be a list of strings"),
    (lambda d: d["target"]["leaf"].update(contexts={}), "a local image that no named context provides"),
    (lambda d: d["target"]["leaf"].update(context="bake/missing"), "no Dockerfile"),
    (lambda d: d["group"]["default"]["targets"].append("ghost"), "unknown target 'ghost'"),
    (lambda d: d["target"]["leaf"].update(secret=["stacks-ca"]), "secret 'stacks-ca'"),
    (lambda d: d.update(targets={}), "unknown top-level block 'targets'"),
    (lambda d: d["target"]["leaf"]["contexts"].update({"Bad Name": "target:mid"}), "context name 'Bad Name'"),
    (lambda d: d["target"]["leaf"].update(tags=["registry.example.com/team/leaf@sha256:abc"]), "not a valid image reference"),
])
def test_check_bake_finds_damage(good: dict, tmp_path: Path, damage, expected: str) -> None:
    document = copy.deepcopy(good)
    damage(document)
    problems = check_bake(document, tmp_path)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("tag", [
    "team/leaf",  # no tag: bake pushes :latest (refused before: the part after the last ':' was read as the tag)
    "registry.example.com:5000/team/leaf", "Registry.Example.com/team/leaf:1", "leaf@sha512:" + "a" * 128,
])
def test_check_bake_takes_every_docker_reference(good: dict, tmp_path: Path, tag: str) -> None:
    document = copy.deepcopy(good)
    document["target"]["leaf"]["tags"] = [tag]
    assert check_bake(document, tmp_path) == []


def test_graph_difference_names_what_differs(plan: Plan, tmp_path: Path) -> None:
    document, options = bake(plan, tmp_path)
    del document["target"]["amd"]
    document["target"]["leaf"]["contexts"] = {plan["mid"].local_ref: "target:root"}
    problems = graph_difference(plan_graph(list(plan), options), bake_graph(document, None))
    assert "only in the plan: amd" in problems
    assert "edge only in the plan: mid -> leaf" in problems and "edge only in the bake file: root -> leaf" in problems


def test_cli_writes_and_checks(stack, tmp_path: Path, monkeypatch) -> None:
    path = stack(SPEC, FRAGMENTS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STACKS_CA_CERTS", raising=False)
    result = CliRunner().invoke(cli, ["bake", "-f", str(path), "--out", "out/docker-bake.json"])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "out/docker-bake.json").read_text())
    assert document["target"]["leaf"]["context"] == "out/bake/leaf"
    assert "stacks build debian" in result.output
    pem = tmp_path / "corp.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    result = CliRunner().invoke(cli, ["bake", "-f", str(path), "--out", "ca/docker-bake.json", "--ca-cert", str(pem)])
    assert result.exit_code == 0, result.output
    assert "MIIB" in (tmp_path / "ca/ca-bundle.pem").read_text()
    assert json.loads((tmp_path / "ca/docker-bake.json").read_text())["variable"]["STACKS_CA_FILE"]["default"] == "ca/ca-bundle.pem"
