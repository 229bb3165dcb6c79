"""build_nodes with a registry cache, on a fake engine: hits are not built nor pulled; a child's build pulls its parent."""
from __future__ import annotations

import threading
from pathlib import Path

from builder.building.images import BuildOptions, build_nodes
from builder.cache.registry_cache import CacheHit
from tests.unit.fakes import FakeEngine
from tests.unit.helpers import plan_of

SPEC = """
    bases:
      debian: {pull: "debian:12"}
    images:
      root: {base: debian, fragments: [os]}
      leaf: {parent: root, fragments: [tool]}
      other: {parent: root, fragments: [{use: py, params: {version: "3.12"}}]}
    """


class FakeCache:
    enabled, write = True, True

    def __init__(self, engine: FakeEngine, held: dict[str, str]) -> None:
        self.engine, self.held = engine, held  # name -> hash the cache holds
        self.pulled: list[str] = []
        self.pushed: list[str] = []

    def lookup(self, node):
        if self.held.get(node.name) == node.hash:
            return CacheHit(f"reg/cache:{node.name}-{node.hash}", "sha256:m", "sha256:c")
        return None

    def pull(self, node, hit) -> bool:
        self.pulled.append(node.name)
        self.engine.add(node.local_ref, node.hash)
        return True

    def push_image(self, node):
        self.pushed.append(node.name)
        self.held[node.name] = node.hash

    def latest_ref(self, node) -> str:
        return f"reg/cache:{node.name}-latest"


class Quiet:
    def started(self, node): ...
    def building(self, node, reasons): ...
    def done(self, result): ...


def run(plan, engine, cache, tmp_path: Path) -> dict[str, tuple[str, str]]:
    options = BuildOptions(out_dir=tmp_path / "out", jobs=1, cache=cache)
    results = build_nodes(plan, list(plan), engine, options, Quiet(), threading.Event())  # type: ignore[arg-type]
    return {r.name: (r.status, "; ".join(r.reasons)) for r in results}


def test_hits_are_neither_built_nor_pulled_and_a_changed_leaf_pulls_only_its_parent(stack, tmp_path: Path) -> None:
    plan = plan_of(stack(SPEC))
    engine = FakeEngine()
    engine.add(plan["debian"].local_ref, None)
    cache = FakeCache(engine, {"root": plan["root"].hash, "other": plan["other"].hash, "leaf": "0" * 64})
    found = run(plan, engine, cache, tmp_path)
    assert found["root"][0] == found["other"][0] == "cached" and "in the cache" in found["other"][1]
    assert found["leaf"][0] == "built"
    assert cache.pulled == ["root"] and cache.pushed == ["leaf"]  # `other` untouched
    assert engine.built == [plan["leaf"].local_ref]
    assert engine.requests[0].cache_from == ("reg/cache:leaf-latest",) and engine.requests[0].inline_cache


def test_an_intermediate_with_the_label_is_not_taken_for_the_node(stack, tmp_path: Path) -> None:
    plan = plan_of(stack(SPEC))
    engine = FakeEngine()
    engine.add(plan["debian"].local_ref, None)
    intermediate = engine.add("<none>:<none>", plan["root"].hash)  # carries root's hash, no tag of root
    child = engine.add("someone/custom:latest", plan["root"].hash)  # a foreign child inheriting the label
    found = run(plan, engine, None, tmp_path)
    assert found["root"][0] == "built" and plan["root"].local_ref not in intermediate.tags + child.tags


def test_an_own_build_under_another_prefix_is_reused_and_tagged(stack, tmp_path: Path) -> None:
    plan = plan_of(stack(SPEC))
    engine = FakeEngine()
    engine.add(plan["debian"].local_ref, None)
    elsewhere = engine.add(f"otherprefix/root:{plan['root'].short_hash}", plan["root"].hash)
    found = run(plan, engine, None, tmp_path)
    assert found["root"][0] == "cached" and plan["root"].local_ref in elsewhere.tags


def test_explaining_a_plan_changes_nothing_in_the_engine(stack) -> None:
    """`stacks plan --explain` and `build --explain` only ask: an own build under another prefix stays untagged."""
    from builder.building.images import why_build

    plan = plan_of(stack(SPEC))
    engine = FakeEngine()
    engine.add(plan["debian"].local_ref, None)
    elsewhere = engine.add(f"otherprefix/root:{plan['root'].short_hash}", plan["root"].hash)
    before = [(i.id, list(i.tags)) for i in engine.images]
    answers = {node.name: why_build(engine, node) for node in plan}
    assert answers["root"] == (True, ["an image with this content hash exists"])
    assert answers["leaf"][0] is False and answers["debian"][0] is True
    assert [(i.id, list(i.tags)) for i in engine.images] == before and engine.tagged == []
    assert plan["root"].local_ref not in elsewhere.tags


def test_no_cache_builds_every_image_again_without_any_layer_cache_but_keeps_the_bases(stack, tmp_path: Path) -> None:
    plan = plan_of(stack(SPEC))
    engine = FakeEngine()
    engine.add(plan["debian"].local_ref, None)
    for name in ("root", "leaf", "other"):
        engine.add(plan[name].local_ref, plan[name].hash)
    cache = FakeCache(engine, {"root": plan["root"].hash})
    options = BuildOptions(out_dir=tmp_path / "out", jobs=1, cache=cache, no_cache=True)  # type: ignore[arg-type]
    results = build_nodes(plan, list(plan), engine, options, Quiet(), threading.Event())  # type: ignore[arg-type]
    assert {r.name: r.status for r in results} == {"debian": "cached", "root": "built", "leaf": "built", "other": "built"}
    assert sorted(engine.built) == sorted(plan[n].local_ref for n in ("root", "leaf", "other"))
    assert all(r.no_cache and r.cache_from == () for r in engine.requests)
    assert cache.pulled == []
