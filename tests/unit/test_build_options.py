"""Per-run site settings: merged from CLI, environment and stacks.yaml; secrets never become build args."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from builder.app.workspace import Workspace
from builder.building.site import Site, SiteError, ca_bundle
from builder.plan.render import CA_ARGS, CA_PATH, CA_SECRET

from .helpers import plan_of

NO_GPU = SimpleNamespace(containers=SimpleNamespace(runtimes=lambda: {"runc": {}}))  # an engine without the nvidia runtime


def test_mirror_urls_with_credentials_are_refused() -> None:
    with pytest.raises(SiteError, match="pip_index_url contains credentials"):
        Site(pip_index_url="https://user:token@pypi.example.com/simple").check("buildkit")
    with pytest.raises(SiteError, match="npm_registry contains credentials"):
        Site(npm_registry="https://me:pw@npm.example.com/").check("buildkit")
    Site(pip_index_url="https://pypi.example.com/simple").check("buildkit")


def test_classic_builder_refuses_ca_certificates(tmp_path: Path) -> None:
    cert = tmp_path / "ca.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(SiteError, match="need BuildKit"):
        Site(ca_certificates=(cert,)).check("classic")
    Site(ca_certificates=(cert,)).check("buildkit")


def test_missing_ca_certificate_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(SiteError, match=r"not found: .*gone\.pem"):
        Site(ca_certificates=(tmp_path / "gone.pem",)).check("buildkit")


def test_ca_certificates_become_a_secret_and_path_only_build_args(tmp_path: Path) -> None:
    cert = tmp_path / "corp.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nCORPMARKER\n-----END CERTIFICATE-----\n")
    secrets, args = Site(ca_certificates=(cert,), pip_index_url="https://mirror/simple").build_environment(tmp_path / "out")
    assert set(secrets) == {CA_SECRET}
    assert b"CORPMARKER" in secrets[CA_SECRET].read_bytes()
    assert {args[name] for name in CA_ARGS} == {CA_PATH}
    assert args["PIP_INDEX_URL"] == "https://mirror/simple"
    assert not any("CORPMARKER" in value for value in args.values())


def test_ca_bundle_keeps_public_roots_and_adds_extras(tmp_path: Path) -> None:
    cert = tmp_path / "corp.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nCORPMARKER\n-----END CERTIFICATE-----\n")
    bundle = ca_bundle((cert,))
    assert bundle.count(b"BEGIN CERTIFICATE") > 10  # the public roots are still trusted
    assert bundle.rstrip().endswith(b"-----END CERTIFICATE-----") and b"CORPMARKER" in bundle


def test_no_ca_means_no_secret_and_no_ca_args(tmp_path: Path) -> None:
    secrets, args = Site().build_environment(tmp_path)
    assert secrets == {} and args == {}


def test_site_settings_precedence_cli_then_environment_then_stacks_yaml(stack) -> None:
    path = stack("""
        settings:
          build: {pip_index_url: "https://yaml/simple", npm_registry: "https://yaml-npm/", ca_certificates: [yaml.pem]}
        bases:
          local: {bootstrap: {suite: bookworm}}
        images:
          core: {base: local, fragments: [os]}
    """)
    plan = plan_of(path)
    env = {"STACKS_PIP_INDEX_URL": "https://env/simple", "STACKS_CA_CERTS": "/env/a.pem:/env/b.pem"}
    site = Workspace(path, env=env).site(plan, (Path("/cli.pem"),))
    assert site.pip_index_url == "https://env/simple" and site.npm_registry == "https://yaml-npm/"
    assert site.ca_certificates == (Path("/cli.pem"), Path("/env/a.pem"), Path("/env/b.pem"), path.parent / "yaml.pem")


def test_the_workspace_reads_only_its_snapshot_of_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STACKS_HARDWARE", "gpu")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "live"))
    ws = Workspace(tmp_path / "stacks.yaml", env={"XDG_CACHE_HOME": str(tmp_path / "snap"), "STACKS_PUSH_ATTEMPTS": "7"})
    assert ws.check_options(NO_GPU).hardware == frozenset() and ws.check_options(NO_GPU).out_dir == Path("build")
    assert ws.cache_dir == tmp_path / "snap" / "stacks"
    assert ws.retry_policy().attempts == 7
    forced = Workspace(tmp_path, out=tmp_path / "o", env={"STACKS_HARDWARE": "gpu, ", "STACKS_CHROMIUM": "/opt/chrome"})
    options = forced.check_options(NO_GPU)
    assert options.hardware == frozenset({"gpu"}) and options.chromium == "/opt/chrome" and options.out_dir == tmp_path / "o"
