"""The one adapter between stacks and the Docker engine.

Inspecting, tagging, importing and pulling go through the docker SDK. Builds
go through a docker CLI with BuildKit when one works on this host (the SDK
only speaks the classic builder, which has no cache mounts and no secrets);
`detect()` probes each CLI with a tiny real build and falls back to the
classic builder through the SDK, saying which path it chose and why.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Iterator

import docker
import docker.errors
import docker.tls
import requests

from builder.adapters.containers import DockerContainers
from builder.adapters.engine import BuildFailed, BuildRequest, Cancelled, EngineError, ImageInfo, LineSink, PushFailed
from builder.adapters.engine_address import EngineAddress
from builder.errors import Problem, SpecError
from builder.plan.render import Mode
from builder.reference import ImageRef, InvalidReference, platform_of_machine

_STEP = re.compile(r"^#\d+ \[([^\]]+)\] (.*)$")
_CLASSIC_STEP = re.compile(r"^Step \d+/\d+ : (.*)$")


@contextmanager
def _translated() -> Iterator[None]:
    """SDK and socket failures leave the adapter as the project's `EngineError`."""
    try:
        yield
    except docker.errors.DockerException as exc:
        raise EngineError(str(getattr(exc, "explanation", None) or exc)) from None
    except requests.RequestException as exc:
        raise EngineError(f"lost the connection to the Docker engine: {exc}") from None


@dataclass
class DockerEngine:
    """The Docker engine (the `Engine` protocol): the SDK for images, a BuildKit CLI or the classic builder for builds.

    Every SDK failure leaves as an `EngineError` (`_translated`), every image as an `ImageInfo`.
    """

    client: docker.DockerClient
    mode: Mode
    cli: str | None
    reason: str
    #: the whole environment of docker CLI children (the composition root's, DOCKER_HOST included)
    child_env: dict[str, str] = field(default_factory=dict)
    _cancel: threading.Event = field(default_factory=threading.Event)
    _procs: set[subprocess.Popen] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self) -> str:
        version = self.client.version().get("Version", "?")
        how = f"BuildKit through {self.cli}" if self.mode == "buildkit" else "the classic builder (docker SDK)"
        return f"Docker engine {version}; building with {how} ({self.reason})"

    def platform(self) -> str:
        with _translated():
            info = self.client.info()
        return platform_of_machine(str(info.get("Architecture") or ""), str(info.get("OSType") or "linux"))

    @property
    def containers(self) -> DockerContainers:
        """Containers of built images, for checks and version reading (they never see the SDK client)."""
        return DockerContainers(self.client)

    # --- images -----------------------------------------------------------

    def image(self, ref: str) -> ImageInfo | None:
        with _translated():
            try:
                return ImageInfo.from_inspect(self.client.api.inspect_image(ref))
            except docker.errors.ImageNotFound:
                return None

    def listing(self, label: str) -> list[ImageInfo]:
        """Every image carrying `label`, from one raw listing (Id, RepoTags, Labels, Size, Created).

        The SDK's `images.list()` inspects each image after listing; a no-op
        build of a whole matrix needs only what the listing already says.
        """
        with _translated():
            return [ImageInfo.from_listing(row) for row in self.client.api.images(filters={"label": label})]

    def tag(self, image: str, ref: str) -> None:
        """Tag an image known by id or reference without inspecting it first."""
        with _translated():
            self.client.api.tag(image, *_name_and_tag(ref))

    def untag(self, ref: str) -> None:
        with _translated():
            self.client.api.remove_image(ref, noprune=True)

    def pull(self, ref: str, auth: dict[str, str] | None = None, platform: str | None = None) -> ImageInfo:
        """Pull `ref`: by its digest when it has one (the engine accepts a digest where a tag goes), else its tag."""
        parsed = ImageRef.parse(ref)
        with _translated():
            self.client.api.pull(parsed.familiar_name, tag=parsed.digest or parsed.tag or "latest", auth_config=auth,
                                 platform=platform)
            return ImageInfo.from_inspect(self.client.api.inspect_image(ref if (parsed.digest or parsed.tag) else f"{ref}:latest"))

    def push(self, repository: str, tag: str, auth: dict[str, str] | None, sink: LineSink | None = None) -> str:
        """Push `repository:tag` (already tagged locally); returns the manifest digest the registry acknowledged."""
        digest = None
        try:
            for chunk in self.client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth):
                if "error" in chunk:
                    raise PushFailed(str(chunk.get("error", "")).strip() or "push failed")
                digest = (chunk.get("aux") or {}).get("Digest") or digest
                if sink is not None and chunk.get("status") and chunk.get("id"):
                    sink(f"{chunk['id']}: {chunk['status']}")
        except docker.errors.APIError as exc:
            raise PushFailed(str(exc.explanation or exc)) from None
        except (OSError, requests.RequestException) as exc:  # the engine's own socket
            raise PushFailed(f"lost the connection to the Docker engine: {exc}") from None
        if digest is None:
            raise PushFailed("the engine reported no digest for the pushed tag")
        return digest

    def import_tarball(self, tarball: Path, ref: str, labels: dict[str, str], platform: str | None = None) -> ImageInfo:
        """`docker import`, or for another platform a `FROM scratch` + `ADD` build with BuildKit `--platform`:
        the engine's import records every image as its own architecture, whatever the tarball holds."""
        if platform is not None:
            return self._import_by_build(tarball, ref, labels, platform)
        repository, tag = _name_and_tag(ref)
        changes = [f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in sorted(labels.items())] + ['CMD ["bash"]']
        with _translated():
            self.client.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)
            return ImageInfo.from_inspect(self.client.api.inspect_image(ref))

    def _import_by_build(self, tarball: Path, ref: str, labels: dict[str, str], platform: str) -> ImageInfo:
        if self.mode != "buildkit":
            raise BuildFailed(f"a base for {platform} is made with BuildKit (docker build --platform); this engine "
                              "only offers the classic builder", "import")
        (tarball.parent / "Dockerfile").write_text('FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n', encoding="utf-8")
        lines: list[str] = []
        self.build(BuildRequest(tarball.parent, ref, labels, {}, platform=platform), lines.append)
        with _translated():
            return ImageInfo.from_inspect(self.client.api.inspect_image(ref))

    # --- builds -----------------------------------------------------------

    def build(self, request: BuildRequest, sink: LineSink) -> None:
        """Build and tag `request.tag`; the tag appears only if the build succeeded."""
        if self._cancel.is_set():
            raise Cancelled()
        if self.mode == "buildkit":
            self._build_cli(request, sink)
        else:
            self._build_classic(request, sink)

    def cancel(self) -> None:
        """Stop running builds: BuildKit aborts the solve, so no tag is written."""
        self._cancel.set()
        with self._lock:
            for proc in list(self._procs):
                try:
                    os.killpg(proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass

    def _build_cli(self, request: BuildRequest, sink: LineSink) -> None:
        assert self.cli
        cmd = [self.cli, "build", "--progress=plain", "-t", request.tag, "-f", str(request.context / "Dockerfile")]
        for key, value in sorted(request.labels.items()):
            cmd += ["--label", f"{key}={value}"]
        for key, value in sorted(request.build_args.items()):
            cmd += ["--build-arg", f"{key}={value}"]
        for key, path in sorted(request.secrets.items()):
            cmd += ["--secret", f"id={key},src={path}"]
        for ref in request.cache_from:  # a missing ref is only a warning in BuildKit's log
            cmd += ["--cache-from", ref]
        if request.inline_cache:
            cmd += ["--build-arg", "BUILDKIT_INLINE_CACHE=1"]
        if request.no_cache:
            cmd.append("--no-cache")
        if request.platform:
            cmd += ["--platform", request.platform]
        cmd.append(str(request.context))
        env = {**self.child_env, "DOCKER_BUILDKIT": "1"}
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True, text=True,
            errors="replace",
        )
        with self._lock:
            self._procs.add(proc)
        step = None
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                sink(line)
                match = _STEP.match(line)
                if match and not match.group(1).startswith("internal"):
                    step = f"[{match.group(1)}] {match.group(2)}"
            code = proc.wait()
        finally:
            with self._lock:
                self._procs.discard(proc)
        if self._cancel.is_set():
            raise Cancelled()
        if code != 0:
            raise BuildFailed(f"docker build exited with status {code}", step)

    def _build_classic(self, request: BuildRequest, sink: LineSink) -> None:
        if request.secrets:
            raise BuildFailed("build secrets (the CA bundle) need BuildKit; this engine only offers the classic builder", None)
        step = None
        stream = self.client.api.build(
            path=str(request.context), tag=request.tag, labels=request.labels, buildargs=request.build_args,
            rm=True, forcerm=True, decode=True, nocache=request.no_cache, platform=request.platform,
        )
        for chunk in stream:
            if self._cancel.is_set():
                raise Cancelled()
            if "stream" in chunk:
                for line in chunk["stream"].splitlines():
                    sink(line)
                    match = _CLASSIC_STEP.match(line)
                    if match:
                        step = match.group(1)
            if "error" in chunk:
                sink(chunk["error"])
                raise BuildFailed(chunk["error"].strip(), step)


def _name_and_tag(ref: str) -> tuple[str, str]:
    """(repository, tag) to write a tag with; `latest` when `ref` has none, and a digest is no tag to write."""
    parsed = ImageRef.parse(ref)
    if parsed.digest is not None:
        raise InvalidReference(ref, "a digest names content; it cannot be written as a tag")
    return parsed.familiar_name, parsed.tag or "latest"


def connect(address: EngineAddress) -> docker.DockerClient:
    """The SDK client of the engine at `address` (never the SDK's own reading of the environment)."""
    try:
        client = docker.DockerClient(base_url=address.host, tls=_tls(address), timeout=600,
                                     use_ssh_client=address.host.startswith("ssh://"))
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        raise SpecError([Problem(
            f"cannot reach the Docker engine at {address.describe()}: {exc}",
            hint="start dockerd (or Docker Desktop, colima, ...), or choose the engine with DOCKER_HOST, "
                 "DOCKER_CONTEXT or `docker context use`",
        )]) from None


def _tls(address: EngineAddress) -> docker.tls.TLSConfig | bool:
    """The SDK's TLS settings from the certificates the address names (DOCKER_CERT_PATH or the context's)."""
    if not address.tls:
        return False
    folder = Path(address.cert_path) if address.cert_path else None
    ca, cert, key = ((folder / name if folder and (folder / name).is_file() else None)
                     for name in ("ca.pem", "cert.pem", "key.pem"))
    return docker.tls.TLSConfig(client_cert=(str(cert), str(key)) if cert and key else None,
                                ca_cert=str(ca) if ca and address.verify else None, verify=address.verify)


DEFAULT_CLIS = ("/usr/bin/docker", "/usr/local/bin/docker")


def detect(client: docker.DockerClient, child_env: dict[str, str], forced: str = "", clis: Iterable[str | None] = (),
           probe_cache: Path | None = None) -> DockerEngine:
    """Choose the build path on a connected engine. `child_env` is the whole environment of docker CLI
    children (its DOCKER_HOST names the client's engine); `forced` ("classic" or "buildkit", from
    STACKS_BUILDER) skips the choice; `clis` are tried first, then `docker` on the children's PATH and the
    usual places; probe answers are kept in `probe_cache` (per CLI binary, engine and daemon version)."""
    forced = forced.lower()
    if forced == "classic":
        return DockerEngine(client, "classic", None, "STACKS_BUILDER=classic", child_env)
    failures = []
    daemon = f"{child_env.get('DOCKER_HOST', '')}:{client.version().get('Version', '?')}"
    for cli in _candidate_clis((*clis, shutil.which("docker", path=child_env.get("PATH")), *DEFAULT_CLIS)):
        ok, why = _cached_probe(cli, daemon, probe_cache, child_env)
        if ok:
            return DockerEngine(client, "buildkit", cli, "probe build succeeded", child_env)
        failures.append(f"{cli}: {why}")
    if forced == "buildkit":
        raise SpecError([Problem("STACKS_BUILDER=buildkit, but no docker CLI could build with BuildKit: " + "; ".join(failures))])
    return DockerEngine(client, "classic", None, "no docker CLI could build with BuildKit" + (f" ({'; '.join(failures)})" if failures else ""),
                  child_env)


def _candidate_clis(names: Iterable[str | None]) -> list[str]:
    seen, found = set(), []
    for name in names:
        if name and os.path.isfile(name) and os.access(name, os.X_OK):
            real = os.path.realpath(name)
            if real not in seen:
                seen.add(real)
                found.append(name)
    return found


def _cached_probe(cli: str, daemon: str, cache: Path | None, env: dict[str, str]) -> tuple[bool, str]:
    """Probe once per (CLI binary, daemon version): the answer does not change in between."""
    real = os.path.realpath(cli)
    key = f"{real}:{os.stat(real).st_mtime_ns}:{daemon}"
    known: dict[str, list[Any]] = {}
    if cache is not None:
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
    if key in known:
        ok, why = known[key]
        return bool(ok), str(why)
    result = _probe_buildkit(cli, env)
    known[key] = list(result)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(known))
        except OSError:
            pass
    return result


def _probe_buildkit(cli: str, env: dict[str, str]) -> tuple[bool, str]:
    """Build a one-line image with BuildKit and a secret: the features stacks relies on."""
    with tempfile.TemporaryDirectory(prefix="stacks-probe-") as tmp:
        Path(tmp, "Dockerfile").write_text("FROM scratch\nLABEL io.stacks.probe=1\n")
        Path(tmp, "secret").write_text("probe")
        try:
            result = subprocess.run(
                [cli, "build", "-q", "--secret", f"id=probe,src={tmp}/secret", tmp],
                env={**env, "DOCKER_BUILDKIT": "1"}, capture_output=True, text=True, timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, str(exc)
    if result.returncode == 0:
        return True, ""
    return False, (result.stderr.strip().splitlines() or ["failed"])[0]
