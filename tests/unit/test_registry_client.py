"""The registry HTTP client against a scripted transport: manifests, platforms, Basic and Bearer logins, errors."""
from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
import requests
from requests.adapters import BaseAdapter

from builder.adapters.credentials import Credentials
from builder.adapters.registry import DeleteRefused, Registry, RegistryError

IMAGE = "application/vnd.docker.distribution.manifest.v2+json"
INDEX = "application/vnd.oci.image.index.v1+json"
Handler = Callable[[requests.PreparedRequest], tuple[int, dict[str, str], bytes]]


class Scripted(BaseAdapter):
    """A transport that answers from a function and records every request."""

    def __init__(self, handler: Handler):
        super().__init__()
        self.handler, self.seen = handler, []

    def send(self, request, **kwargs):
        self.seen.append(request)
        status, headers, body = self.handler(request)
        response = requests.Response()
        response.status_code, response._content, response.url = status, body, request.url
        response.headers.update(headers)
        response.request = request
        return response

    def close(self) -> None:
        pass


def client(handler: Handler, credentials: Credentials | None = None, host: str = "127.0.0.1:5000") -> tuple[Registry, Scripted]:
    registry = Registry(host, credentials)
    transport = Scripted(handler)
    registry._session.mount("http://", transport)
    registry._session.mount("https://", transport)
    return registry, transport


def manifest(config: str = "sha256:cfg", layers: tuple[int, ...] = (10, 20)) -> bytes:
    return json.dumps({"mediaType": IMAGE, "config": {"digest": config, "size": 5},
                       "layers": [{"digest": f"sha256:l{i}", "size": s} for i, s in enumerate(layers)]}).encode()


def test_a_tag_gives_its_manifest_digest_config_and_download_size() -> None:
    registry, seen = client(lambda r: (200, {"Docker-Content-Digest": "sha256:m1"}, manifest()))
    found = registry.manifest("ns/lab", "latest")
    assert found is not None and (found.digest, found.config, found.size) == ("sha256:m1", "sha256:cfg", 35)
    assert seen.seen[0].url == "http://127.0.0.1:5000/v2/ns/lab/manifests/latest"
    assert IMAGE in seen.seen[0].headers["Accept"]


def test_a_missing_tag_is_none_and_the_digest_is_computed_when_not_sent() -> None:
    registry, _ = client(lambda r: (404, {}, b'{"errors": [{"code": "MANIFEST_UNKNOWN"}]}'))
    assert registry.manifest("ns/lab", "nope") is None
    import hashlib

    body = manifest()
    registry, _ = client(lambda r: (200, {}, body))
    assert registry.manifest("ns/lab", "x").digest == "sha256:" + hashlib.sha256(body).hexdigest()


def test_an_index_resolves_to_the_platform_asked_for() -> None:
    index = json.dumps({"mediaType": INDEX, "manifests": [
        {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}},
        {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()

    def handler(request):
        if request.url.endswith("/latest"):
            return 200, {"Docker-Content-Digest": "sha256:idx"}, index
        config = "sha256:cfg-arm" if request.url.endswith("sha256:arm") else "sha256:cfg-amd"
        return 200, {}, manifest(config)

    registry, _ = client(handler)
    assert registry.manifest("ns/lab", "latest", ("linux", "arm64")).config == "sha256:cfg-arm"
    found = registry.manifest("ns/lab", "latest")
    assert (found.digest, found.config) == ("sha256:idx", "sha256:cfg-amd")
    assert registry.manifest("ns/lab", "latest", ("linux", "s390x")).config is None


def test_basic_challenge_sends_the_credentials_once_asked() -> None:
    def handler(request):
        if "Authorization" not in request.headers:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
        assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"bot:pw").decode()
        return 200, {}, manifest()

    registry, transport = client(handler, Credentials("bot", "pw", source="test"))
    assert registry.manifest("ns/lab", "latest") is not None and len(transport.seen) == 2


def test_basic_challenge_without_credentials_says_how_to_log_in() -> None:
    registry, _ = client(lambda r: (401, {"WWW-Authenticate": 'Basic realm="r"'}, b""))
    with pytest.raises(RegistryError, match="needs credentials: set STACKS_REGISTRY_USER and STACKS_REGISTRY_PASSWORD") as caught:
        registry.manifest("ns/lab", "latest")
    assert caught.value.auth and not caught.value.retryable


def test_bearer_challenge_fetches_a_pull_token_and_reuses_it() -> None:
    def handler(request):
        if request.url.startswith("https://auth.example/token"):
            assert "scope=repository%3Ans%2Flab%3Apull" in request.url and "service=reg" in request.url
            assert request.headers["Authorization"].startswith("Basic ")
            return 200, {}, b'{"token": "T0K"}'
        if request.headers.get("Authorization") != "Bearer T0K":
            return 401, {"WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="reg"'}, b""
        return 200, {}, manifest()

    registry, transport = client(handler, Credentials("bot", "pw", source="test"))
    assert registry.manifest("ns/lab", "a") is not None
    assert registry.manifest("ns/lab", "b") is not None
    assert len(transport.seen) == 4  # challenge, token, manifest a, manifest b (token reused)


def test_a_refused_token_is_an_auth_error_that_names_who_was_refused_but_not_the_secret() -> None:
    def handler(request):
        if "token" in request.url:
            return 401, {}, b""
        return 401, {"WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="reg"'}, b""

    registry, _ = client(handler, Credentials("bot", "s3cret", source="env"))
    with pytest.raises(RegistryError) as caught:
        registry.manifest("ns/lab", "latest")
    assert caught.value.auth and "refused user 'bot' (from env)" in str(caught.value) and "s3cret" not in str(caught.value)


def test_an_identity_token_is_exchanged_with_a_refresh_grant() -> None:
    def handler(request):
        if "token" in request.url:
            assert request.method == "POST" and "grant_type=refresh_token" in request.body and "refresh_token=IDT" in request.body
            return 200, {}, b'{"access_token": "ACC"}'
        if request.headers.get("Authorization") != "Bearer ACC":
            return 401, {"WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="reg"'}, b""
        return 200, {}, manifest()

    registry, _ = client(handler, Credentials(token="IDT", source="Docker config"))
    assert registry.manifest("ns/lab", "latest") is not None


@pytest.mark.parametrize("status, retryable", [(500, True), (503, True), (429, True), (400, False), (405, False)])
def test_server_errors_are_retryable_and_client_errors_are_not(status: int, retryable: bool) -> None:
    registry, _ = client(lambda r: (status, {}, b'{"errors": [{"code": "X", "message": "boom"}]}'))
    with pytest.raises(RegistryError, match=f"HTTP {status} X: boom") as caught:
        registry.manifest("ns/lab", "latest")
    assert caught.value.retryable is retryable and not caught.value.auth


def test_forbidden_is_an_auth_error() -> None:
    registry, _ = client(lambda r: (403, {}, b""))
    with pytest.raises(RegistryError, match="refused anonymous access: HTTP 403") as caught:
        registry.check("ns/lab")
    assert caught.value.auth


def test_an_unreachable_registry_is_retryable() -> None:
    def handler(request):
        raise requests.ConnectionError("[Errno 111] Connection refused")

    registry, _ = client(handler)
    with pytest.raises(RegistryError, match=r"cannot reach registry 127\.0\.0\.1:5000 .*Connection refused") as caught:
        registry.manifest("ns/lab", "latest")
    assert caught.value.retryable


def test_a_body_that_is_not_json_is_a_clear_error() -> None:
    registry, _ = client(lambda r: (200, {}, b"<html>proxy login</html>"))
    with pytest.raises(RegistryError, match="is not a readable manifest"):
        registry.manifest("ns/lab", "latest")


# --- what `stacks cache prune` asks: tag lists, referrers, deletes ---------------------


def test_a_tag_list_follows_the_link_header_across_pages() -> None:
    def answer(request):
        if "last=b" in request.url:
            return 200, {}, json.dumps({"tags": ["c"]}).encode()
        return 200, {"Link": '</v2/cache/tags/list?n=2&last=b>; rel="next"'}, json.dumps({"tags": ["a", "b"]}).encode()

    registry, seen = client(answer)
    assert registry.tags("cache") == ["a", "b", "c"]
    assert [r.url for r in seen.seen] == ["http://127.0.0.1:5000/v2/cache/tags/list?n=1000",
                                          "http://127.0.0.1:5000/v2/cache/tags/list?n=2&last=b"]


def test_a_missing_repository_has_no_tags_and_a_registry_without_referrers_api_says_none() -> None:
    registry, _ = client(lambda r: (404, {}, b""))
    assert registry.tags("nothing") == [] and registry.referrers("cache", "sha256:m") is None


def test_a_delete_goes_by_digest_and_asks_for_the_delete_right() -> None:
    def answer(request):
        if request.url.startswith("https://auth.example/token"):
            return 200, {}, json.dumps({"token": "DEL"}).encode()
        if request.headers.get("Authorization") != "Bearer DEL":
            return 401, {"WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="reg"'}, b""
        return 202, {}, b""

    registry, seen = client(answer)
    registry.delete_manifest("cache", "sha256:m")
    token = next(r for r in seen.seen if r.url.startswith("https://auth.example"))
    assert "scope=repository%3Acache%3Apull%2Cpush%2Cdelete" in token.url
    assert seen.seen[-1].method == "DELETE" and seen.seen[-1].url.endswith("/v2/cache/manifests/sha256:m")


@pytest.mark.parametrize("status, body", [
    (405, {"errors": [{"code": "UNSUPPORTED", "message": "The operation is unsupported."}]}),
    (400, {"errors": [{"code": "UNSUPPORTED", "message": "deletes are disabled"}]}),
    (403, {"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}),
])
def test_a_registry_that_does_not_delete_is_a_refusal(status: int, body: dict) -> None:
    registry, _ = client(lambda r: (status, {}, json.dumps(body).encode()))
    with pytest.raises(DeleteRefused) as refused:
        registry.delete_manifest("cache", "sha256:m")
    assert str(status) in str(refused.value)


def test_a_manifest_already_gone_is_no_error_and_a_server_error_is_no_refusal() -> None:
    registry, _ = client(lambda r: (404, {}, b""))
    registry.delete_manifest("cache", "sha256:m")
    registry, _ = client(lambda r: (503, {}, b""))
    with pytest.raises(RegistryError) as failed:
        registry.delete_manifest("cache", "sha256:m")
    assert not isinstance(failed.value, DeleteRefused) and failed.value.retryable
