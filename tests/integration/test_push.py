"""`stacks push` against real registries on 127.0.0.1: tags land, digests match, faults fail cleanly.

One small stack is built and smoke-tested once for the module; every test
pushes it into a registry (or namespace) of its own. Nothing here is mocked:
the Docker engine pushes, Debian's docker-registry stores, and the tests ask
the registry's HTTP API themselves what it serves.
"""
from __future__ import annotations

import json
import socket
import subprocess
import textwrap
import threading
import uuid
from pathlib import Path

import pytest
import requests

from .conftest import PREFIX, RegistryServer, stacks, write_fragment

pytestmark = pytest.mark.integration
ACCEPT = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
FAST = {"STACKS_PUSH_ATTEMPTS": "2", "STACKS_PUSH_BACKOFF": "0.2"}
TAGS = [
    "{{ variant }}",
    "{{ variant }}-{{ git_sha }}",
    "{{ variant }}-{{ date }}",
    "{% for name, version in versions.items() %}{{ variant }}-{{ name }}-{{ version }} {% endfor %}",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, client) -> dict:
    """root (no axes) -> app-plain/app-extra (tool 1.2.7), wrongver (declares 2.0, has 1.9.1), untested (never tested)."""
    folder = tmp_path_factory.mktemp("push-stack")
    (folder / "stacks.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        settings:
          local_prefix: {PREFIX}
          tags: {json.dumps(TAGS)}
          labels: {{licenses: BSD-3-Clause, source: "https://example.org/stacks-push-test"}}
        axes:
          flavour: [plain, extra]
        bases:
          debian:
            bootstrap: {{suite: bookworm}}
            provides: ["os=debian", apt]
            versions: {{os: '. /etc/os-release && echo "$ID-$VERSION_ID"'}}
        images:
          root:
            base: debian
            fragments: [marker]
          app:
            parent: root
            axes: [flavour]
            fragments: [tool]
          wrongver:
            parent: root
            fragments: [liar]
          untested:
            parent: root
            fragments: [marker2]
        """))
    write_fragment(folder, "marker", "COPY {{ here }}/marker.txt /etc/stacks-marker\n",
                   "provides: [marker]\n", {"marker.txt": f"push {uuid.uuid4()}\n"})
    # an incompressible layer per variant, so a connection dropped after 1 MB cuts its upload
    write_fragment(folder, "tool", "RUN echo 1.2.7 > /etc/tool-version && head -c 4000000 /dev/urandom > /opt/blob\n",
                   'provides: ["tool=1.2"]\nversions: {tool: "cat /etc/tool-version"}\n')
    write_fragment(folder, "liar", "RUN echo 1.9.1 > /etc/liar-version\n",
                   'provides: ["liar=2.0"]\nversions: {liar: "cat /etc/liar-version"}\n')
    write_fragment(folder, "marker2", "RUN echo untested > /etc/stacks-untested\n")
    git = ["git", "-C", str(folder), "-c", "user.name=stacks", "-c", "user.email=stacks@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "push test stack"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    built = stacks("build", "--out", "build", cwd=folder)
    assert built.returncode == 0, built.stderr
    tested = stacks("test", "root", "app", "wrongver", "--out", "build", cwd=folder)
    assert tested.returncode == 0, tested.stderr
    report = json.loads((folder / "build" / "report.json").read_text())
    refs = {image["name"]: image["ref"] for image in report["images"]}
    ids = {name: client.images.get(ref).id for name, ref in refs.items()}
    yield {"folder": folder, "sha": sha, "refs": refs, "ids": ids}
    for image_id in set(ids.values()):  # the registry references pushing left on the local images
        for tag in client.images.get(image_id).tags:
            if tag.startswith("127.0.0.1:"):
                client.images.remove(tag)


@pytest.fixture
def server(tmp_path: Path):
    registry = RegistryServer(tmp_path / "registry")
    yield registry
    registry.stop()


def push(stack: dict, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return stacks("push", *args, "--out", "build", cwd=stack["folder"], env={**FAST, **(env or {})})


def served(host: str, repo: str, tag: str, auth: tuple[str, str] | None = None) -> tuple[str, dict] | None:
    """(digest, manifest) the registry serves for repo:tag, asked over its HTTP API; None when absent."""
    response = requests.get(f"http://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT}, auth=auth, timeout=30)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.headers["Docker-Content-Digest"], response.json()


def repo_tags(host: str, repo: str, auth: tuple[str, str] | None = None) -> list[str]:
    """The tags of `repo`, without the referrers tags (`sha256-<hex>`) the SBOM attachment adds on a registry
    without the referrers API (docs/manifests.md)."""
    response = requests.get(f"http://{host}/v2/{repo}/tags/list", auth=auth, timeout=30)
    tags = [] if response.status_code == 404 else response.json().get("tags") or []
    return sorted(t for t in tags if not t.startswith("sha256-"))


def tag_links(server: RegistryServer) -> dict[str, float]:
    """Modification times of the registry's tag files: they change only when a tag is written."""
    return {str(p.relative_to(server.data)): p.stat().st_mtime_ns for p in server.data.rglob("_manifests/tags/*/current/link")}


def assert_clean_failure(result: subprocess.CompletedProcess, *secrets: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    for secret in secrets:
        assert secret not in output


def test_tags_and_dry_run_show_the_plan_and_push_nothing(stack: dict, server: RegistryServer) -> None:
    target = f"{server.host}/dry"
    shown = stacks("tags", "--registry", target, "--out", "build", "--json", cwd=stack["folder"])
    rows = {row["image"]: row for row in json.loads(shown.stdout)}
    assert shown.returncode == 1, "wrongver's mismatch is a problem"
    app = rows["app-plain"]
    sha = stack["sha"][:7]
    names = [t["name"] for t in app["tags"]]
    assert names[0] == f"plain-{sha}" and not app["tags"][0]["moving"]
    assert names[-1] == "latest"
    assert {"plain", "plain-os-debian-12", "plain-tool-1.2.7"} <= set(names)
    assert all(t["moving"] for t in app["tags"][1:])
    assert "latest" not in [t["name"] for t in rows["app-extra"]["tags"]]
    assert app["versions"] == {"os": "debian-12", "tool": "1.2.7"} and app["repository"] == f"{target}/app"
    assert rows["root"]["tags"][0]["name"] == sha  # no axes: '{{ variant }}-' loses its dash
    assert rows["untested"]["state"] == "untested"
    assert any("declares liar=2.0, but the image reports liar 1.9.1" in p for p in rows["wrongver"]["problems"])

    dry = push(stack, "root", "app", "--registry", target, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: would push 3 images" in dry.stdout and f"{target}/app" in dry.stdout
    assert repo_tags(server.host, "dry/app") == [] and repo_tags(server.host, "dry/root") == []


def test_push_lands_every_tag_with_the_built_digest_and_a_rerun_pushes_nothing(stack: dict, server: RegistryServer) -> None:
    target = f"{server.host}/team"
    first = push(stack, "root", "app", "--registry", target)
    assert first.returncode == 0, first.stderr
    manifest = json.loads((stack["folder"] / "build" / "push-manifest.json").read_text())
    assert manifest["complete"] and [i["image"] for i in manifest["images"]] == ["root", "app-plain", "app-extra"]
    expected: dict[str, list[str]] = {}
    for image in manifest["images"]:
        assert image["status"] == "pushed" and image["size"] > 0
        assert image["image_id"] == stack["ids"][image["image"]]
        assert image["tags"][: len(image["immutable"])] == image["immutable"] and image["immutable"]
        repo = image["repository"].split("/", 1)[1]
        expected.setdefault(repo, []).extend(image["tags"])
        for tag in image["tags"]:
            digest, body = served(server.host, repo, tag)
            assert digest == image["digest"], f"{repo}:{tag}"
            assert body["config"]["digest"] == stack["ids"][image["image"]]
    assert {repo: repo_tags(server.host, repo) for repo in expected} == {r: sorted(t) for r, t in expected.items()}
    assert len(expected["team/app"]) == 11  # plain: 5 + latest, extra: 5
    # every immutable tag went up before the first moving one (the order of the engine's work)
    pushed = [line.split()[1] for line in first.stderr.splitlines() if line.strip().startswith("pushed ")]
    moving = [i for i, ref in enumerate(pushed) if not any(ref.endswith(":" + t) for im in manifest["images"] for t in im["immutable"])]
    assert pushed and moving and min(moving) == sum(len(im["immutable"]) for im in manifest["images"])
    assert pushed[-1].endswith(":latest")

    config = requests.get(f"http://{server.host}/v2/team/app/blobs/{stack['ids']['app-plain']}", timeout=30).json()
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == stack["sha"]
    assert labels["org.opencontainers.image.source"] == "https://example.org/stacks-push-test"
    assert labels["org.opencontainers.image.licenses"] == "BSD-3-Clause"
    assert labels["org.opencontainers.image.title"] == "app-plain"
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert labels["io.stacks.fragments"] == "tool=-" and labels["io.stacks.parent"] == "root"

    before = tag_links(server)
    again = push(stack, "root", "app", "--registry", target)
    assert again.returncode == 0, again.stderr
    assert "0 pushed" in again.stderr and "pushed    " not in again.stderr
    assert tag_links(server) == before
    rerun = json.loads((stack["folder"] / "build" / "push-manifest.json").read_text())
    assert {i["status"] for i in rerun["images"]} == {"unchanged"}


def test_untested_and_mismatching_images_are_refused_before_any_push(stack: dict, server: RegistryServer) -> None:
    untested = push(stack, "untested", "--registry", f"{server.host}/refused")
    assert_clean_failure(untested)
    assert "untested: no passing smoke test on record" in untested.stderr and "`stacks test untested`" in untested.stderr
    wrong = push(stack, "wrongver", "root", "--registry", f"{server.host}/refused")
    assert_clean_failure(wrong)
    assert "fragment 'liar' declares liar=2.0, but the image reports liar 1.9.1" in wrong.stderr
    assert "nothing was pushed" in wrong.stderr
    assert tag_links(server) == {}


def test_wrong_or_missing_credentials_fail_cleanly(stack: dict, auth_registry) -> None:
    target = f"{auth_registry.host}/private"
    secret = f"wrong-{uuid.uuid4().hex[:10]}"
    wrong = push(stack, "root", "--registry", target, env={"STACKS_REGISTRY_USER": "stacks", "STACKS_REGISTRY_PASSWORD": secret})
    assert_clean_failure(wrong, secret, auth_registry.users["stacks"])
    assert f"registry {auth_registry.host} refused user 'stacks'" in wrong.stderr and "HTTP 401" in wrong.stderr
    assert "retrying" not in wrong.stderr
    anonymous = push(stack, "root", "--registry", target, env={"DOCKER_CONFIG": str(stack["folder"] / "no-docker-config")})
    assert_clean_failure(anonymous)
    assert "needs credentials" in anonymous.stderr
    assert repo_tags(auth_registry.host, "private/root", ("stacks", auth_registry.users["stacks"])) == []


def test_credentials_from_the_environment_or_the_docker_config(stack: dict, auth_registry, tmp_path: Path) -> None:
    password = auth_registry.users["stacks"]
    target = f"{auth_registry.host}/creds-{uuid.uuid4().hex[:6]}"
    from_env = push(stack, "root", "--registry", target,
                    env={"STACKS_REGISTRY_USER": "stacks", "STACKS_REGISTRY_PASSWORD": password})
    assert from_env.returncode == 0, from_env.stderr
    assert password not in from_env.stdout + from_env.stderr
    assert "as user 'stacks' (from STACKS_REGISTRY_USER" in from_env.stderr

    import base64

    config = tmp_path / "docker-config"
    config.mkdir()
    token = base64.b64encode(f"stacks:{password}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": token}}}))
    env = {"DOCKER_CONFIG": str(config), "STACKS_REGISTRY_USER": "", "STACKS_REGISTRY_PASSWORD": ""}
    from_config = push(stack, "root", "app", "--registry", target, env=env)
    assert from_config.returncode == 0, from_config.stderr
    assert "(from Docker config)" in from_config.stderr and password not in from_config.stdout + from_config.stderr
    manifest = json.loads((stack["folder"] / "build" / "push-manifest.json").read_text())
    assert [i["status"] for i in manifest["images"]] == ["unchanged", "pushed", "pushed"]
    repo = target.split("/", 1)[1]
    assert "latest" in repo_tags(auth_registry.host, f"{repo}/app", ("stacks", password))


def test_a_stopped_registry_fails_cleanly(stack: dict, server: RegistryServer) -> None:
    server.stop()
    result = push(stack, "root", "--registry", f"{server.host}/down")
    assert_clean_failure(result)
    assert f"cannot reach registry {server.host}" in result.stderr and "refused" in result.stderr.lower()
    assert "gave up after 2 attempts" in result.stderr and "retrying in 0.2 s" in result.stderr


class DropProxy:
    """A TCP proxy on 127.0.0.1 that, while `limit` is set, cuts every connection after that many bytes upstream."""

    def __init__(self, target_port: int):
        self.limit: int | None = None
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                sent += len(data) if counted else 0
                if counted and self.limit is not None and sent > self.limit:
                    self.cuts += 1
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_a_connection_dropped_mid_push_fails_cleanly_and_a_rerun_completes(stack: dict, server: RegistryServer) -> None:
    proxy = DropProxy(server.port)
    try:
        target = f"127.0.0.1:{proxy.port}/flaky"
        assert push(stack, "root", "--registry", target).returncode == 0
        proxy.limit = 1_000_000  # app's 4 MB random layer cannot get through
        cut = push(stack, "root", "app", "--registry", target, env={"STACKS_PUSH_ATTEMPTS": "1"})
        assert_clean_failure(cut)
        assert proxy.cuts > 0
        assert "error: pushing 127.0.0.1:" in cut.stderr and "no moving tag was changed" in cut.stderr
        assert repo_tags(server.host, "flaky/app") == []  # its immutable tag never landed, so no moving tag moved
        failed = json.loads((stack["folder"] / "build" / "push-manifest.json").read_text())
        assert not failed["complete"] and [i["status"] for i in failed["images"]] == ["incomplete", "failed", "not attempted"]
        assert failed["images"][0]["tag_status"][stack["sha"][:7]] == "unchanged"

        proxy.limit = None
        rerun = push(stack, "root", "app", "--registry", target)
        assert rerun.returncode == 0, rerun.stderr
        manifest = json.loads((stack["folder"] / "build" / "push-manifest.json").read_text())
        assert [i["status"] for i in manifest["images"]] == ["unchanged", "pushed", "pushed"]
        for image in manifest["images"][1:]:
            assert served(server.host, "flaky/app", "latest" if image["image"] == "app-plain" else "extra")[0] == image["digest"]
    finally:
        proxy.close()


def test_reference_images_report_the_versions_their_spec_declares(reference: dict, reference_dir: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    wanted = ["lab-bookworm", "singleuser-trixie", "polyglot-bookworm", "pytorch-bookworm"]
    result = stacks("tags", *wanted, "-f", str(root / "stacks.yaml"), "--out", str(reference_dir), "--json", cwd=root,
                    env={"STACKS_ONLY_VERIFIED": "1"})
    rows = {row["image"]: row for row in json.loads(result.stdout)}
    assert result.returncode == 0, result.stdout + result.stderr
    for name in wanted:
        assert rows[name]["problems"] == [] and rows[name]["unchecked"] == [], name
    lab = rows["lab-bookworm"]["versions"]
    assert lab["os"] == "debian-12" and lab["python"].startswith("3.11.") and lab["jupyterlab"] == "4.6.6"
    assert rows["singleuser-trixie"]["versions"]["os"] == "debian-13"
    assert rows["singleuser-trixie"]["versions"]["jupyterhub-singleuser"] == "6.1.1"
    polyglot = rows["polyglot-bookworm"]["versions"]
    assert polyglot["node"].startswith("18.") and polyglot["java"].startswith("17") and polyglot["tslab"] == "1.0.22"
    assert rows["pytorch-bookworm"]["versions"]["cuda"] == "12.8" and rows["pytorch-bookworm"]["versions"]["torch"] == "2.9.1"


# --- Bearer tokens: the login Docker Hub, GHCR and Quay use ------------------------------


@pytest.fixture
def token_registry(tmp_path: Path):
    """A registry on 127.0.0.1 in `auth: token` mode, with its token service (tests/integration/token_auth.py)."""
    from .token_auth import TokenIssuer

    password = f"tok-{uuid.uuid4().hex[:12]}"
    issuer = TokenIssuer(tmp_path / "issuer", "stacks", password)
    registry = RegistryServer(tmp_path / "token-registry", auth=issuer.registry_auth())
    registry.issuer, registry.password = issuer, password  # type: ignore[attr-defined]
    yield registry
    registry.stop()
    issuer.stop()


def bearer_served(registry, repo: str, tag: str) -> str | None:
    """The digest `repo:tag` serves, asked with a token of our own (proves the registry really wants one)."""
    url = f"http://{registry.host}/v2/{repo}/manifests/{tag}"
    assert requests.get(url, headers={"Accept": ACCEPT}, timeout=30).status_code == 401
    token = registry.issuer.token([f"repository:{repo}:pull"], "stacks")
    response = requests.get(url, headers={"Accept": ACCEPT, "Authorization": f"Bearer {token}"}, timeout=30)
    return None if response.status_code == 404 else response.headers["Docker-Content-Digest"]


def test_push_through_a_bearer_token_login(stack: dict, token_registry) -> None:
    target = f"{token_registry.host}/tokens"
    env = {"STACKS_REGISTRY_USER": "stacks", "STACKS_REGISTRY_PASSWORD": token_registry.password}
    result = push(stack, "root", "--registry", target, env=env)
    assert result.returncode == 0, result.stderr
    assert token_registry.password not in result.stdout + result.stderr
    manifest = json.loads((stack["folder"] / "build" / "push-manifest.json").read_text())
    digest = manifest["images"][0]["digest"]
    assert digest and bearer_served(token_registry, "tokens/root", "latest") == digest
    asked = token_registry.issuer.requests
    assert any(r["granted"] == "yes" and "push" in r["scope"] for r in asked), asked  # the engine's login
    assert any(r["granted"] == "yes" and r["scope"] == "repository:tokens/root:pull" for r in asked), asked  # ours
    again = push(stack, "root", "--registry", target, env=env)
    assert again.returncode == 0 and "unchanged" in again.stderr, again.stderr


def test_a_refused_bearer_token_login_fails_cleanly(stack: dict, token_registry) -> None:
    secret = f"wrong-{uuid.uuid4().hex[:10]}"
    result = push(stack, "root", "--registry", f"{token_registry.host}/tokens",
                  env={"STACKS_REGISTRY_USER": "stacks", "STACKS_REGISTRY_PASSWORD": secret})
    assert_clean_failure(result, secret, token_registry.password)
    assert f"registry {token_registry.host} refused user 'stacks'" in result.stderr
    assert "token service" in result.stderr and "retrying" not in result.stderr
    assert bearer_served(token_registry, "tokens/root", "latest") is None
