"""A registry's HTTP API (Docker Registry v2 / OCI distribution), for what the engine does not tell.

The engine pushes; this module asks the registry itself, before and after:
is it reachable, does it accept the credentials, which manifest does a tag
point at now (so a re-run skips tags that already hold the image, and a push
is verified against what the registry really serves). Credentials are
handed in (adapters/credentials.py finds them); they are never printed.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

import requests

from builder.adapters.credentials import Credentials, hint
from builder.reference import api_host, split_host_port

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
INDEX_TYPES = MANIFEST_TYPES[2:]
_NETWORK = re.compile(
    r"connection (refused|reset|aborted|closed)|broken pipe|\bEOF\b|i/o timeout|timed? ?out|temporar|"
    r"no route to host|network is unreachable|TLS handshake|server misbehaving|unexpected end|"
    r"\b50[0234]\b|bad gateway|service unavailable|gateway time|too many requests|\b429\b|"
    r"max retries exceeded|remote end closed|protocol error|IncompleteRead|closed network connection|"
    r"connection broken",
    re.IGNORECASE,
)
_REFUSED = re.compile(r"unauthorized|authentication required|denied|forbidden|\b40[13]\b|no basic auth", re.IGNORECASE)


class RegistryError(Exception):
    """A registry problem; `retryable` when trying again later may succeed (network, overload)."""

    def __init__(self, message: str, retryable: bool = False, auth: bool = False):
        super().__init__(message)
        self.retryable = retryable
        self.auth = auth


class DeleteRefused(RegistryError):
    """The registry does not delete through its API: 405 / UNSUPPORTED (docker-registry without
    `storage.delete.enabled`; hosted registries that delete only through their own web API), or a token
    without the right to delete."""


def classify(message: str) -> tuple[bool, bool]:
    """(retryable, auth problem) for an error text from the engine or the registry."""
    if _REFUSED.search(message):
        return False, True
    return bool(_NETWORK.search(message)), False


def api_base(host: str) -> str:
    """The URL of the API: plain HTTP for loopback registries (the engine allows those insecure), else HTTPS."""
    name, _ = split_host_port(host)
    try:
        loopback = ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = name == "localhost"
    return f"{'http' if loopback else 'https'}://{api_host(host)}"


@dataclass(frozen=True)
class RemoteManifest:
    digest: str  # of the manifest (or index) the tag points at
    config: str | None  # config digest = the image id the engine built (for an index: of the matching platform)
    size: int  # bytes to download: config + layers (compressed)


class Registry:
    """One registry host, with the token dance of the distribution spec (Basic or Bearer)."""

    def __init__(self, host: str, credentials: Credentials | None, timeout: float = 30.0):
        self.host = host
        self.base = api_base(host)
        self.credentials = credentials
        self.timeout = timeout
        self._session = requests.Session()
        self._tokens: dict[str, str] = {}

    def check(self, repository: str) -> None:
        """Reachable, and the credentials are accepted (for reading `repository`); RegistryError otherwise."""
        self._get(f"/v2/{repository}/tags/list", repository, allow_missing=True)

    def manifest(self, repository: str, tag: str, platform: tuple[str, str] = ("linux", "amd64")) -> RemoteManifest | None:
        """What `repository:tag` points at now; None when the tag (or the repository) does not exist."""
        response = self._get(f"/v2/{repository}/manifests/{tag}", repository, allow_missing=True,
                             headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if response is None:
            return None
        try:
            body = response.json()
        except ValueError:
            raise RegistryError(f"registry {self.host}: {repository}:{tag} is not a readable manifest") from None
        digest = response.headers.get("Docker-Content-Digest") or _sha256(response.content)
        if body.get("mediaType") in INDEX_TYPES or "manifests" in body:
            child = next((m for m in body.get("manifests", []) if _platform(m) == platform), None)
            if child is None:
                return RemoteManifest(digest, None, 0)
            inner = self.manifest(repository, child["digest"], platform)
            return RemoteManifest(digest, inner.config if inner else None, inner.size if inner else 0)
        config = (body.get("config") or {}).get("digest")
        size = sum(int(part.get("size", 0)) for part in [body.get("config") or {}, *body.get("layers", [])])
        return RemoteManifest(digest, config, size)

    # --- content: manifests and blobs (the registry cache, registry-side publishing) ---

    def head(self, repository: str, reference: str) -> str | None:
        """The digest `repository:reference` serves (a HEAD: nothing downloaded); None when absent."""
        response = self._call("HEAD", f"/v2/{repository}/manifests/{reference}", repository, allow_missing=True,
                              headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if response is None:
            return None
        return response.headers.get("Docker-Content-Digest")

    def raw_manifest(self, repository: str, reference: str, accept: tuple[str, ...] = MANIFEST_TYPES) -> tuple[bytes, str, str] | None:
        """(body, media type, digest) of a manifest exactly as stored; None when absent."""
        response = self._get(f"/v2/{repository}/manifests/{reference}", repository, allow_missing=True,
                             headers={"Accept": ", ".join(accept)})
        if response is None:
            return None
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return response.content, media_type, response.headers.get("Docker-Content-Digest") or _sha256(response.content)

    def blob(self, repository: str, digest: str, limit: int = 1 << 20) -> bytes:
        """A small blob (a config, a record), refused past `limit` bytes: never a layer by mistake."""
        response = self._get(f"/v2/{repository}/blobs/{digest}", repository)
        assert response is not None
        if len(response.content) > limit:
            raise RegistryError(f"registry {self.host}: blob {digest[:19]} of {repository} is larger than expected")
        if _sha256(response.content) != digest:
            raise RegistryError(f"registry {self.host}: blob {digest[:19]} of {repository} does not match its digest")
        return response.content

    def has_blob(self, repository: str, digest: str) -> bool:
        return self._call("HEAD", f"/v2/{repository}/blobs/{digest}", repository, allow_missing=True, push=True) is not None

    def put_blob(self, repository: str, data: bytes) -> str:
        """Upload a small blob in one request (POST then PUT with the digest); returns its digest."""
        digest = _sha256(data)
        if self.has_blob(repository, digest):
            return digest
        start = self._call("POST", f"/v2/{repository}/blobs/uploads/", repository, push=True)
        assert start is not None
        location = _absolute(self.base, start.headers.get("Location", ""))
        joiner = "&" if "?" in location else "?"
        self._call("PUT", f"{location}{joiner}digest={digest}", repository, push=True, data=data,
                   headers={"Content-Type": "application/octet-stream"})
        return digest

    def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Cross-repository mount of `digest` from `source` into `repository`: True when mounted (201), no upload."""
        if self.has_blob(repository, digest):
            return True
        response = self._call("POST", f"/v2/{repository}/blobs/uploads/?mount={digest}&from={source}", repository,
                              push=True, scopes=(source,))
        assert response is not None
        if response.status_code == 201:
            return True
        location = response.headers.get("Location")  # 202: the registry started an upload instead; cancel it
        if location:
            try:
                self._call("DELETE", _absolute(self.base, location), repository, push=True, allow_missing=True)
            except RegistryError:
                pass
        return False

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag (or its digest); returns the digest the registry acknowledged."""
        response = self._call("PUT", f"/v2/{repository}/manifests/{reference}", repository, push=True, data=body,
                              headers={"Content-Type": media_type})
        assert response is not None
        return response.headers.get("Docker-Content-Digest") or _sha256(body)

    def tags(self, repository: str, page: int = 1000) -> list[str]:
        """Every tag of `repository` (the `n`/`Link` pagination followed); [] when the repository does not exist."""
        found: list[str] = []
        path: str | None = f"/v2/{repository}/tags/list?n={page}"
        while path:
            response = self._get(path, repository, allow_missing=True)
            if response is None:
                return found
            try:
                found += response.json().get("tags") or []
            except ValueError:
                raise RegistryError(f"registry {self.host}: the tag list of {repository} is not JSON") from None
            path = _next_page(response.headers.get("Link", ""))
        return found

    def referrers(self, repository: str, digest: str) -> list[dict[str, Any]] | None:
        """The descriptors of manifests whose `subject` is `digest` (OCI referrers API); None when the registry
        has no such API (it answers 404 for the path, as docker-registry 2.8 does)."""
        response = self._get(f"/v2/{repository}/referrers/{digest}", repository, allow_missing=True,
                             headers={"Accept": "application/vnd.oci.image.index.v1+json"})
        if response is None:
            return None
        try:
            return list(response.json().get("manifests") or [])
        except (ValueError, AttributeError):
            return None

    def delete_manifest(self, repository: str, digest: str) -> None:
        """DELETE a manifest by digest (the registry drops every tag pointing at it; blobs go at its garbage
        collection). DeleteRefused when the registry does not allow it; a manifest already gone is no error."""
        try:
            self._call("DELETE", f"/v2/{repository}/manifests/{digest}", repository, allow_missing=True, push=True,
                       headers={"Accept": ", ".join(MANIFEST_TYPES)}, delete=True)
        except DeleteRefused:
            raise
        except RegistryError as exc:
            if exc.auth:
                raise DeleteRefused(str(exc), auth=True) from None
            raise

    # --- HTTP with authentication ------------------------------------------

    def _get(self, path: str, repository: str, allow_missing: bool = False,
             headers: dict[str, str] | None = None) -> requests.Response | None:
        return self._call("GET", path, repository, allow_missing, headers)

    def _call(self, method: str, path: str, repository: str, allow_missing: bool = False,
              headers: dict[str, str] | None = None, push: bool = False, data: bytes | None = None,
              scopes: tuple[str, ...] = (), delete: bool = False) -> requests.Response | None:
        """One request with the auth dance; `push` asks for pull+push rights (`delete`: and delete), `scopes` for
        pull on other repositories."""
        url = path if path.startswith("http") else self.base + path
        rights = "delete" if delete else "push" if push else "pull"
        key = f"{repository}|{rights}|{','.join(scopes)}"
        response = self._request(url, headers or {}, self._tokens.get(key), method, data)
        if response.status_code == 401:
            auth = self._authorize(response, repository, push, scopes, key, delete)
            response = self._request(url, headers or {}, auth, method, data)
        if response.status_code == 404 and allow_missing:
            return None
        if delete and response.status_code >= 400 and (response.status_code == 405 or "UNSUPPORTED" in _error_text(response)):
            raise DeleteRefused(f"registry {self.host} does not delete manifests through its API: HTTP "
                                f"{response.status_code} {_error_text(response)}".rstrip())
        if response.status_code in (401, 403):
            who = self.credentials.describe() if self.credentials else "anonymous access"
            raise RegistryError(f"registry {self.host} refused {who}: HTTP {response.status_code} "
                                f"{_error_text(response)}", auth=True)
        if response.status_code >= 400:
            where = url.split("?")[0].removeprefix(self.base)
            raise RegistryError(f"registry {self.host}: {method} {where}: HTTP {response.status_code} {_error_text(response)}",
                                retryable=response.status_code in (429, 500, 502, 503, 504))
        return response

    def _request(self, url: str, headers: dict[str, str], auth: str | None, method: str = "GET",
                 data: bytes | None = None) -> requests.Response:
        if auth:
            headers = {**headers, "Authorization": auth}
        try:
            return self._session.request(method, url, headers=headers, data=data, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RegistryError(f"cannot reach registry {self.host} ({self.base}): {_reason(exc)}", retryable=True) from None

    def _authorize(self, challenge: requests.Response, repository: str, push: bool = False,
                   scopes: tuple[str, ...] = (), key: str | None = None, delete: bool = False) -> str | None:
        """The Authorization header the registry's WWW-Authenticate challenge asks for."""
        scheme, params = _parse_challenge(challenge.headers.get("WWW-Authenticate", ""))
        creds = self.credentials
        if scheme == "basic":
            if creds is None or not creds.username:
                raise RegistryError(f"registry {self.host} needs credentials: {hint(self.host)}", auth=True)
            return "Basic " + _basic(creds.username, creds.password)
        if scheme != "bearer" or "realm" not in params:
            return None
        rights = "pull,push,delete" if delete else "pull,push" if push else "pull"
        scope = " ".join([f"repository:{repository}:{rights}",
                          *(f"repository:{other}:pull" for other in scopes)])
        query = {"service": params.get("service", ""), "scope": scope}
        try:
            if creds is not None and creds.token:
                reply = self._session.post(params["realm"], timeout=self.timeout, data={
                    **query, "grant_type": "refresh_token", "refresh_token": creds.token, "client_id": "stacks"})
            else:
                auth = (creds.username, creds.password) if creds is not None and creds.username else None
                reply = self._session.get(params["realm"], params=query, auth=auth, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RegistryError(f"cannot reach the token service of {self.host}: {_reason(exc)}", retryable=True) from None
        if reply.status_code in (401, 403):
            who = creds.describe() if creds else "anonymous access"
            raise RegistryError(f"registry {self.host} refused {who}: HTTP {reply.status_code} from its token service", auth=True)
        if reply.status_code >= 400:
            raise RegistryError(f"token service of {self.host}: HTTP {reply.status_code}", retryable=reply.status_code >= 500)
        data = reply.json()
        token = data.get("token") or data.get("access_token")
        header = f"Bearer {token}" if token else None
        if header:
            self._tokens[key or f"{repository}|pull|"] = header
        return header


def _next_page(link: str) -> str | None:
    """The path of the next page from a `Link: </v2/...>; rel="next"` header, if any."""
    match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', link)
    return match.group(1) if match else None


def _absolute(base: str, location: str) -> str:
    """Upload locations may be relative to the registry's base URL."""
    return location if location.startswith("http") else base + location


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


def _basic(user: str, password: str) -> str:
    import base64

    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _platform(descriptor: dict[str, Any]) -> tuple[str, str]:
    platform = descriptor.get("platform") or {}
    return platform.get("os", ""), platform.get("architecture", "")


def _sha256(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def _error_text(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors)[:300]
    except (ValueError, AttributeError, json.JSONDecodeError):
        return response.reason or ""


def _reason(exc: requests.RequestException) -> str:
    """The innermost cause, without the URL noise ('Connection refused', 'Connection reset by peer')."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if match:
        return match.group(1).strip()
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return type(exc).__name__ + (f": {text[:200]}" if text else "")
