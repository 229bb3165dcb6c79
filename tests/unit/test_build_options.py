"""Per-run build settings: merged from CLI, environment and stacks.yaml; secrets never become build args."""
from __future__ import annotations

from pathlib import Path

import click
import pytest

from builder.build.images import BuildOptions, _build_environment, ca_bundle
from builder.plan.render import CA_ARGS, CA_PATH, CA_SECRET
from builder.app.commands import check_options


def test_mirror_urls_with_credentials_are_refused() -> None:
    with pytest.raises(click.ClickException, match="pip_index_url contains credentials"):
        check_options(BuildOptions(pip_index_url="https://user:token@pypi.example.com/simple"), "buildkit")
    with pytest.raises(click.ClickException, match="npm_registry contains credentials"):
        check_options(BuildOptions(npm_registry="https://me:pw@npm.example.com/"), "buildkit")
    check_options(BuildOptions(pip_index_url="https://pypi.example.com/simple"), "buildkit")


def test_classic_builder_refuses_ca_certificates(tmp_path: Path) -> None:
    cert = tmp_path / "ca.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(click.ClickException, match="need BuildKit"):
        check_options(BuildOptions(ca_certificates=(cert,)), "classic")
    check_options(BuildOptions(ca_certificates=(cert,)), "buildkit")


def test_ca_certificates_become_a_secret_and_path_only_build_args(tmp_path: Path) -> None:
    cert = tmp_path / "corp.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nCORPMARKER\n-----END CERTIFICATE-----\n")
    secrets, args = _build_environment(BuildOptions(out_dir=tmp_path / "out", ca_certificates=(cert,),
                                                    pip_index_url="https://mirror/simple"))
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
    secrets, args = _build_environment(BuildOptions(out_dir=tmp_path))
    assert secrets == {} and args == {}
