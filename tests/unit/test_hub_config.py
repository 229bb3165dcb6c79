"""`stacks hub-config`: which images are offered under which reference, and what the generated files say.

The generated jupyterhub_config.py is executed here the way JupyterHub runs it
(with a stand-in for traitlets' config object), so the tests read the values
JupyterHub would see rather than the text.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from builder.errors import SpecError
from builder.outputs.hub_config import (COMPOSE_FILE, CONFIG_FILE, ENV_FILE, HUB_LABEL, compose_document, compose_text, config_text, env_text,
                                hub_plan, manifest_refs, version_warnings)
from builder.specification.models import HubSettings

from .helpers import plan_of
from .test_cli import run

FRAGMENTS = {
    "jupyterhub-singleuser": {"meta": {"params": {"version": {"type": "string", "default": "6.1.1"}}},
                              "body": "RUN echo {{ version }}\n"},
    "jupyterhub-hub": {
        "meta": {"params": {"version": {"type": "string", "default": "6.1.1"}, "port": {"type": "integer", "default": 8000},
                            "config": {"type": "string", "default": "/srv/jupyterhub/jupyterhub_config.py"},
                            "data": {"type": "string", "default": "/srv/jupyterhub/data"}}},
        "body": "RUN echo {{ version }} {{ port }} {{ config }} {{ data }}\n",
    },
}
STACK = """\
    version: 1
    axes:
      os: [bookworm, trixie]
    bases:
      debian: {pull: "debian:12"}
    images:
      root: {base: debian, axes: [os], fragments: [os]}
      single: {parent: root, fragments: [jupyterhub-singleuser]}
      old:
        parent: root
        exclude: [{os: trixie}]
        fragments: [{use: jupyterhub-singleuser, params: {version: "5.2.1"}}]
      plain: {parent: root, fragments: [tool]}
      hub: {parent: root, exclude: [{os: trixie}], fragments: [jupyterhub-hub]}
    """


def make(stack, hub: str = "") -> Path:
    return stack(textwrap.dedent(STACK) + textwrap.dedent(hub), FRAGMENTS)


def settings_of(path: Path) -> HubSettings:
    return plan_of(path).spec.model.hub or HubSettings()


class Section:
    """Enough of traitlets' Config for `c.Class.trait = value` and reading it back."""

    def __init__(self) -> None:
        self.__dict__["values"] = {}

    def __getattr__(self, name: str) -> Any:
        return self.values.setdefault(name, Section())

    def __setattr__(self, name: str, value: Any) -> None:
        self.values[name] = value


def load_config(text: str, env: dict[str, str], monkeypatch) -> Section:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = Section()
    exec(compile(text, CONFIG_FILE, "exec"), {"get_config": lambda: config})
    return config


def test_default_offer_is_every_built_image_with_the_single_user_fragment(stack) -> None:
    path = make(stack)
    plan = plan_of(path)
    hub = hub_plan(plan, settings_of(path), {}, built=lambda ref: "trixie" not in ref)
    assert [(i.name, i.ref) for i in hub.images] == [
        ("single-bookworm", plan["single-bookworm"].local_ref), ("old-bookworm", plan["old-bookworm"].local_ref)]
    assert hub.hub_ref == plan["hub-bookworm"].local_ref and hub.default == "single-bookworm"
    assert hub.hub_params["port"] == 8000 and hub.hub_params["data"] == "/srv/jupyterhub/data"
    without_engine = hub_plan(plan, settings_of(path), {})
    assert [i.name for i in without_engine.images] == ["single-bookworm", "single-trixie", "old-bookworm"]


def test_nothing_built_says_what_to_build(stack) -> None:
    path = make(stack)
    with pytest.raises(SpecError) as info:
        hub_plan(plan_of(path), settings_of(path), {}, built=lambda ref: False)
    messages = {p.message: p.hint for p in info.value.problems}
    assert messages["no single-user image to offer: none of the images with jupyterhub-singleuser is built"] == \
        "run `stacks build single old`"
    assert "run `stacks build hub-bookworm` first" in messages.values()


def test_offer_takes_definitions_and_variants_and_locates_mistakes(stack) -> None:
    path = make(stack, """\
        hub:
          offer: [single-trixie, old]
          default: old-bookworm
        """)
    hub = hub_plan(plan_of(path), settings_of(path), {})
    assert [i.name for i in hub.images] == ["single-trixie", "old-bookworm"] and hub.default == "old-bookworm"

    path = make(stack, """\
        hub:
          image: single
          offer:
            - plian
            - plain
          default: single-bookworm
        """)
    with pytest.raises(SpecError) as info:
        hub_plan(plan_of(path), settings_of(path), {})
    problems = {p.message: p for p in info.value.problems}
    typo = problems["hub.offer.0: no image or variant named 'plian'"]
    assert (typo.location.line, typo.hint) == (18, "did you mean 'plain'?")
    assert "hub.offer: 'plain-bookworm' cannot be spawned: it has no jupyterhub-singleuser fragment" in problems
    assert "hub.image: 'single-bookworm' has no jupyterhub-hub fragment in its chain" in problems
    assert problems["hub.default: 'single-bookworm' is not offered"].location.line == 20


def test_pushed_images_are_offered_by_immutable_registry_tag_with_the_digest_beside(stack, tmp_path) -> None:
    manifest = tmp_path / "push-manifest.json"
    manifest.write_text(json.dumps({"registry": "registry.example.org", "images": [
        {"image": "single-bookworm", "repository": "registry.example.org/lab/single",
         "tags": ["bookworm", "bookworm-0a1b2c3"], "immutable": ["bookworm-0a1b2c3"], "digest": "sha256:" + "ab" * 32,
         "tag_status": {"bookworm": "pushed", "bookworm-0a1b2c3": "unchanged"}},
        {"image": "single-trixie", "repository": "registry.example.org/lab/single", "tags": ["trixie"], "immutable": [],
         "digest": None, "tag_status": {"trixie": "failed"}},
    ]}))
    path = make(stack)
    plan = plan_of(path)
    refs = manifest_refs(manifest)
    assert refs == {"single-bookworm": ("registry.example.org/lab/single:bookworm-0a1b2c3", "sha256:" + "ab" * 32)}
    hub = hub_plan(plan, settings_of(path), refs, built=lambda ref: ref == plan["hub-bookworm"].local_ref)
    assert [(i.name, i.ref) for i in hub.images] == [("single-bookworm", "registry.example.org/lab/single:bookworm-0a1b2c3")]
    assert f"'registry.example.org/lab/single:bookworm-0a1b2c3',  # sha256:{'ab' * 32}" in config_text(hub)


def test_generated_config_gives_dockerspawner_images_volumes_network_and_admins(stack, monkeypatch) -> None:
    path = make(stack, """\
        hub:
          name: lab-hub
          network: lab-net
          prefix: lab
          volume: "lab-home-{username}"
          admins: [zoe, ada]
          mem_limit: 4G
          cpu_limit: 1.5
          authenticator: {kind: github, organizations: [example-org], allowed_users: [guest]}
          public_url: https://hub.example.org/
        """)
    plan = plan_of(path)
    hub = hub_plan(plan, settings_of(path), {})
    c = load_config(config_text(hub), {"OAUTH_CLIENT_ID": "id-1", "OAUTH_CLIENT_SECRET": "s3cret"}, monkeypatch)
    spawner = c.DockerSpawner.values
    assert spawner["allowed_images"] == {i.name: plan[i.name].local_ref for i in hub.images}
    assert spawner["image"] == plan["single-bookworm"].local_ref
    assert spawner["volumes"] == {"lab-home-{username}": "/home/jovyan/work"} and spawner["notebook_dir"] == "/home/jovyan/work"
    assert (spawner["network_name"], spawner["use_internal_ip"], spawner["prefix"], spawner["remove"]) == ("lab-net", True, "lab", True)
    # the volume is the working directory too: a kernel started without a path (POST /api/kernels) writes into it
    assert spawner["extra_create_kwargs"] == {"user": "root", "working_dir": "/home/jovyan/work", "labels": {HUB_LABEL: "lab-hub"}}
    assert spawner["environment"] == {"CHOWN_EXTRA": "/home/jovyan/work"}
    assert (spawner["mem_limit"], spawner["cpu_limit"]) == ("4G", 1.5) and "extra_host_config" not in spawner
    assert c.JupyterHub.values["hub_connect_url"] == "http://lab-hub:8081"
    assert c.JupyterHub.values["cleanup_servers"] is False  # a Hub restart must not stop everyone's server
    assert c.JupyterHub.values["db_url"] == "sqlite:////srv/jupyterhub/data/jupyterhub.sqlite"
    assert c.JupyterHub.values["authenticator_class"] == "oauthenticator.github.GitHubOAuthenticator"
    github = c.GitHubOAuthenticator.values
    assert (github["client_id"], github["client_secret"]) == ("id-1", "s3cret")
    assert github["oauth_callback_url"] == "https://hub.example.org/hub/oauth_callback"
    assert github["allowed_organizations"] == {"example-org"}
    assert github["scope"] == ["read:org"]  # private organisation membership is invisible without it
    assert c.Authenticator.values == {"admin_users": {"ada", "zoe"}, "allowed_users": {"guest"}, "allow_all": False}


def test_secrets_come_from_the_environment_and_are_never_written(stack, monkeypatch) -> None:
    path = make(stack, "hub: {authenticator: {kind: gitlab, url: 'https://gitlab.example.org', groups: [lab]}}\n")
    hub = hub_plan(plan_of(path), settings_of(path), {})
    text = config_text(hub)
    monkeypatch.delenv("OAUTH_CLIENT_SECRET", raising=False)
    with pytest.raises(SystemExit, match=r"OAUTH_CLIENT_SECRET is not set; put it in the \.env file beside compose\.yaml"):
        load_config(text, {"OAUTH_CLIENT_ID": "id", "OAUTH_CALLBACK_URL": "https://h/hub/oauth_callback"}, monkeypatch)
    c = load_config(text, {"OAUTH_CLIENT_SECRET": "s3cret"}, monkeypatch)
    assert c.GitLabOAuthenticator.values["gitlab_url"] == "https://gitlab.example.org"
    assert c.GitLabOAuthenticator.values["allowed_gitlab_groups"] == {"lab"}
    assert c.GitLabOAuthenticator.values["scope"] == ["read_api"]  # the group membership API needs it
    assert c.GitLabOAuthenticator.values["oauth_callback_url"] == "https://h/hub/oauth_callback"
    assert "s3cret" not in text and "s3cret" not in env_text(hub) + json.dumps(compose_document(hub))
    assert text == config_text(hub_plan(plan_of(path), settings_of(path), {}))  # the same input, the same file


def test_generic_oauth_needs_its_endpoints(stack, monkeypatch) -> None:
    path = make(stack, "hub:\n  authenticator: {kind: generic, token_url: 'https://sso/token'}\n")
    with pytest.raises(SpecError) as info:
        plan_of(path)
    assert "the generic authenticator needs authorize_url, userdata_url" in str(info.value)
    path = make(stack, """\
        hub:
          authenticator:
            kind: generic
            authorize_url: https://sso/auth
            token_url: https://sso/token
            userdata_url: https://sso/userinfo
            groups: [staff]
            groups_key: oauth_user.groups
            scope: [openid, profile]
            login_service: Example SSO
        """)
    env = {"OAUTH_CLIENT_ID": "i", "OAUTH_CLIENT_SECRET": "s", "OAUTH_CALLBACK_URL": "https://h/hub/oauth_callback"}
    c = load_config(config_text(hub_plan(plan_of(path), settings_of(path), {})), env, monkeypatch)
    generic = c.GenericOAuthenticator.values
    assert generic["userdata_url"] == "https://sso/userinfo" and generic["username_claim"] == "preferred_username"
    assert (generic["allowed_groups"], generic["auth_state_groups_key"]) == ({"staff"}, "oauth_user.groups")
    assert (generic["scope"], generic["login_service"]) == (["openid", "profile"], "Example SSO")


def test_gpu_device_requests_for_every_offered_image_or_the_chosen_ones(stack, monkeypatch) -> None:
    env = {"JUPYTERHUB_DUMMY_PASSWORD": "password123"}
    path = make(stack, "hub: {authenticator: {kind: dummy}, gpu: {count: 2, driver: nvidia, capabilities: [gpu, utility]}}\n")
    c = load_config(config_text(hub_plan(plan_of(path), settings_of(path), {})), env, monkeypatch)
    wanted = {"device_requests": [{"driver": "nvidia", "count": 2, "capabilities": [["gpu", "utility"]]}]}
    assert c.DockerSpawner.values["extra_host_config"] == wanted

    path = make(stack, "hub: {authenticator: {kind: dummy}, gpu: {images: [single-trixie]}}\n")
    c = load_config(config_text(hub_plan(plan_of(path), settings_of(path), {})), env, monkeypatch)
    host_config = c.DockerSpawner.values["extra_host_config"]
    all_gpus = {"device_requests": [{"driver": "", "count": -1, "capabilities": [["gpu"]]}]}
    assert host_config(SimpleNamespace(user_options={"image": "single-trixie"})) == all_gpus
    assert host_config(SimpleNamespace(user_options={"image": "single-bookworm"})) == {}
    assert host_config(SimpleNamespace(user_options={})) == {}  # the default image has none
    assert c.SharedPasswordAuthenticator.values["user_password"] == "password123"

    path = make(stack, "hub: {offer: [single-bookworm], gpu: {images: [old]}}\n")
    with pytest.raises(SpecError, match=r"hub\.gpu\.images: 'old-bookworm' is not offered"):
        hub_plan(plan_of(path), settings_of(path), {})


def test_compose_runs_the_hub_with_the_socket_its_config_state_and_network(stack) -> None:
    path = make(stack, "hub: {name: lab-hub, network: lab-net, address: 127.0.0.1, port: 8443}\n")
    plan = plan_of(path)
    hub = hub_plan(plan, settings_of(path), {}, docker_gid=997)
    document = compose_document(hub)
    service = document["services"]["hub"]
    assert service["image"] == plan["hub-bookworm"].local_ref and service["container_name"] == "lab-hub"
    assert service["volumes"] == ["/var/run/docker.sock:/var/run/docker.sock",
                                  "./jupyterhub_config.py:/srv/jupyterhub/jupyterhub_config.py:ro",
                                  "lab-hub-data:/srv/jupyterhub/data"]
    assert service["group_add"] == ["${DOCKER_GID:-997}"] and service["ports"] == ["127.0.0.1:8443:8000"]
    assert service["networks"] == ["lab-net"] and document["networks"] == {"lab-net": {"name": "lab-net"}}
    assert document["volumes"] == {"lab-hub-data": {"name": "lab-hub-data"}}
    assert service["environment"] == {"OAUTH_CLIENT_ID": "${OAUTH_CLIENT_ID:?set OAUTH_CLIENT_ID in .env}",
                                      "OAUTH_CLIENT_SECRET": "${OAUTH_CLIENT_SECRET:?set OAUTH_CLIENT_SECRET in .env}",
                                      "OAUTH_CALLBACK_URL": "${OAUTH_CALLBACK_URL:?set OAUTH_CALLBACK_URL in .env}"}
    assert "DOCKER_GID=997\n" in env_text(hub) and "\nOAUTH_CLIENT_SECRET=\n" in env_text(hub)


def test_major_version_mismatch_and_closed_logins_are_warned_about(stack) -> None:
    path = make(stack)
    plan = plan_of(path)
    warnings = version_warnings(plan, hub_plan(plan, settings_of(path), {}))
    assert warnings == ["old-bookworm has jupyterhub 5.2.1, the Hub 6.1.1: use the same major version",
                        "hub.authenticator allows nobody but the admins: set allowed_users, organizations, groups or allow_all"]


def test_command_writes_config_compose_and_env_example(stack, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("builder.app.outputs_cmd._engine_check", lambda address, say: None)
    path = make(stack, "hub: {offer: [single], authenticator: {kind: github, allow_all: true}}\n")
    out = tmp_path / "hub"
    code, stdout, stderr = run(capsys, "hub-config", "-f", str(path), "--out", str(out))
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir() if p.name != ".stacks-output") == sorted([CONFIG_FILE, COMPOSE_FILE, ENV_FILE])
    assert "single-bookworm -> stacks/single-bookworm:" in stdout and "(default)" in stdout
    assert yaml.safe_load((out / COMPOSE_FILE).read_text())["services"]["hub"]["container_name"] == "jupyterhub"
    compile((out / CONFIG_FILE).read_text(), CONFIG_FILE, "exec")

    code, _, stderr = run(capsys, "hub-config", "-f", str(make(stack, "hub: {image: hubb}\n")), "--out", str(out))
    assert code == 2 and "error: hub.image: no image or variant named 'hubb'" in stderr and "did you mean 'hub'?" in stderr


def test_dummy_admin_password_shorter_than_32_characters_is_refused_up_front(stack, tmp_path, capsys, monkeypatch) -> None:
    """JupyterHub's SharedPasswordAuthenticator stops the Hub on a short admin password: under compose's
    `restart: unless-stopped` that is a crash loop, so hub-config and the generated config refuse it first."""
    monkeypatch.setattr("builder.app.outputs_cmd._engine_check", lambda address, say: None)
    monkeypatch.delenv("JUPYTERHUB_DUMMY_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("JUPYTERHUB_DUMMY_PASSWORD", raising=False)
    path = make(stack, "hub: {offer: [single], authenticator: {kind: dummy}}\n")
    out = tmp_path / "hub"
    monkeypatch.setenv("JUPYTERHUB_DUMMY_ADMIN_PASSWORD", "a" * 31)
    code, _, stderr = run(capsys, "hub-config", "-f", str(path), "--out", str(out))
    assert code == 2 and "JUPYTERHUB_DUMMY_ADMIN_PASSWORD has 31 characters; the Hub needs 32 or more" in stderr, stderr
    assert not (out / CONFIG_FILE).exists()

    monkeypatch.delenv("JUPYTERHUB_DUMMY_ADMIN_PASSWORD")
    out.mkdir()
    (out / ".env").write_text("JUPYTERHUB_DUMMY_PASSWORD=shared-pw\nJUPYTERHUB_DUMMY_ADMIN_PASSWORD='short'\n")
    code, _, stderr = run(capsys, "hub-config", "-f", str(path), "--out", str(out))
    assert code == 2 and "JUPYTERHUB_DUMMY_ADMIN_PASSWORD has 5 characters" in stderr, stderr

    (out / ".env").write_text("JUPYTERHUB_DUMMY_PASSWORD=shared-pw\nJUPYTERHUB_DUMMY_ADMIN_PASSWORD=" + "b" * 32 + "\n")
    code, _, stderr = run(capsys, "hub-config", "-f", str(path), "--out", str(out))
    assert code == 0, stderr
    assert "# optional: the admins' password, 32 characters or more" in (out / ENV_FILE).read_text()

    text = (out / CONFIG_FILE).read_text()  # and the Hub itself, given a short one later, says why it stops
    with pytest.raises(SystemExit, match="JUPYTERHUB_DUMMY_ADMIN_PASSWORD must have 32 characters or more"):
        load_config(text, {"JUPYTERHUB_DUMMY_PASSWORD": "shared-pw", "JUPYTERHUB_DUMMY_ADMIN_PASSWORD": "c" * 31}, monkeypatch)
    c = load_config(text, {"JUPYTERHUB_DUMMY_PASSWORD": "shared-pw", "JUPYTERHUB_DUMMY_ADMIN_PASSWORD": "c" * 32}, monkeypatch)
    assert c.SharedPasswordAuthenticator.values["admin_password"] == "c" * 32
    monkeypatch.delenv("JUPYTERHUB_DUMMY_ADMIN_PASSWORD")
    c = load_config(text, {"JUPYTERHUB_DUMMY_PASSWORD": "shared-pw"}, monkeypatch)  # no admin password: fine
    assert c.SharedPasswordAuthenticator.values["admin_password"] == ""


HOSTILE = [
    "x'; import os; os.environ['PWNED'] = '1'; '",
    'x"; import os; os.environ["PWNED"] = "1"; "',
    "x\nimport os; os.environ['PWNED'] = '1'\n#",
    "x\r\nos.environ['PWNED'] = '1' #\\",
    "x\\",
    "x}}{{ y }}{% raw %}\u2028os.environ['PWNED'] = '1'\x0c\x00",
]


@pytest.mark.parametrize("evil", HOSTILE)
def test_hostile_values_stay_values_in_the_generated_files(stack, monkeypatch, evil: str) -> None:
    """stacks.yaml, a fragment and a push manifest are untrusted: whatever they hold reaches the generated
    files as data (a string the Hub reads back as it was written, or comment text), never as code or lines."""
    import dataclasses

    path = make(stack, "hub: {authenticator: {kind: generic, authorize_url: a, token_url: t, userdata_url: u}, gpu: {images: [single-bookworm]}}\n")
    hub = hub_plan(plan_of(path), settings_of(path), {})
    settings = hub.settings.model_copy(update={
        "volume": evil, "mount": "/" + evil, "public_url": evil, "admins": [evil], "mem_limit": evil, "name": evil,
        "authenticator": hub.settings.authenticator.model_copy(update={
            "allowed_users": [evil], "groups": [evil], "groups_key": evil, "scope": [evil], "login_service": evil,
            "authorize_url": evil, "token_url": evil, "userdata_url": evil, "username_claim": evil}),
        "gpu": hub.settings.gpu.model_copy(update={"driver": evil, "capabilities": [evil], "images": [evil]}),
    })
    images = tuple(dataclasses.replace(i, name=evil + i.name, ref=evil, digest=evil) for i in hub.images)
    hub = dataclasses.replace(hub, settings=settings, images=images, default=images[0].name, source=evil,
                              hub_params={"port": evil, "data": evil, "config": evil}, docker_gid=None)
    monkeypatch.delenv("PWNED", raising=False)
    text = config_text(hub)
    c = load_config(text, {"OAUTH_CLIENT_ID": "i", "OAUTH_CLIENT_SECRET": "s"}, monkeypatch)
    assert "PWNED" not in __import__("os").environ
    spawner, generic = c.DockerSpawner.values, c.GenericOAuthenticator.values
    assert spawner["allowed_images"] == {i.name: evil for i in images} and spawner["volumes"] == {evil: "/" + evil}
    assert spawner["extra_create_kwargs"]["labels"] == {HUB_LABEL: evil} and spawner["mem_limit"] == evil
    assert c.JupyterHub.values["bind_url"] == f"http://:{evil}" and c.JupyterHub.values["public_url"] == evil
    assert c.JupyterHub.values["db_url"] == f"sqlite:///{evil}/jupyterhub.sqlite"
    assert (generic["authorize_url"], generic["login_service"], generic["scope"]) == (evil, evil, [evil])
    assert generic["oauth_callback_url"] == evil.rstrip("/") + "/hub/oauth_callback"
    assert c.Authenticator.values["admin_users"] == {evil} and c.Authenticator.values["allowed_users"] == {evil}
    host_config = spawner["extra_host_config"]
    assert host_config(SimpleNamespace(user_options={"image": images[0].name}))["device_requests"][0]["driver"] == evil
    # comments stay on their line: the header and the digest beside each image
    lines = text.split("\n")
    assert lines[0].startswith("# jupyterhub_config.py, written by `stacks hub-config` from ")
    assert sum(line.startswith("    ") and ": " in line for line in lines[lines.index("IMAGES = {") + 1:lines.index("}")]) == len(images)

    env_lines = [line for line in env_text(hub).split("\n") if line and not line.startswith("#")]
    assert [line.split("=", 1)[0] for line in env_lines] == ["DOCKER_GID", "OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_CALLBACK_URL"]
    compose = compose_text(hub)
    assert yaml.safe_load(compose) == compose_document(hub)
    assert all(line.startswith("#") for line in compose.split("\n")[:5])


def test_the_generated_files_come_from_templates_shipped_in_the_package() -> None:
    from builder.outputs.hub_config import TEMPLATES

    assert sorted(p.name for p in TEMPLATES.glob("*.j2")) == ["compose.yaml.j2", "env.example.j2", "jupyterhub_config.py.j2"]
