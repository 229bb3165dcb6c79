"""Test records: the key changes with the image, its checks and the tool; a passing record skips the test."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from builder.cache import keys
from builder.cache.keys import checks_digest, node_key, record_key
from builder.cache.records import RecordStore, TestRecord
from builder.cache.skipping import passed_by_record
from builder.check.run import plan_tests, run_tests_by_record
from tests.unit.fakes import FakeEngine
from tests.unit.helpers import plan_of

SPEC = """
    bases:
      debian: {pull: "debian:12"}
    images:
      base: {base: debian, fragments: [os, {use: py, params: {version: "3.12"}}]}
      lab: {parent: base, fragments: [tool]}
    """
CHECKED = {"tool": {"meta": {"params": {"level": {"type": "integer", "default": 3}},
                             "checks": [{"name": "level", "run": "echo {{ level }}", "expect": "3"}],
                             "kernel": {"name": "k", "language": "x", "snippet": "1", "expect": "1"}}}}


@dataclass
class Result:
    image: str
    status: str
    seconds: float = 1.0


@pytest.fixture
def lab(stack):
    return plan_of(stack(SPEC, CHECKED))["lab"]


def test_key_changes_with_each_part() -> None:
    base = record_key("h" * 64, "c" * 64, "1.0")
    assert base == record_key("h" * 64, "c" * 64, "1.0")
    assert len({base, record_key("x" * 64, "c" * 64, "1.0"), record_key("h" * 64, "d" * 64, "1.0"),
                record_key("h" * 64, "c" * 64, "1.1")}) == 4


def test_checks_digest_follows_params_and_budget(lab) -> None:
    assert checks_digest(replace(lab, size_budget=10)) != checks_digest(lab)
    params = [replace(a, params={**a.params, "version": "3.11"}) if a.name == "py" else a for a in lab.chain]
    assert checks_digest(replace(lab, chain=tuple(params))) != checks_digest(lab)


def test_checks_digest_follows_the_fragments_meta(tmp_path: Path) -> None:
    from tests.unit.helpers import make_stack

    one = plan_of(make_stack(tmp_path / "a", SPEC, CHECKED))["lab"]
    edited = {"tool": {"meta": {**CHECKED["tool"]["meta"],
                                "checks": [{"name": "level", "run": "echo {{ level }}", "expect": "4"}]}}}
    two = plan_of(make_stack(tmp_path / "b", SPEC, edited))["lab"]
    snippet = {"tool": {"meta": {**CHECKED["tool"]["meta"],
                                 "kernel": {"name": "k", "language": "x", "snippet": "2", "expect": "1"}}}}
    three = plan_of(make_stack(tmp_path / "c", SPEC, snippet))["lab"]
    assert one.hash == two.hash == three.hash  # metadata only: the image itself is the same
    assert len({checks_digest(one), checks_digest(two), checks_digest(three)}) == 3


def test_tool_version_follows_the_check_sources(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "smoke.py").write_text("A = 1\n")
    monkeypatch.setattr(keys, "CHECK_SOURCES", tmp_path)
    keys.tool_version.cache_clear()
    first = keys.tool_version()
    (tmp_path / "smoke.py").write_text("A = 2\n")
    keys.tool_version.cache_clear()
    assert keys.tool_version() != first
    keys.tool_version.cache_clear()


def record(node, key, passed=True, image_id="sha256:img", content_hash=None) -> TestRecord:
    return TestRecord(key=key, image=node.name, hash=content_hash or node.hash, image_id=image_id,
                      passed=passed, tool="t", date="2026-12-01T10:00:00+00:00", checks={"passed": 3})


def test_passing_record_skips_force_and_failures_do_not(lab, tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    key = node_key(lab, "t")
    assert plan_tests([lab], {"lab": "sha256:img"}, store, False, "t")[0] == [(lab, key)]
    store.put(record(lab, key))
    to_run, earlier = plan_tests([lab], {"lab": "sha256:img"}, store, False, "t")
    assert to_run == [] and earlier["lab"].date.startswith("2026-12-01")
    assert plan_tests([lab], {"lab": "sha256:img"}, store, True, "t")[0] == [(lab, key)]  # --force
    assert plan_tests([lab], {"lab": "sha256:img"}, store, False, "t2")[0] == [(lab, node_key(lab, "t2"))]
    store.put(record(lab, key, passed=False))
    assert plan_tests([lab], {"lab": "sha256:img"}, store, False, "t")[0] == [(lab, key)]


def test_a_record_of_another_image_or_hash_is_ignored(lab, tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    key = node_key(lab, "t")
    store.put(record(lab, key, image_id="sha256:someone-else"))
    assert plan_tests([lab], {"lab": "sha256:img"}, store, False, "t")[0] == [(lab, key)]
    store.put(record(lab, key, content_hash="f" * 64))
    assert plan_tests([lab], {"lab": "sha256:img"}, store, False, "t")[0] == [(lab, key)]


def test_a_corrupt_record_is_no_record(lab, tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    key = node_key(lab, "t")
    (tmp_path / f"{key}.json").write_text("{not json")
    assert store.get(key) is None


def test_run_records_outcomes_and_says_what_passed_earlier(lab, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("builder.check.run.tool_version", lambda: "t")
    store, lines, ran = RecordStore(tmp_path), [], []

    def run_one(node):
        ran.append(node.name)
        return [Result(node.name, "passed"), Result(node.name, "not run")]

    first = run_tests_by_record([lab], {"lab": "sha256:img"}, run_one, lines.append, 1, store=store)
    assert ran == ["lab"] and len(first.results) == 2 and not lines
    second = run_tests_by_record([lab], {"lab": "sha256:img"}, run_one, lines.append, 1, store=store)
    assert ran == ["lab"] and second.ran == [] and second.results == []
    assert lines[0].startswith("passed lab: passed earlier, ") and lines[0].endswith(", cached")
    assert second.earlier_summaries()["lab"]["checks"] == {"passed": 1, "not run": 1}
    run_tests_by_record([lab], {"lab": "sha256:img"}, run_one, lines.append, 1, force=True, store=store)
    assert ran == ["lab", "lab"]


def test_a_failed_run_is_recorded_and_tested_again(lab, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("builder.check.run.tool_version", lambda: "t")
    store, ran = RecordStore(tmp_path), []

    def run_one(node):
        ran.append(node.name)
        return [Result(node.name, "failed")]

    run_tests_by_record([lab], {"lab": "sha256:img"}, run_one, lambda _: None, 1, store=store)
    run_tests_by_record([lab], {"lab": "sha256:img"}, run_one, lambda _: None, 1, store=store)
    assert ran == ["lab", "lab"] and store.get(node_key(lab, "t")).passed is False


def test_push_gate_reads_the_records(lab, tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    assert passed_by_record(lab, "sha256:img", store) == {}
    store.put(record(lab, node_key(lab)))
    assert passed_by_record(lab, "sha256:img", store) == {"lab": lab.hash}
    assert passed_by_record(lab, None, store) == {}


# --- versions kept in the record, and publishing an image that is only in the cache ------------

VERSIONED = {"tool": {"meta": {"versions": {"tool": "tool --version"}}, "body": "RUN echo tool\n"}}


def test_a_passing_run_keeps_what_the_version_commands_answered(lab, tmp_path: Path, monkeypatch) -> None:
    from builder.check.run import RecordedVersions

    monkeypatch.setattr("builder.check.run.tool_version", lambda: "t")
    store = RecordStore(tmp_path)
    read = RecordedVersions({"tool": "tool --version"}, {"tool": "1.2"}, {})
    run_tests_by_record([lab], {"lab": "sha256:img"}, lambda n: [Result(n.name, "passed")], lambda _: None, 1,
                        store=store, versions_of=lambda node: read)
    kept = store.get(node_key(lab, "t"))
    assert kept.versions == {"tool": "1.2"} and kept.version_commands == {"tool": "tool --version"}

    def broken(node):
        raise RuntimeError("the container would not start")

    run_tests_by_record([lab], {"lab": "sha256:img"}, lambda n: [Result(n.name, "passed")], lambda _: None, 1,
                        store=store, force=True, versions_of=broken)
    again = store.get(node_key(lab, "t"))
    assert again.passed and again.versions is None  # the test result stands; a push reads versions itself


class CacheOnly:
    """A registry cache holding the image of every node (config labels and platform), pulled only on request."""

    def __init__(self, node_hash: str, record: TestRecord | None):
        from builder.cache.registry_cache import CacheHit

        config = {"os": "linux", "architecture": "arm64", "created": "2026-11-30T10:00:00Z",
                  "config": {"Labels": {"io.stacks.hash": node_hash, "org.opencontainers.image.revision": "abcdef1234"}}}
        self.hit = CacheHit("reg/cache:lab-" + node_hash, "sha256:manifest", "sha256:img", config)
        self.kept, self.pulls = record, []
        self.location = "reg/cache"

    def lookup(self, node):
        return self.hit

    def record(self, node, hit):
        return self.kept

    def pull(self, node, hit):
        self.pulls.append(node.name)
        return False


def test_publishing_takes_versions_and_facts_of_a_cache_only_image_from_its_record(stack, tmp_path: Path) -> None:
    from builder.publish.release import READY, RegistryImage, prepare

    plan = plan_of(stack(SPEC, VERSIONED))
    lab = plan["lab"]
    kept = replace(record(lab, node_key(lab)), versions={"tool": "1.2"}, version_commands={"tool": "tool --version"})
    cache = CacheOnly(lab.hash, kept)
    [release] = prepare(plan, [lab], FakeEngine(), plan.spec.model.settings, tmp_path / "out",  # type: ignore[arg-type]
                        cache=cache, records=RecordStore(tmp_path / "records"))
    assert isinstance(release.remote, RegistryImage) and not release.local and cache.pulls == []
    assert release.state == READY and release.versions.versions == {"tool": "1.2"}
    assert release.facts.date == "2026-11-30" and release.facts.git_sha == "abcdef1"
    assert release.image.architecture == "arm64" and release.image.platform == "linux/arm64"


@pytest.mark.parametrize("kept", [
    lambda r: replace(r, versions=None),  # tested before versions were kept
    lambda r: replace(r, versions={"tool": "1.2"}, version_commands={"tool": "tool -V"}),  # the command changed since
    lambda r: None,  # never tested
])
def test_without_versions_read_by_the_current_commands_the_image_is_pulled(stack, tmp_path: Path, kept) -> None:
    from builder.publish.release import prepare

    plan = plan_of(stack(SPEC, VERSIONED))
    lab = plan["lab"]
    cache = CacheOnly(lab.hash, kept(record(lab, node_key(lab))))
    [release] = prepare(plan, [lab], FakeEngine(), plan.spec.model.settings, tmp_path / "out",  # type: ignore[arg-type]
                        cache=cache, records=RecordStore(tmp_path / "records"))
    assert cache.pulls == ["lab"] and release.image is None  # the fake pull fails: not built here
