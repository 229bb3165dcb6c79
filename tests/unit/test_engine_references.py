"""The engine adapter writes and pulls exactly the reference it is given (through builder.reference)."""
from __future__ import annotations

import pytest

from builder.adapters.docker import DockerEngine
from builder.reference import InvalidReference


class _Recorder:
    """Stands for the SDK's client, images and image objects: records the calls the engine makes."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.images, self.api = self, self

    def tag(self, *args) -> None:
        self.calls.append(("tag", *args))

    def pull(self, repository, tag=None, auth_config=None, platform=None):
        self.calls.append(("pull", repository, tag))

    def inspect_image(self, ref):
        return {"Id": "sha256:pulled", "RepoTags": [ref]}


@pytest.mark.parametrize("ref, name, tag", [
    ("stacks/lab:0123456789ab", "stacks/lab", "0123456789ab"),
    ("localhost:5000/cache", "localhost:5000/cache", "latest"),  # cut at the port's ':' before
    ("127.0.0.1:5000/cache:lab-x", "127.0.0.1:5000/cache", "lab-x"),
    ("docker.io/library/debian:12", "debian", "12"),
])
def test_the_engine_tags_what_the_reference_says(ref: str, name: str, tag: str) -> None:
    client = _Recorder()
    engine = DockerEngine(client, "classic", None, "test")  # type: ignore[arg-type]
    engine.tag("sha256:abc", ref)
    assert client.calls == [("tag", "sha256:abc", name, tag)]


def test_the_engine_pulls_by_digest_and_refuses_a_digest_as_a_tag() -> None:
    client = _Recorder()
    engine = DockerEngine(client, "classic", None, "test")  # type: ignore[arg-type]
    digest = "sha256:" + "a" * 64
    engine.pull(f"127.0.0.1:5000/cache@{digest}")
    engine.pull("debian")
    assert client.calls == [("pull", "127.0.0.1:5000/cache", digest), ("pull", "debian", "latest")]
    with pytest.raises(InvalidReference, match="cannot be written as a tag"):
        engine.tag("sha256:abc", f"127.0.0.1:5000/cache@{digest}")
