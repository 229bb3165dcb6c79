"""Pure logic of publishing: tag schemes, versions, push order, retries, manifest, credentials, labels."""
from __future__ import annotations

import base64
import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from builder.adapters.engine import ImageInfo, PushFailed
from builder.errors import SpecError
from builder.plan.labels import digest_of, git_dirty, git_source, image_labels, main_version
from builder.plan.matrix import expand
from builder.specification.models import DEFAULT_TAGS
from builder.publish.push import PublishFailed, Step, manifest_document, retry, steps
from builder.adapters.credentials import Credentials, DockerConfigCredentials, Keychain, StaticCredentials, default_keychain
from builder.adapters.registry import RegistryError, api_base, classify
from builder.publish.release import NOT_BUILT, READY, STALE, UNTESTED, Release, clashes, parse_registry, refusals
from builder.specification.load import load_spec
from builder.plan.tags import Facts, Tag, planned_tags, push_order, tags_for
from builder.plan.versions import VersionReport, compare, compatible, declared, probes

from .fakes import FakeEngine
from .helpers import plan_of

AXES = """
axes:
  os: [bookworm, trixie]
bases:
  debian:
    pull: "debian:{{ os }}"
    provides: ["os=debian"]
    versions: {os: "cat /etc/debian_version"}
"""
VERSIONED = {
    "py": {
        "meta": {
            "provides": ["python={{ version }}"],
            "params": {"version": {"type": "string"}},
            "versions": {"python": "python{{ version }} -c 'import platform; print(platform.python_version())'"},
        },
        "body": "RUN echo py\n",
    },
}


def lab_stack(stack, settings: str = "") -> Path:
    return stack(settings + AXES + """
images:
  lab:
    base: debian
    axes: [os]
    fragments:
      - use: py
        params: {version: "3.11"}
""", VERSIONED)


def variant_and_settings(path: Path, name: str):
    spec = load_spec(path)
    return next(v for v in expand(spec) if v.name == name), spec.model.settings


FACTS = Facts({"os": "debian-12", "python": "3.11.2"}, "2025-01-31", "abc1234")


# --- tag schemes ----------------------------------------------------------------


def test_default_scheme_gives_facet_tags_at_plan_time_and_the_rest_from_the_built_image(stack) -> None:
    path = lab_stack(stack)
    plan = plan_of(path)
    assert plan["lab-bookworm"].tags == ("bookworm", "latest")
    variant, settings = variant_and_settings(path, "lab-bookworm")
    assert list(settings.tags) == list(DEFAULT_TAGS)
    tags = push_order(planned_tags(variant, settings, "f" * 64, FACTS))
    assert [t.name for t in tags] == [
        "bookworm-abc1234",  # immutable (git_sha) first
        "bookworm", "bookworm-2025-01-31", "bookworm-os-debian-12", "bookworm-python-3.11.2",
        "latest",
    ]
    assert [t.moving for t in tags] == [False, True, True, True, True, True]


def test_late_templates_are_checked_with_placeholders_at_plan_time(stack) -> None:
    path = lab_stack(stack, 'settings: {tags: ["{{ variant }}", "py{{ versions.python }}+{{ date }}"]}\n')
    with pytest.raises(SpecError) as excinfo:
        plan_of(path)
    message = excinfo.value.problems[0].message
    assert "tag 'py1.2.3+2000-01-01' (from template 'py{{ versions.python }}+{{ date }}' with placeholders" in message


def test_a_version_no_fragment_reads_is_refused_at_plan_time(stack) -> None:
    path = lab_stack(stack, 'settings: {tags: ["cuda{{ versions.cuda }}"]}\n')
    with pytest.raises(SpecError) as excinfo:
        plan_of(path)
    message = excinfo.value.problems[0].message
    assert "tag template 'cuda{{ versions.cuda }}'" in message and "cuda" in message
    assert "versions read from this image: os, python" in message


def test_optional_version_tags_and_several_tags_from_one_template(stack) -> None:
    template = ("{% if versions.cuda is defined %}cuda{{ versions.cuda }}{% endif %} "
                "{% for n, v in versions.items() %}{{ n }}{{ v }} {% endfor %}")
    path = lab_stack(stack, f"settings: {{tags: [{json.dumps(template)}], latest: false}}\n")
    plan_of(path)
    variant, settings = variant_and_settings(path, "lab-trixie")
    assert tags_for(variant, settings, "0" * 64, FACTS) == ["osdebian-12", "python3.11.2"]
    with_cuda = Facts({**FACTS.versions, "cuda": "12.8"}, FACTS.date, FACTS.git_sha)
    assert tags_for(variant, settings, "0" * 64, with_cuda)[0] == "cuda12.8"


def test_a_real_version_docker_would_reject_is_refused_before_push(stack) -> None:
    path = lab_stack(stack, 'settings: {tags: ["py{{ versions.python }}"]}\n')
    variant, settings = variant_and_settings(path, "lab-bookworm")
    bad = Facts({"os": "x", "python": "3.11.2+local"}, "2025-01-31", "")
    with pytest.raises(ValueError, match=r"tag 'py3.11.2\+local' \(from template 'py\{\{ versions.python \}\}'\) is not a valid"):
        tags_for(variant, settings, "0" * 64, bad)


def test_unknown_git_sha_and_an_empty_variant_lose_their_dashes(stack) -> None:
    path = stack('settings: {tags: ["{{ variant }}-{{ git_sha }}", "{{ variant }}.{{ date }}"]}\n'
                 "bases:\n  debian: {pull: 'debian:12'}\nimages:\n  solo: {base: debian}\n")
    variant, settings = variant_and_settings(path, "solo")
    tags = planned_tags(variant, settings, "0" * 64, Facts({}, "2025-01-31", ""))
    assert [(t.name, t.moving) for t in tags] == [("2025-01-31", True), ("latest", True)]


def test_push_order_keeps_template_order_within_immutable_and_moving_tags() -> None:
    tags = [Tag("latest", "latest", True), Tag("b", "{{ variant }}", True), Tag("h1", "{{ hash }}", False),
            Tag("c", "{{ date }}", True), Tag("h2", "{{ git_sha }}", False)]
    assert [t.name for t in push_order(tags)] == ["h1", "h2", "b", "c", "latest"]


# --- versions -------------------------------------------------------------------


@pytest.mark.parametrize("declared_version, reported, ok", [
    ("3.11", "3.11.2", True), ("3.1", "3.11.2", False), ("3.12", "3.11.9", False), ("12", "12.8", True),
    ("12.8", "12.8", True), ("17", "17.0.13", True), ("2.9.1", "2.9.1+cu126", True), ("4.0", "4.0.0rc1", True),
    ("debian", "debian-12", True), ("ubuntu", "debian-12", False), ("1.0a8", "1.0a8", True),
    ("24.11.3-2", "24.11.3", False), ("temurin", "temurin", True), ("temurin", "temurinx", False),
])
def test_declared_versions_are_prefixes_at_component_boundaries(declared_version: str, reported: str, ok: bool) -> None:
    assert compatible(declared_version, reported) is ok


def test_probes_and_declared_versions_follow_the_chain_with_params_filled_in(stack) -> None:
    plan = plan_of(lab_stack(stack))
    node = plan["lab-trixie"]
    base = plan[node.root].base
    assert node.variant is not None and node.variant.name == "lab-trixie" and node.root == "debian-trixie"
    found = probes(node.chain, base)
    assert list(found) == ["os", "python"]
    assert found["os"].source == "base 'debian'" and found["python"].source == "fragment 'py'"
    assert found["python"].command.startswith("python3.11 -c")
    assert declared(node.chain, base) == {"os": ("debian", "base 'debian'"), "python": ("3.11", "fragment 'py'")}


def test_compare_finds_mismatches_and_what_nothing_reads() -> None:
    report = VersionReport("lab", versions={"python": "3.12.1", "os": "debian-12"}, failures={"node": "exit status 127"})
    compare(report, {"python": ("3.11", "fragment 'py'"), "os": ("debian", "base 'debian'"),
                     "cuda": ("12.4", "base 'cuda'"), "node": ("18", "fragment 'node'")})
    assert report.mismatches == ["fragment 'py' declares python=3.11, but the image reports python 3.12.1"]
    assert report.unchecked == ["cuda=12.4"]
    assert not report.ok
    assert report.problems() == ["lab: could not read version 'node': exit status 127",
                                 "lab: fragment 'py' declares python=3.11, but the image reports python 3.12.1"]


def test_version_names_must_be_lowercase(stack) -> None:
    path = stack("bases:\n  debian:\n    pull: 'debian:12'\n    versions: {Python: 'python -V'}\nimages:\n  solo: {base: debian}\n")
    with pytest.raises(SpecError) as excinfo:
        plan_of(path)
    problem = excinfo.value.problems[0]
    assert problem.message == "bases.debian.versions: version names must be lowercase letters, digits and . _ - (not 'Python')"
    assert problem.location.line == 4


# --- what may be pushed ---------------------------------------------------------


def release(name: str, state: str = READY, tags: tuple[Tag, ...] = (), problems: tuple[str, ...] = ()) -> Release:
    node = SimpleNamespace(name=name, short_hash="0123456789ab", hash="0123456789ab" + "0" * 52,
                           local_ref=f"stacks/{name}:0123456789ab")
    image = ImageInfo(f"sha256:{name}", (f"stacks/{name}:0123456789ab",), {}, 1000)
    return Release(node, f"reg:5000/ns/{name}", f"ns/{name}", state, image, None, None, list(tags), [], list(problems))  # type: ignore[arg-type]


def test_refusals_say_what_to_run() -> None:
    problems = refusals([release("a", NOT_BUILT), release("b", UNTESTED), release("c", STALE), release("d", problems=("d: bad",))],
                        Path("build"))
    assert problems[0] == "a: not built (no local image with content hash 0123456789ab); run `stacks build a`"
    assert problems[1] == "b: no passing smoke test on record in build/test-report.json; run `stacks test b`"
    assert "`stacks test c`" in problems[2] and problems[3] == "d: bad"
    assert refusals([release("e")], Path("build")) == []


def test_two_images_resolving_to_one_reference_clash() -> None:
    one = release("lab", tags=(Tag("x", "x", True),))
    other = release("lab", tags=(Tag("x", "x", True),))
    other.node = SimpleNamespace(name="lab-2")  # type: ignore[assignment]
    [(who, message)] = clashes([one, other])
    assert who is other and "images 'lab' and 'lab-2' would both be pushed as reg:5000/ns/lab:x" in message


def test_steps_push_every_immutable_tag_before_any_moving_one_and_latest_last() -> None:
    a = release("a", tags=(Tag("a-sha", "", False), Tag("bookworm", "", True), Tag("latest", "latest", True)))
    b = release("b", tags=(Tag("b-sha", "", False), Tag("b-1.0", "", True)))
    order = [(s.release.node.name, s.tag.name) for s in steps([a, b])]
    assert order == [("a", "a-sha"), ("b", "b-sha"), ("a", "bookworm"), ("b", "b-1.0"), ("a", "latest")]


def test_manifest_lists_tags_in_push_order_with_their_fate() -> None:
    a = release("a", tags=(Tag("a-sha", "", False), Tag("latest", "latest", True)))
    b = release("b", tags=(Tag("b-sha", "", False), Tag("b", "", True)))
    plan = steps([a, b])
    assert [s.tag.name for s in plan] == ["a-sha", "b-sha", "b", "latest"]
    plan[0].status, plan[0].digest, plan[0].size = "unchanged", "sha256:1", 10
    plan[1].status, plan[1].digest, plan[1].size = "pushed", "sha256:2", 20
    plan[2].status = "failed"
    plan[3].status = "not attempted"
    document = manifest_document([a, b], plan, "reg:5000", complete=False)
    first, second = document["images"]
    assert first["tags"] == ["a-sha", "latest"] and first["immutable"] == ["a-sha"]
    assert first["status"] == "incomplete" and first["digest"] == "sha256:1" and first["size"] == 10
    assert first["tag_status"] == {"a-sha": "unchanged", "latest": "not attempted"}
    assert second["tags"] == ["b-sha", "b"] and second["status"] == "failed" and second["digest"] == "sha256:2"
    assert first["image_size"] == 1000 and document["complete"] is False and document["registry"] == "reg:5000"


# --- retries ----------------------------------------------------------------------


def test_network_errors_are_retried_with_exponential_backoff() -> None:
    calls, waits, said = [], [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise PushFailed("Patch http://127.0.0.1:5000/v2/x/blobs/uploads/1: read: connection reset by peer")
        return "sha256:ok"

    assert retry(flaky, "pushing x", 4, 1.5, said.append, waits.append) == "sha256:ok"
    assert waits == [1.5, 3.0] and len(said) == 2 and "attempt 2 of 4" in said[0]


def test_retries_give_up_after_the_last_attempt() -> None:
    def down():
        raise RegistryError("cannot reach registry r: Connection refused", retryable=True)

    with pytest.raises(PublishFailed, match=r"checking r: cannot reach registry r: Connection refused \(gave up after 3 attempts\)"):
        retry(down, "checking r", 3, 0, lambda _: None, lambda _: None)


def test_refused_credentials_and_other_errors_are_not_retried() -> None:
    waits: list[float] = []
    for error in (PushFailed("unauthorized: authentication required"), RegistryError("refused", auth=True),
                  PushFailed("manifest invalid: manifest invalid")):
        with pytest.raises(PublishFailed):
            retry(lambda e=error: (_ for _ in ()).throw(e), "pushing x", 5, 1, lambda _: None, waits.append)
    assert waits == []


@pytest.mark.parametrize("message, retryable, auth", [
    ("dial tcp 127.0.0.1:5000: connect: connection refused", True, False),
    ("Patch \"http://h/v2/x/blobs/uploads/u\": EOF", True, False),
    ("write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe", True, False),
    ("received unexpected HTTP status: 503 Service Unavailable", True, False),
    ("unauthorized: authentication required", False, True),
    ("denied: requested access to the resource is denied", False, True),
    ("manifest blob unknown: blob unknown to registry", False, False),
    ("write tcp 127.0.0.1:37026->127.0.0.1:39319: use of closed network connection", True, False),
])
def test_error_classification(message: str, retryable: bool, auth: bool) -> None:
    assert classify(message) == (retryable, auth)


# --- registries and credentials ---------------------------------------------------------


@pytest.mark.parametrize("text, host, namespace", [
    ("127.0.0.1:5000", "127.0.0.1:5000", ""), ("127.0.0.1:5000/team/sub", "127.0.0.1:5000", "team/sub"),
    ("ghcr.io/org", "ghcr.io", "org"), ("myorg", "docker.io", "myorg"), ("localhost/x", "localhost", "x"),
])
def test_registry_option(text: str, host: str, namespace: str) -> None:
    parsed = parse_registry(text)
    assert (parsed.host, parsed.namespace) == (host, namespace)


def test_registry_paths_and_api_addresses() -> None:
    from builder.plan.tags import repository
    from builder.specification.models import Settings

    assert repository(Settings(), "lab").repository == "library/lab"
    assert repository(Settings.model_validate({"registry": {"host": "r:5000", "namespace": "a/b"}}), "lab").repository == "a/b/lab"
    assert api_base("docker.io") == "https://registry-1.docker.io"
    assert api_base("127.0.0.1:5000") == "http://127.0.0.1:5000" and api_base("localhost:5000") == "http://localhost:5000"
    assert api_base("ghcr.io") == "https://ghcr.io" and api_base("[::1]:5000") == "http://[::1]:5000"
    assert api_base("[::1]") == "http://[::1]"  # loopback without a port too
    assert api_base("index.docker.io") == "https://registry-1.docker.io"


def test_explicit_credentials_never_show_the_password() -> None:
    creds = default_keychain("bot", "s3cret-value").lookup("r:5000")
    assert creds is not None and creds.username == "bot" and creds.engine_auth("r:5000")["password"] == "s3cret-value"
    assert "s3cret-value" not in repr(creds) + creds.describe()


def test_credentials_from_the_docker_config(monkeypatch, tmp_path: Path) -> None:
    auth = base64.b64encode(b"alice:pw-from-config").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"r:5000": {"auth": auth}, "https://index.docker.io/v1/": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    keychain = default_keychain(None, None)
    assert keychain.lookup("r:5000") == Credentials("alice", "pw-from-config", source="Docker config")
    assert keychain.lookup("docker.io") is not None and keychain.lookup("other:5000") is None


def test_the_keychain_asks_its_sources_in_order(monkeypatch, tmp_path: Path) -> None:
    auth = base64.b64encode(b"alice:pw-from-config").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"r:5000": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    explicit = StaticCredentials("bot", "pw")
    assert Keychain((explicit, DockerConfigCredentials())).lookup("r:5000").username == "bot"
    assert Keychain((DockerConfigCredentials(), explicit)).lookup("r:5000").username == "alice"
    assert Keychain((StaticCredentials(None, None), DockerConfigCredentials())).lookup("other:5000") is None
    assert StaticCredentials("bot", None).lookup("r:5000") is None  # a user without a password is not a credential


# --- labels ------------------------------------------------------------------------------


def test_oci_labels_from_settings_and_git(stack) -> None:
    path = lab_stack(stack, "settings: {labels: {licenses: BSD-3-Clause, vendor: Example}}\n")
    folder = path.parent
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "remote", "add", "origin", "git@github.com:example/stacks.git"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    plan = plan_of(path)
    labels = image_labels(plan, plan["lab-bookworm"], datetime(2025, 1, 31, 12, 0, tzinfo=timezone.utc))
    oci = {k.removeprefix("org.opencontainers.image."): v for k, v in labels.items() if k.startswith("org.opencontainers")}
    assert oci == {"title": "lab-bookworm", "description": "lab-bookworm", "version": "3.11",
                   "created": "2025-01-31T12:00:00Z", "revision": head, "source": "https://github.com/example/stacks",
                   "licenses": "BSD-3-Clause", "vendor": "Example", "url": "", "documentation": "", "authors": "",
                   "base.name": plan["debian-bookworm"].local_ref, "base.digest": ""}
    assert labels["io.stacks.hash"] == plan["lab-bookworm"].hash and labels["io.stacks.parent"] == "debian-bookworm"
    assert labels["io.stacks.fragments"] == "py=-"
    assert plan["debian-bookworm"].local_ref == "debian:bookworm"  # a pulled parent is named by its reference
    with_parent = image_labels(plan, plan["lab-bookworm"], base_digest="sha256:" + "a" * 64)
    assert with_parent["org.opencontainers.image.base.digest"] == "sha256:" + "a" * 64

    (folder / "stacks.yaml").write_text((folder / "stacks.yaml").read_text() + "# edited\n")
    git_dirty.cache_clear()
    assert image_labels(plan, plan["lab-bookworm"])["org.opencontainers.image.revision"] == head + "-dirty"
    git_dirty.cache_clear()


def test_the_version_label_is_the_main_software_of_the_first_fragment_that_names_one(stack) -> None:
    path = stack(AXES + """
images:
  lab:
    base: debian
    axes: [os]
    fragments:
      - use: py
        params: {version: "3.12"}
  tools:
    parent: lab
    fragments: [plain]
""", {**VERSIONED, "plain": {"meta": {}, "body": "RUN echo plain\n"}})
    plan = plan_of(path)
    assert main_version(plan["lab-bookworm"]) == "3.12"  # the version param: what this image installs
    assert main_version(plan["tools-bookworm"]) == ""  # nothing names one: empty, not the parent's


def test_a_bootstrapped_base_is_versioned_by_its_suite(stack) -> None:
    path = stack(AXES.replace('pull: "debian:{{ os }}"', 'bootstrap: {suite: "{{ os }}"}') + """
images:
  tools:
    base: debian
    axes: [os]
    fragments: [plain]
""", {"plain": {"meta": {}, "body": "RUN echo plain\n"}})
    plan = plan_of(path)
    assert main_version(plan["debian-trixie"]) == "trixie"
    assert main_version(plan["tools-trixie"]) == ""  # the image, not its base


def test_an_image_digest_is_the_registry_one_when_there_is_one() -> None:
    assert digest_of("sha256:id", ("reg/x@sha256:manifest",)) == "sha256:manifest"
    assert digest_of("sha256:id") == "sha256:id"


@pytest.mark.parametrize("remote, url", [
    ("git@github.com:org/repo.git", "https://github.com/org/repo"),
    ("ssh://git@gitlab.example.org/group/repo.git", "https://gitlab.example.org/group/repo"),
    ("https://token:x-oauth@github.com/org/repo.git", "https://github.com/org/repo"),
])
def test_git_remotes_become_browsable_urls_without_credentials(tmp_path: Path, remote: str, url: str) -> None:
    subprocess.run(["git", "-C", str(tmp_path), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", remote], check=True)
    git_source.cache_clear()
    assert git_source(tmp_path) == url


def test_step_reference() -> None:
    step = Step(release("a"), Tag("t", "t", True))
    assert step.ref == "reg:5000/ns/a:t"


# --- the pusher, against a fake engine and registry ----------------------------------------


class FakeRegistry:
    """What a registry serves per tag: {path:tag: (manifest digest, config digest)}."""

    def __init__(self, served: dict[str, tuple[str, str]] | None = None):
        self.served = dict(served or {})

    def manifest(self, path: str, tag: str, platform=("linux", "amd64")):
        from builder.adapters.registry import RemoteManifest

        found = self.served.get(f"{path}:{tag}")
        return RemoteManifest(found[0], found[1], 100) if found else None


def fake_engine(registry: FakeRegistry, fail_on: str = "") -> FakeEngine:
    """The shared fake engine, holding the images `release()` makes; a push makes `registry` serve the image."""

    def serve(repository: str, tag: str, image_id: str) -> str:
        registry.served[f"{repository.split('/', 1)[1]}:{tag}"] = (f"sha256:m-{image_id}", image_id)
        return f"sha256:m-{image_id}"

    engine = FakeEngine(on_push=serve, fail_push_on=fail_on)
    for name in "abcd":
        engine.add(f"stacks/{name}:0123456789ab", image_id=f"sha256:{name}", size=1000)
    return engine


def pusher(registry: FakeRegistry, engine: FakeEngine, **kwargs):
    from builder.publish.push import Pusher

    return Pusher(engine, registry, None, lambda line: None, attempts=1, backoff=0, **kwargs)  # type: ignore[arg-type]


def lab_steps():
    a = release("a", tags=(Tag("a-sha", "", False), Tag("latest", "latest", True)))
    return steps([a])


def test_the_pusher_pushes_in_order_verifies_and_skips_what_is_there() -> None:
    registry = FakeRegistry()
    engine = fake_engine(registry)
    plan = lab_steps()
    pusher(registry, engine).run(plan)
    assert engine.pushed == ["a-sha", "latest"] and [s.status for s in plan] == ["pushed", "pushed"]
    assert plan[0].digest == "sha256:m-sha256:a"
    again = lab_steps()
    pusher(registry, engine).run(again)
    assert engine.pushed == ["a-sha", "latest"] and [s.status for s in again] == ["unchanged", "unchanged"]


def test_an_immutable_tag_holding_other_content_is_refused_before_any_push() -> None:
    registry = FakeRegistry({"ns/a:a-sha": ("sha256:old-manifest", "sha256:other-build")})
    engine = fake_engine(registry)
    plan = lab_steps()
    with pytest.raises(PublishFailed, match=r"immutable tags already hold other content: reg:5000/ns/a:a-sha .*--overwrite-immutable"):
        pusher(registry, engine).run(plan)
    assert engine.pushed == [] and [s.status for s in plan] == ["not attempted", "not attempted"]
    forced = lab_steps()
    pusher(registry, engine, overwrite_immutable=True).run(forced)
    assert engine.pushed == ["a-sha", "latest"]


def test_a_moving_tag_holding_other_content_is_simply_moved() -> None:
    registry = FakeRegistry({"ns/a:latest": ("sha256:old", "sha256:older-build")})
    engine = fake_engine(registry)
    plan = lab_steps()
    pusher(registry, engine).run(plan)
    assert engine.pushed == ["a-sha", "latest"]


def test_a_failed_push_marks_the_rest_not_attempted() -> None:
    registry = FakeRegistry()
    engine = fake_engine(registry, fail_on="a-sha")
    plan = lab_steps()
    with pytest.raises(PublishFailed, match="connection reset"):
        pusher(registry, engine).run(plan)
    assert [s.status for s in plan] == ["failed", "not attempted"] and engine.pushed == []


def test_a_registry_serving_something_else_after_the_push_fails_verification() -> None:
    registry = FakeRegistry()

    engine = fake_engine(registry)
    serve = engine.on_push
    assert serve is not None
    engine.on_push = lambda repository, tag, image_id: serve(repository, tag, image_id) and "sha256:not-what-it-serves"
    plan = lab_steps()
    with pytest.raises(PublishFailed, match="verifying reg:5000/ns/a:a-sha: the registry serves"):
        pusher(registry, engine).run(plan)


def cache_only_release(name: str = "a"):
    from builder.publish.release import RegistryImage

    a = release(name, tags=(Tag("a-sha", "", False), Tag("latest", "latest", True)))
    hit = SimpleNamespace(ref=f"other-reg/cache:{name}-h", digest="sha256:cached", image_id=f"sha256:{name}")
    a.remote = RegistryImage(ImageInfo(f"sha256:{name}"), VersionReport(name), hit)  # type: ignore[arg-type]
    a.image = a.remote.image
    return a


class PullingCache:
    """A cache on another registry than the target: the pusher must pull from it, once."""

    host, path = "other-reg", "cache"

    def __init__(self, engine: FakeEngine, works: bool = True):
        self.engine, self.works, self.pulls = engine, works, []

    def lookup(self, node):
        return None  # not the target registry: no registry-side copy

    def pull(self, node, hit):
        self.pulls.append(hit.ref)
        return self.works


def test_an_image_only_in_another_registrys_cache_is_pulled_once_then_pushed() -> None:
    registry = FakeRegistry()
    engine = fake_engine(registry)  # holds what the pull brought
    cache = PullingCache(engine)
    plan = steps([cache_only_release()])
    pusher(registry, engine, cache=cache).run(plan)
    assert cache.pulls == ["other-reg/cache:a-h"] and engine.pushed == ["a-sha", "latest"]
    assert [s.status for s in plan] == ["pushed", "pushed"]


def test_an_image_only_in_the_cache_that_cannot_be_pulled_fails_the_push_cleanly() -> None:
    registry = FakeRegistry()
    engine = fake_engine(registry)
    plan = steps([cache_only_release()])
    with pytest.raises(PublishFailed, match="only in the cache other-reg/cache:a-h, and pulling it failed"):
        pusher(registry, engine, cache=PullingCache(engine, works=False)).run(plan)
    assert engine.pushed == [] and engine.tagged == [] and [s.status for s in plan] == ["failed", "not attempted"]
