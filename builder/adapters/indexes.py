"""The package indexes builds install from, asked for the newest release of a package.

PyPI's JSON API (`<index>/pypi/<name>/json`, `info.version`: the newest
final release) and the npm registry's package document (`<registry>/<name>`,
`dist-tags.latest`), through the same site settings the builds use: a pip
mirror given as a simple index (`https://mirror.example/simple`) is asked at
its JSON API beside it (`https://mirror.example/pypi/<name>/json`, as devpi,
Artifactory, Nexus and PyPI itself serve it), the npm mirror as npm asks it,
and the CA bundle of the site is the one TLS is verified with.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import requests

PYPI = "https://pypi.org"
NPM_REGISTRY = "https://registry.npmjs.org"
TIMEOUT = 15  # seconds per request
_NPM_ABBREVIATED = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8"


class IndexUnreachable(Exception):
    """An index that does not answer (connection, TLS, timeout, a server error): asking it more is pointless."""

    def __init__(self, index: str, url: str, reason: str):
        super().__init__(f"{index} at {url} cannot be reached: {reason}")
        self.index, self.url, self.reason = index, url, reason


@dataclass(frozen=True)
class Index:
    """One index: its name for people ("PyPI", "npm") and its base URL."""

    name: str
    url: str


class PackageIndexes:
    """The newest release of Python and npm packages, from the indexes of the site settings."""

    def __init__(self, pip_index_url: str | None = None, npm_registry: str | None = None,
                 ca_bundle: Path | None = None, session: requests.Session | None = None) -> None:
        self.pypi = Index("PyPI", _json_api_base(pip_index_url) if pip_index_url else PYPI)
        self.npm = Index("npm", (npm_registry or NPM_REGISTRY).rstrip("/"))
        self._verify: str | bool = str(ca_bundle) if ca_bundle is not None else True
        self._session = session or requests.Session()

    def index(self, manager: str) -> Index:
        return self.pypi if manager == "pip" else self.npm

    def latest(self, manager: str, name: str) -> str | None:
        """The newest release of `name` on the index of `manager` ("pip" or "npm"); None when it has no such package."""
        if manager == "pip":
            data = self._get(self.pypi, f"{self.pypi.url}/pypi/{quote(name, safe='')}/json", "application/json")
            version = (data or {}).get("info", {}).get("version") if isinstance(data, dict) else None
        else:
            data = self._get(self.npm, f"{self.npm.url}/{quote(name, safe='@')}", _NPM_ABBREVIATED)
            version = (data or {}).get("dist-tags", {}).get("latest") if isinstance(data, dict) else None
        return str(version) if version else None

    def _get(self, index: Index, url: str, accept: str) -> object | None:
        try:
            response = self._session.get(url, headers={"Accept": accept}, timeout=TIMEOUT, verify=self._verify)
        except requests.exceptions.SSLError as exc:
            raise IndexUnreachable(index.name, index.url, f"TLS verification failed ({_first_line(exc)}); "
                                   "set STACKS_CA_CERTS to the CA bundle of your proxy or mirror") from None
        except requests.RequestException as exc:
            raise IndexUnreachable(index.name, index.url, _first_line(exc)) from None
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise IndexUnreachable(index.name, index.url, f"HTTP {response.status_code} for {url}")
        try:
            return response.json()
        except ValueError:
            raise IndexUnreachable(index.name, index.url, f"{url} did not answer JSON") from None


def _json_api_base(index_url: str) -> str:
    """The JSON API beside a simple index: https://host/path/simple/ -> https://host/path."""
    base = index_url.rstrip("/")
    return base[: -len("/simple")] if base.endswith("/simple") else base


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
