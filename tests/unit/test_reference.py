"""Image references: Docker's grammar, Docker Hub's names, the forms written back."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.errors import Location
from builder.reference import (
    ImageRef, InvalidReference, api_host, in_registry, is_docker_hub, is_reference, is_tag, parse_prefix, same_registry,
    split_host_port,
)

D = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("text, registry, repository, tag, digest, canonical, familiar", [
    ("ubuntu", "docker.io", "library/ubuntu", None, None, "docker.io/library/ubuntu", "ubuntu"),
    ("ubuntu:24.04", "docker.io", "library/ubuntu", "24.04", None, "docker.io/library/ubuntu:24.04", "ubuntu:24.04"),
    ("myorg/lab:py3.12", "docker.io", "myorg/lab", "py3.12", None, "docker.io/myorg/lab:py3.12", "myorg/lab:py3.12"),
    ("stacks/lab:0123456789ab", "docker.io", "stacks/lab", "0123456789ab", None, "docker.io/stacks/lab:0123456789ab",
     "stacks/lab:0123456789ab"),
    ("library/a/b", "docker.io", "library/a/b", None, None, "docker.io/library/a/b", "library/a/b"),
    ("ghcr.io/org/team/lab:v1", "ghcr.io", "org/team/lab", "v1", None, "ghcr.io/org/team/lab:v1", "ghcr.io/org/team/lab:v1"),
    ("localhost/lab", "localhost", "lab", None, None, "localhost/lab", "localhost/lab"),
    ("localhost:5000/a/b:c", "localhost:5000", "a/b", "c", None, "localhost:5000/a/b:c", "localhost:5000/a/b:c"),
    ("127.0.0.1:5000/cache:lab-" + "f" * 64, "127.0.0.1:5000", "cache", "lab-" + "f" * 64, None,
     "127.0.0.1:5000/cache:lab-" + "f" * 64, "127.0.0.1:5000/cache:lab-" + "f" * 64),
    ("[::1]:5000/x", "[::1]:5000", "x", None, None, "[::1]:5000/x", "[::1]:5000/x"),
    (f"ubuntu@{D}", "docker.io", "library/ubuntu", None, D, f"docker.io/library/ubuntu@{D}", f"ubuntu@{D}"),
    (f"reg.example.com:443/a_b/c__d/e-f/g.h--i:T_1.x-y@{D}", "reg.example.com:443", "a_b/c__d/e-f/g.h--i", "T_1.x-y", D,
     f"reg.example.com:443/a_b/c__d/e-f/g.h--i:T_1.x-y@{D}", f"reg.example.com:443/a_b/c__d/e-f/g.h--i:T_1.x-y@{D}"),
    # every name of Docker Hub is docker.io; a one-part repository there is an official image
    ("docker.io/ubuntu", "docker.io", "library/ubuntu", None, None, "docker.io/library/ubuntu", "ubuntu"),
    ("index.docker.io/myorg/lab", "docker.io", "myorg/lab", None, None, "docker.io/myorg/lab", "myorg/lab"),
    ("registry-1.docker.io/library/debian:12", "docker.io", "library/debian", "12", None, "docker.io/library/debian:12",
     "debian:12"),
    # Docker's own reading of a registry without a path: a repository with a tag
    ("localhost:5000", "docker.io", "library/localhost", "5000", None, "docker.io/library/localhost:5000", "localhost:5000"),
    ("registry/ns/lab", "docker.io", "registry/ns/lab", None, None, "docker.io/registry/ns/lab", "registry/ns/lab"),
    # a Hub namespace that looks like a registry keeps docker.io/ in the short form too
    ("docker.io/my.org/lab", "docker.io", "my.org/lab", None, None, "docker.io/my.org/lab", "docker.io/my.org/lab"),
])
def test_parse_and_format(text, registry, repository, tag, digest, canonical, familiar) -> None:
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert str(ref) == canonical and ref.familiar == familiar
    assert ImageRef.parse(str(ref)) == ref == ImageRef.parse(ref.familiar)


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("Ubuntu", "'Ubuntu' is not lowercase .* \\(repository names are lowercase\\)"),
    ("ghcr.io/Org/lab", "'Org' is not lowercase"),
    ("MyOrg/lab", "'MyOrg' is not lowercase"),
    ("ghcr.io/org//lab", "the path component '' is not"),
    ("ghcr.io/org/lab/", "the path component '' is not"),
    ("ghcr.io/-lab", "'-lab' is not"),
    ("ghcr.io/lab_", "'lab_' is not"),
    ("ghcr.io/a___b", "'a___b' is not"),
    ("ghcr.io/", "names no repository"),
    ("ubuntu:", "the tag '' is not"),
    ("ubuntu:-rc", "the tag '-rc' is not"),
    ("ubuntu:.x", "the tag '.x' is not"),
    ("ubuntu:a+b", "the tag 'a\\+b' is not"),
    ("ubuntu:" + "x" * 129, "is not letters, digits"),
    ("ubuntu@", "nothing follows '@'"),
    ("ubuntu@sha256", "'sha256' is not ALGORITHM:HEX"),
    ("ubuntu@sha256:abc", "a sha256 digest is 64 lowercase hex digits, not 'abc'"),
    ("ubuntu@sha256:" + "A" * 64, "64 lowercase hex digits"),
    ("ubuntu@md5:" + "a" * 32, "the digest algorithm 'md5' is not one of sha256, sha384, sha512"),
    ("ubuntu@sha512:" + "a" * 64, "a sha512 digest is 128"),
    ("https://ghcr.io/x", "is not"),
    ("ghcr.io:port/x", "the registry 'ghcr.io:port' is not HOST\\[:PORT\\]"),
    ("-bad.io/x", "the registry '-bad.io' is not HOST"),
    ("ubuntu 24.04", "is not"),
    ("a" * 256, "256 characters long, more than 255"),
])
def test_invalid_references_say_why(text: str, reason: str) -> None:
    with pytest.raises(InvalidReference, match=reason) as excinfo:
        ImageRef.parse(text)
    assert str(excinfo.value).startswith(f"'{text}' is not a valid image reference: ")
    assert not is_reference(text)


def test_an_error_is_a_value_error_with_a_location() -> None:
    with pytest.raises(ValueError):
        ImageRef.parse("Ubuntu")
    try:
        ImageRef.parse("Ubuntu:24.04")
    except InvalidReference as exc:
        problem = exc.problem(Location(Path("stacks.yaml"), 4, 9))
    assert str(problem).startswith("stacks.yaml:4:9: error: 'Ubuntu:24.04' is not a valid image reference")


def test_built_from_parts_is_checked_and_normalised() -> None:
    assert ImageRef("index.docker.io", "ubuntu", "24.04") == ImageRef.parse("ubuntu:24.04")
    with pytest.raises(InvalidReference, match=r"'myregistry' has no '\.' or port and is not localhost"):
        ImageRef("myregistry", "team/lab")
    with pytest.raises(InvalidReference, match="the tag"):
        ImageRef.parse("ubuntu").with_tag("bad tag")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ImageRef.parse("ubuntu").tag = "x"  # type: ignore[misc]


def test_helpers() -> None:
    ref = ImageRef.parse("ghcr.io/org/lab:v1")
    assert str(ref.with_tag("v2")) == "ghcr.io/org/lab:v2" and str(ref.with_digest(D)) == f"ghcr.io/org/lab:v1@{D}"
    assert str(ref.bare()) == ref.name == "ghcr.io/org/lab" and ref.basename == "lab"
    assert ImageRef.parse("ubuntu").api_host == "registry-1.docker.io" and ref.api_host == "ghcr.io"
    assert api_host("index.docker.io") == "registry-1.docker.io" and api_host("localhost:5000") == "localhost:5000"
    assert same_registry("docker.io", "registry-1.docker.io") and same_registry("Index.Docker.io", "docker.io")
    assert not same_registry("ghcr.io", "docker.io") and is_docker_hub("index.docker.io") and not is_docker_hub("quay.io")
    assert split_host_port("localhost:5000") == ("localhost", 5000) and split_host_port("ghcr.io") == ("ghcr.io", None)
    assert split_host_port("[::1]:5000") == ("::1", 5000) and split_host_port("[::1]") == ("::1", None)
    assert is_tag("Bookworm_1.0-rc") and not is_tag("a/b")


@pytest.mark.parametrize("text, registry, namespace", [
    ("127.0.0.1:5000", "127.0.0.1:5000", ""), ("127.0.0.1:5000/team/sub", "127.0.0.1:5000", "team/sub"),
    ("ghcr.io/org/", "ghcr.io", "org"), ("myorg", "docker.io", "myorg"), ("localhost", "localhost", ""),
    ("index.docker.io/myorg", "docker.io", "myorg"), ("docker.io", "docker.io", ""),
])
def test_prefixes(text: str, registry: str, namespace: str) -> None:
    assert parse_prefix(text) == (registry, namespace)


def test_repositories_under_a_prefix() -> None:
    assert str(in_registry("docker.io", "", "lab")) == "docker.io/library/lab"
    assert str(in_registry("docker.io", "myorg", "lab")) == "docker.io/myorg/lab"
    assert str(in_registry("r.example.com:5000", "/a/b/", "lab")) == "r.example.com:5000/a/b/lab"
    with pytest.raises(InvalidReference, match=r"^'docker\.io/My_Team/lab' is not a valid repository name: .*lowercase"):
        in_registry("docker.io", "My_Team", "lab")


# --- property: what is printed parses back to the same reference ----------------------------------------

_alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_component = st.builds(lambda parts, seps: parts[0] + "".join(s + p for s, p in zip(seps, parts[1:])),
                       st.lists(_alnum, min_size=1, max_size=3), st.lists(st.sampled_from([".", "_", "__", "-", "--"]), max_size=2))
_path = st.lists(_component, min_size=1, max_size=4).map("/".join)
_registry = st.one_of(
    st.sampled_from(["docker.io", "index.docker.io", "registry-1.docker.io", "localhost", "ghcr.io", "[::1]", "r-1.example.com"]),
    st.builds(lambda host, port: f"{host}:{port}", st.sampled_from(["localhost", "127.0.0.1", "reg.example"]),
              st.integers(1, 65535)),
)
_tag = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
_digest = st.builds(lambda algo_hex: f"{algo_hex[0]}:{algo_hex[1]}",
                    st.sampled_from([("sha256", 64), ("sha512", 128)]).flatmap(
                        lambda a: st.tuples(st.just(a[0]), st.text("0123456789abcdef", min_size=a[1], max_size=a[1]))))


PROPERTY = settings(max_examples=500, derandomize=True, database=None, deadline=None)


@PROPERTY
@given(_registry, _path, st.none() | _tag, st.none() | _digest)
def test_round_trip(registry: str, path: str, tag: str | None, digest: str | None) -> None:
    ref = ImageRef(registry, path, tag, digest)
    assert ImageRef.parse(str(ref)) == ref
    assert ImageRef.parse(ref.familiar) == ref
    assert ref.tag == tag and ref.digest == digest and ref.repository.endswith(path)


@PROPERTY
@given(st.text("aZ09.:/@_-[]", max_size=40) | st.text(max_size=20))
def test_any_text_parses_or_says_why(text: str) -> None:
    try:
        ref = ImageRef.parse(text)
    except InvalidReference as exc:
        assert str(exc).startswith(f"'{text}' is not a valid image reference: ")
        return
    assert ImageRef.parse(str(ref)) == ref == ImageRef.parse(ref.familiar)
