"""A fake of the container interface (adapters/containers.py) and a stand-in Jupyter server on 127.0.0.1.

`FakeContainers` starts `FakeContainer`s made by a factory the test gives
(per RunSpec), records every run, and keeps a virtual clock: waits advance it
instead of sleeping, so timeouts of minutes take no time. `StubJupyter` is a
tiny HTTP server that knows tokens and passwords registered by the fake
containers, enough for the server checks to reach a verdict. `FakeEngine` is
the one fake of the `Engine` protocol (adapters/engine.py) every unit test uses.
`FakeRegistry` holds repositories of tags, manifests and blobs in memory and
answers the registry client's reading and deleting calls (adapters/registry.py).
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs

from builder.adapters.containers import ExecResult, Health, ImageFacts, RunSpec, State, wait_until
from builder.adapters.engine import BuildRequest, EngineError, ImageInfo, PushFailed
from builder.adapters.registry import DeleteRefused, RegistryError

T = TypeVar("T")
RUNNING = State("running", None, None)
ExecHandler = Callable[["FakeContainer", list[str]], ExecResult]


@dataclass
class FakeContainer:
    spec: RunSpec
    port: int | None = None  # the host port every container port is "published" on
    states: Callable[[float], State] = lambda now: RUNNING  # the state at a time of the virtual clock
    on_exec: ExecHandler = lambda container, command: ExecResult(0)
    log_text: str = ""
    stdout_text: str = ""  # what logs(stderr=False) gives
    procs: list[tuple[str, str, str]] = field(default_factory=list)
    runner: FakeContainers | None = None
    execs: list[list[str]] = field(default_factory=list)
    removed: bool = False

    @property
    def name(self) -> str:
        return self.spec.name("fake")

    def exec(self, command: list[str], timeout: float | None = None, *, user: str | None = None,
             split: bool = False, detach: bool = False) -> ExecResult:
        self.execs.append(command)
        return self.on_exec(self, command)

    def logs(self, tail: int | None = 15, stderr: bool = True) -> str:
        return self.log_text if stderr else self.stdout_text

    def state(self) -> State:
        assert self.runner is not None
        return self.states(self.runner.now)

    def host_port(self, port: int) -> int | None:
        return self.port

    def processes(self) -> list[tuple[str, str, str]]:
        return self.procs


class FakeContainers:
    """`ContainerRunner` without Docker: images by ref, containers from `factory`, a virtual clock."""

    def __init__(self, images: dict[str, ImageFacts], factory: Callable[[RunSpec], FakeContainer]) -> None:
        self.images = images
        self.factory = factory
        self.started: list[FakeContainer] = []
        self.now = 0.0

    def image(self, ref: str) -> ImageFacts:
        return self.images[ref]

    def runtimes(self) -> frozenset[str]:
        return frozenset({"runc"})

    @contextmanager
    def run(self, ref: str, spec: RunSpec) -> Iterator[FakeContainer]:
        container = self.factory(spec)
        container.runner = self
        self.started.append(container)
        try:
            yield container
        finally:
            container.removed = True

    def clock(self) -> float:
        return self.now

    def wait_until(self, condition: Callable[[], T | None], timeout: float, interval: float,
                   since: float | None = None) -> T | None:
        return wait_until(condition, timeout, interval, clock=self.clock, sleep=self._sleep, since=since)

    def _sleep(self, seconds: float) -> None:
        self.now += seconds

    def roles(self) -> list[str]:
        return [c.spec.role for c in self.started]


def healthy_after(seconds: float, final: str = "healthy", output: str = "probe said so") -> Callable[[float], State]:
    """A running container whose health check says 'starting' until `seconds`, then `final`."""
    return lambda now: State("running", None, Health("starting" if now < seconds else final, output))


def exited(code: int) -> Callable[[float], State]:
    return lambda now: State("exited", code, None)


class StubJupyter:
    """A Jupyter server as the checks see it: /api, /api/kernelspecs by token or login cookie, /login."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.passwords: set[str] = set()
        self.ignore_token = False  # a server whose command line emptied the token
        self.api_status = 200
        self.ready: Callable[[], bool] = lambda: True  # whether /api answers yet
        self.any_password = False  # a server that lets every password in
        self.kernelspecs: dict[str, Any] = {"python3": {"spec": {"display_name": "Python 3 (ipykernel)"}}}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                path = self.path.split("?", 1)[0]
                if path.endswith("/api"):
                    return self._send(stub.api_status if stub.ready() else 503, {"version": "2.0"})
                if path.endswith("/api/kernelspecs"):
                    sent = self.headers.get("Authorization", "").split()
                    allowed = stub.ignore_token or (sent[-1:] and sent[-1] in stub.tokens) \
                        or "auth=ok" in self.headers.get("Cookie", "")
                    return self._send(200, {"kernelspecs": stub.kernelspecs}) if allowed else self._send(403, {})
                if path.endswith("/login"):
                    return self._send(200, {}, {"Set-Cookie": "_xsrf=x; Path=/"})
                return self._send(404, {})

            def do_POST(self) -> None:  # noqa: N802
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
                if stub.any_password or form.get("password", [""])[0] in stub.passwords:
                    return self._send(302, {}, {"Set-Cookie": "auth=ok; Path=/", "Location": "/lab"})
                return self._send(401, {})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    def __enter__(self) -> StubJupyter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def register(self, spec: RunSpec) -> None:
        """What a real server would take from its environment."""
        if spec.environment.get("JUPYTER_TOKEN"):
            self.tokens.add(spec.environment["JUPYTER_TOKEN"])
        if spec.environment.get("JUPYTER_PASSWORD"):
            self.passwords.add(spec.environment["JUPYTER_PASSWORD"])


# --- the engine --------------------------------------------------------------------------------


@dataclass
class FakeImage:
    """One image the fake engine holds (mutable: tags come and go)."""

    id: str
    tags: list[str]
    labels: dict[str, str]
    size: int = 1
    created: str = ""
    os: str = "linux"
    architecture: str = "amd64"

    def info(self) -> ImageInfo:
        tags = tuple(t for t in self.tags if t != "<none>:<none>")  # an untagged image, as the engine lists it
        return ImageInfo(self.id, tags, dict(self.labels), self.size, self.created, self.os, self.architecture)


def _no_container(spec: RunSpec) -> FakeContainer:
    raise AssertionError(f"no container may run here: {spec}")


class FakeEngine:
    """The `Engine` protocol in memory: images, tags, builds that always succeed, pushes into a `served` map.

    `on_push(repository, tag, image_id) -> digest` lets a test play the registry; `fail_push_on` makes
    pushing that tag fail the way the engine reports it.
    """

    mode = "buildkit"

    def __init__(self, on_push: Callable[[str, str, str], str] | None = None, fail_push_on: str = "") -> None:
        self.images: list[FakeImage] = []
        self.built: list[str] = []
        self.requests: list[BuildRequest] = []
        self.pushed: list[str] = []
        self.tagged: list[tuple[str, str]] = []
        self.pulled: list[str] = []
        self.on_push, self.fail_push_on = on_push, fail_push_on
        self.containers = FakeContainers({}, _no_container)  # a test that runs containers sets its own

    def describe(self) -> str:
        return "fake engine"

    def platform(self) -> str:
        return "linux/amd64"

    def add(self, ref: str, content_hash: str | None = None, image_id: str | None = None, size: int = 1) -> FakeImage:
        image = FakeImage(image_id or f"sha256:{len(self.images)}", [ref],
                          {"io.stacks.hash": content_hash} if content_hash else {}, size)
        self.images.append(image)
        return image

    def _find(self, ref: str) -> FakeImage | None:
        return next((i for i in self.images if ref in i.tags or ref == i.id), None)

    def image(self, ref: str) -> ImageInfo | None:
        found = self._find(ref)
        return found.info() if found else None

    def listing(self, label: str) -> list[ImageInfo]:
        key, _, value = label.partition("=")
        return [i.info() for i in self.images if key in i.labels and (not value or i.labels[key] == value)]

    def tag(self, image: str, ref: str) -> None:
        self.tagged.append((image, ref))
        found = self._find(image)
        if found is None:
            raise EngineError(f"No such image: {image}")
        for other in self.images:
            if ref in other.tags:
                other.tags.remove(ref)
        found.tags.append(ref)

    def untag(self, ref: str) -> None:
        for image in self.images:
            if ref in image.tags:
                image.tags.remove(ref)

    def pull(self, ref: str, auth: dict[str, str] | None = None, platform: str | None = None) -> ImageInfo:
        self.pulled.append(ref)
        found = self._find(ref) or self.add(ref)
        return found.info()

    def push(self, repository: str, tag: str, auth: dict[str, str] | None, sink: Callable[[str], None] | None = None) -> str:
        if tag == self.fail_push_on:
            raise PushFailed("connection reset by peer")
        found = self._find(f"{repository}:{tag}")
        if found is None:
            raise PushFailed(f"An image does not exist locally with the tag: {repository}")
        self.pushed.append(tag)
        return self.on_push(repository, tag, found.id) if self.on_push else f"sha256:m-{found.id}"

    def import_tarball(self, tarball, ref: str, labels: dict[str, str], platform: str | None = None) -> ImageInfo:
        image = self.add(ref)
        image.labels.update(labels)
        if platform:
            image.architecture = platform.split("/")[1]
        return image.info()

    def build(self, request: BuildRequest, sink: Callable[[str], None]) -> None:
        self.requests.append(request)
        self.built.append(request.tag)
        image = self.add(request.tag, request.labels.get("io.stacks.hash"))
        if request.platform:
            image.architecture = request.platform.split("/")[1]

    def cancel(self) -> None:
        pass


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class FakeRegistry:
    """Repositories in memory: tag -> digest, digest -> manifest body, digest -> blob; every delete is logged.

    `refuse_deletes` answers DELETE as docker-registry does without delete enabled; `fail_delete` names a
    digest whose delete fails like a dropped connection; `referrers_api` turns the referrers API on."""

    host: str = "127.0.0.1:5000"
    tags_of: dict[str, dict[str, str]] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    refuse_deletes: bool = False
    fail_delete: str = ""
    referrers_api: bool = False
    deleted: list[str] = field(default_factory=list)
    credentials: None = None

    def put(self, repository: str, body: dict[str, Any], *tags: str) -> str:
        data = json.dumps(body, sort_keys=True).encode()
        digest = sha256(data)
        self.manifests[digest] = data
        for tag in tags:
            self.tags_of.setdefault(repository, {})[tag] = digest
        return digest

    def image(self, repository: str, tags: tuple[str, ...], name: str | None, created: str, layers: dict[str, int],
              platform: tuple[str, str] = ("linux", "amd64"), labels: dict[str, str] | None = None) -> tuple[str, str]:
        """An image manifest with a config (labels, created, platform) and layers of the given sizes: (digest, config)."""
        labels = {**({"io.stacks.name": name} if name else {}), **(labels or {})}
        config = json.dumps({"created": created, "os": platform[0], "architecture": platform[1],
                             "config": {"Labels": labels}}).encode()
        self.blobs[sha256(config)] = config
        body = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"digest": sha256(config), "size": len(config)},
                "layers": [{"digest": digest, "size": size} for digest, size in layers.items()]}
        return self.put(repository, body, *tags), sha256(config)

    def record(self, repository: str, subject: str, tagged: bool = True) -> str:
        body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": "application/vnd.stacks.test-record.v1+json",
                "config": {"digest": sha256(b"{}"), "size": 2},
                "layers": [{"digest": sha256(subject.encode()), "size": 300}], "subject": {"digest": subject}}
        tags = (subject.replace(":", "-") + ".stacks-test",) if tagged else ()
        return self.put(repository, body, *tags)

    def tags(self, repository: str) -> list[str]:
        return list(self.tags_of.get(repository, {}))

    def _resolve(self, repository: str, reference: str) -> str | None:
        digest = reference if reference.startswith("sha256:") else self.tags_of.get(repository, {}).get(reference)
        return digest if digest in self.manifests else None

    def head(self, repository: str, reference: str) -> str | None:
        return self._resolve(repository, reference)

    def raw_manifest(self, repository: str, reference: str, accept: tuple[str, ...] = ()) -> tuple[bytes, str, str] | None:
        digest = self._resolve(repository, reference)
        if digest is None:
            return None
        body = self.manifests[digest]
        return body, json.loads(body).get("mediaType", ""), digest

    def blob(self, repository: str, digest: str, limit: int = 1 << 20) -> bytes:
        return self.blobs[digest]

    def referrers(self, repository: str, digest: str) -> list[dict[str, Any]] | None:
        if not self.referrers_api:
            return None
        return [{"digest": d, "artifactType": json.loads(body).get("artifactType")}
                for d, body in self.manifests.items() if (json.loads(body).get("subject") or {}).get("digest") == digest]

    def delete_manifest(self, repository: str, digest: str) -> None:
        if self.refuse_deletes:
            raise DeleteRefused(f"registry {self.host} does not delete manifests through its API: HTTP 405 UNSUPPORTED")
        if digest == self.fail_delete:
            raise RegistryError(f"cannot reach registry {self.host}: Connection reset by peer", retryable=True)
        self.manifests.pop(digest, None)
        tags = self.tags_of.get(repository, {})
        for tag in [t for t, d in tags.items() if d == digest]:
            del tags[tag]
        self.deleted.append(digest)
