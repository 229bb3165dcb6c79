#!/usr/bin/env python3
"""Container health check: exit 0 when a Jupyter server of this container answers.

Every running Jupyter server writes a `jpserver-<pid>.json` file into its
runtime directory with its URL (scheme, port and base URL included) and
token. This script reads those files, newest first, and asks each server's
`<url>api` endpoint (with the token only if it is refused without); the first answer makes the container healthy. So a
custom port (`--ServerApp.port`, JUPYTER_PORT), a base URL or TLS need no
configuration here. Files of servers that are no longer running are skipped.

Runtime directories searched: `jupyter --runtime-dir` of the user running
the check (honours JUPYTER_RUNTIME_DIR), then those under /home/* and /root
(the check runs as root when the container was started with --user root).
"""
from __future__ import annotations

import glob
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

TIMEOUT = float(os.environ.get("HEALTHCHECK_TIMEOUT", "4"))


def runtime_dirs() -> list[str]:
    found: list[str] = []
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        found.append(jupyter_runtime_dir())
    except ImportError:
        try:
            out = subprocess.run(["jupyter", "--runtime-dir"], capture_output=True, text=True, timeout=10, check=False)
            found.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    found += glob.glob("/home/*/.local/share/jupyter/runtime") + ["/root/.local/share/jupyter/runtime"]
    unique: list[str] = []
    for directory in found:
        if directory and os.path.realpath(directory) not in map(os.path.realpath, unique):
            unique.append(directory)
    return unique


def server_infos() -> list[dict]:
    files = []
    for directory in runtime_dirs():
        for path in glob.glob(os.path.join(directory, "jpserver-*.json")):
            try:
                files.append((os.stat(path).st_mtime, path))
            except OSError:
                continue
    infos = []
    for _, path in sorted(files, reverse=True):
        try:
            with open(path, encoding="utf-8") as handle:
                info = json.load(handle)
        except (OSError, ValueError):  # unreadable (another user's) or half written
            continue
        pid = info.get("pid")
        if isinstance(pid, int) and not os.path.exists(f"/proc/{pid}"):
            continue  # left behind by a server that is gone
        infos.append(info)
    return infos


def candidate_urls(info: dict) -> list[str]:
    """`<url>api` as written, and the same on the loopback address (the server may listen on 0.0.0.0)."""
    url = info.get("url") or f"http://localhost:{info.get('port', 8888)}{info.get('base_url', '/')}"
    if not url.endswith("/"):
        url += "/"
    parts = urlsplit(url + "api")
    loopback = parts._replace(netloc=f"127.0.0.1:{parts.port}" if parts.port else "127.0.0.1")
    urls = [urlunsplit(loopback), urlunsplit(parts)]
    return list(dict.fromkeys(urls))


def answers(url: str, token: str) -> bool:
    """`GET <url>api` answers 200. `/api` needs no login on Jupyter Server, so the token is
    sent only if the server asks for one (a JupyterHub single-user server would otherwise
    ask the Hub about it on every check)."""
    context = ssl._create_unverified_context() if url.startswith("https:") else None  # a self check on loopback
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    attempts = [{}] + ([{"Authorization": f"token {token}"}] if token else [])
    for headers in attempts:
        try:
            with opener.open(urllib.request.Request(url, headers=headers), timeout=TIMEOUT) as response:
                body = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            print(f"{url}: {exc}", file=sys.stderr)
            if exc.code in (401, 403):
                continue
            return False
        except (OSError, ValueError) as exc:
            print(f"{url}: {exc}", file=sys.stderr)
            return False
        print(f"healthy: {url} (Jupyter Server {body.get('version', '?')})")
        return True
    return False


def main() -> int:
    infos = server_infos()
    if not infos:
        print("unhealthy: no running Jupyter server found (no jpserver-*.json)", file=sys.stderr)
        return 1
    for info in infos:
        for url in candidate_urls(info):
            if answers(url, info.get("token", "")):
                return 0
    print("unhealthy: no Jupyter server answered", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
