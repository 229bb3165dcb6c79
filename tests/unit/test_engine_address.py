"""Finding the one engine of a run: given an environment and a docker config folder, which address, from where."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from builder.adapters.engine_address import EngineAddress
from builder.app.environment import child_environment, engine_address
from builder.errors import SpecError


def context(config: Path, name: str, host: str, skip_verify: bool | None = None, tls_files: bool = False) -> Path:
    """A context as `docker context create NAME --docker host=HOST` stores it; returns its meta.json."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    endpoint: dict = {"Host": host}
    if skip_verify is not None:
        endpoint["SkipTLSVerify"] = skip_verify
    meta = config / "contexts" / "meta" / digest / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": endpoint}}))
    if tls_files:
        folder = config / "contexts" / "tls" / digest / "docker"
        folder.mkdir(parents=True)
        for pem in ("ca.pem", "cert.pem", "key.pem"):
            (folder / pem).write_text("PEM")
    return meta


@pytest.fixture
def config(tmp_path: Path) -> Path:
    folder = tmp_path / "docker-config"
    folder.mkdir()
    context(folder, "colima", "unix:///home/u/.colima/docker.sock")
    context(folder, "remote", "ssh://me@build-box")
    (folder / "config.json").write_text(json.dumps({"auths": {}, "currentContext": "colima"}))
    return folder


def resolve(env: dict[str, str], default_socket: Path | None = None) -> EngineAddress:
    return engine_address(env, default_socket) if default_socket else engine_address(env)


def test_precedence_docker_host_then_docker_context_then_current_context(config: Path, tmp_path: Path) -> None:
    env = {"DOCKER_CONFIG": str(config)}
    assert resolve(env) == EngineAddress("unix:///home/u/.colima/docker.sock",
                                         f"docker context 'colima' ({config / 'config.json'})")
    named = resolve({**env, "DOCKER_CONTEXT": "remote"})
    assert (named.host, named.origin) == ("ssh://me@build-box", "docker context 'remote' (DOCKER_CONTEXT)")
    given = resolve({**env, "DOCKER_CONTEXT": "remote", "DOCKER_HOST": "tcp://10.0.0.5:2375"})
    assert (given.host, given.origin, given.tls) == ("tcp://10.0.0.5:2375", "DOCKER_HOST", False)
    # "default" is the local engine, whichever way it is named
    sock = tmp_path / "docker.sock"
    sock.touch()
    assert resolve({**env, "DOCKER_CONTEXT": "default"}, sock).host == f"unix://{sock}"
    (config / "config.json").write_text(json.dumps({"currentContext": "default"}))
    assert resolve(env, sock) == EngineAddress(f"unix://{sock}", "the default socket")


def test_the_config_folder_is_docker_config_else_home_dot_docker(config: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    context(home / ".docker", "orbstack", "unix:///home/u/.orbstack/run/docker.sock")
    (home / ".docker" / "config.json").write_text(json.dumps({"currentContext": "orbstack"}))
    assert resolve({"HOME": str(home)}).host == "unix:///home/u/.orbstack/run/docker.sock"
    assert resolve({"HOME": str(home), "DOCKER_CONFIG": str(config)}).host == "unix:///home/u/.colima/docker.sock"


def test_no_config_no_variables_is_the_default_socket_else_the_rootless_one(tmp_path: Path) -> None:
    default, runtime = tmp_path / "var-run-docker.sock", tmp_path / "run-user-1000"
    runtime.mkdir()
    env = {"HOME": str(tmp_path / "nobody"), "XDG_RUNTIME_DIR": str(runtime)}
    assert resolve(env, default) == EngineAddress(f"unix://{default}", "the default socket")  # neither exists: the CLI's default
    (runtime / "docker.sock").touch()
    rootless = resolve(env, default)
    assert rootless.host == f"unix://{runtime}/docker.sock" and "rootless" in rootless.origin
    default.touch()
    assert resolve(env, default).host == f"unix://{default}"  # both: the system engine, as the docker CLI would
    assert resolve({"HOME": str(tmp_path / "nobody")}, default).host == f"unix://{default}"


def test_tls_from_the_variables_and_from_the_context(config: Path) -> None:
    env = {"DOCKER_CONFIG": str(config)}
    verified = resolve({**env, "DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/certs"})
    assert (verified.tls, verified.verify, verified.cert_path) == (True, True, "/certs")
    assert verified.cli_env() == {"DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS": "1", "DOCKER_TLS_VERIFY": "1",
                                  "DOCKER_CERT_PATH": "/certs"}
    defaulted = resolve({**env, "DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS_VERIFY": "1"})
    assert defaulted.cert_path == str(config)  # the certificates of the docker config folder, as the SDK and CLI look
    assert resolve({**env, "DOCKER_HOST": "tcp://h:2375", "DOCKER_TLS_VERIFY": ""}).cli_env() == {"DOCKER_HOST": "tcp://h:2375"}

    context(config, "secure", "tcp://h:2376", tls_files=True)
    secure = resolve({**env, "DOCKER_CONTEXT": "secure"})
    digest = hashlib.sha256(b"secure").hexdigest()
    assert (secure.tls, secure.verify, secure.cert_path) == (True, True, str(config / "contexts" / "tls" / digest / "docker"))
    context(config, "lax", "tcp://h:2376", skip_verify=True)
    lax = resolve({**env, "DOCKER_CONTEXT": "lax"})
    assert (lax.tls, lax.verify, lax.cert_path) == (True, False, None)
    assert "DOCKER_TLS_VERIFY" not in lax.cli_env() and lax.cli_env()["DOCKER_TLS"] == "1"


def test_a_missing_context_is_an_error_saying_which_and_who_named_it(config: Path) -> None:
    with pytest.raises(SpecError) as caught:
        resolve({"DOCKER_CONFIG": str(config), "DOCKER_CONTEXT": "gone"})
    assert "docker context 'gone' (named by DOCKER_CONTEXT) does not exist" in str(caught.value)
    assert "docker context ls" in str(caught.value)
    (config / "config.json").write_text(json.dumps({"currentContext": "deleted"}))
    with pytest.raises(SpecError, match=r"'deleted' \(named by .*config.json\) does not exist"):
        resolve({"DOCKER_CONFIG": str(config)})


@pytest.mark.parametrize("text,message", [
    ('{"Name": "bad",\n "Endpoints": ', "meta.json:2: error: not valid JSON"),
    ("[]", "meta.json: error: docker context 'bad' has no Endpoints.docker.Host"),
    ('{"Endpoints": {"docker": {"SkipTLSVerify": true}}}', "meta.json: error: docker context 'bad' has no Endpoints.docker.Host"),
    ('{"Endpoints": {"docker": {"Host": 5}}}', "has no Endpoints.docker.Host"),
])
def test_malformed_context_metadata_names_the_file(config: Path, text: str, message: str) -> None:
    context(config, "bad", "unix:///x").write_text(text)
    with pytest.raises(SpecError) as caught:
        resolve({"DOCKER_CONFIG": str(config), "DOCKER_CONTEXT": "bad"})
    assert message in str(caught.value)


@pytest.mark.parametrize("text,message", [
    ("{not json", "config.json:1: error: not valid JSON"),
    ('{"currentContext": ["a"]}', 'config.json: error: currentContext must be a context name, not ["a"]'),
    ("[]", "config.json: error: the docker config is not a JSON object"),
])
def test_a_malformed_docker_config_names_the_file(config: Path, text: str, message: str) -> None:
    (config / "config.json").write_text(text)
    with pytest.raises(SpecError) as caught:
        resolve({"DOCKER_CONFIG": str(config)})
    assert message in str(caught.value)
    assert resolve({"DOCKER_CONFIG": str(config), "DOCKER_HOST": "unix:///s"}).host == "unix:///s"  # not read then


def test_children_get_what_they_need_and_the_engine_spelled_out(config: Path) -> None:
    env = {"PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_ALL": "C", "https_proxy": "http://p:3128",
           "NO_PROXY": "localhost", "TMPDIR": "/scratch", "DOCKER_CONFIG": str(config), "DOCKER_CONTEXT": "remote",
           "BUILDX_BUILDER": "elsewhere", "AWS_SECRET_ACCESS_KEY": "s", "STACKS_REGISTRY_PASSWORD": "pw",
           "SSH_AUTH_SOCK": "/run/agent"}
    child = child_environment(env, engine_address(env))
    assert child == {"PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_ALL": "C", "https_proxy": "http://p:3128",
                     "NO_PROXY": "localhost", "TMPDIR": "/scratch", "DOCKER_CONFIG": str(config),
                     "SSH_AUTH_SOCK": "/run/agent", "DOCKER_HOST": "ssh://me@build-box"}
    # a DOCKER_HOST of the caller's environment never outlives the resolution: the child gets the resolved one
    assert child_environment({**env, "DOCKER_HOST": "tcp://a:1"}, EngineAddress("unix:///b"))["DOCKER_HOST"] == "unix:///b"


def test_testinfra_runs_its_commands_in_the_container_it_is_given() -> None:
    """No `docker exec` child that would find its own engine: testinfra's commands go through Container.exec."""
    from builder.adapters.containers import ExecResult
    from builder.check.declarative import host_for

    class Recording:
        name = "stacks-smoke-x"

        def __init__(self) -> None:
            self.calls: list[tuple[list[str], str | None]] = []

        def exec(self, command: list[str], timeout: float | None = None, *, user: str | None = None,
                 split: bool = False, detach: bool = False) -> ExecResult:
            self.calls.append((command, user))
            return ExecResult(0, b"jovyan\n", b"")

    container = Recording()
    host = host_for(container, "jovyan")  # type: ignore[arg-type]
    assert host.check_output("whoami") == "jovyan"
    assert container.calls[-1] == (["/bin/sh", "-c", "whoami"], "jovyan")
    assert host.backend.get_connection_type() == "docker"


def test_a_receipt_is_named_by_the_engine_it_vouches_for(config: Path) -> None:
    """`docker context use` changes no variable, but the same build on another engine is not answered from a receipt."""
    from builder.app import noop
    from builder.cache.receipt import invocation_key

    env = {"DOCKER_CONFIG": str(config)}
    before = invocation_key(noop._invocation(["build"], engine_address(env).host), env)
    (config / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    assert invocation_key(noop._invocation(["build"], engine_address(env).host), env) != before
