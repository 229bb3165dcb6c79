"""JupyterLab in a real browser: headless Chromium (Debian's package) opens the lab with the token.

JupyterLab renders on the client, so a 200 for /lab proves little. Chromium
loads the page, runs its scripts for a budget of virtual time, then prints
the DOM and takes a screenshot in the same run: the launcher element must be
there, with a card for every kernel the server lists. The screenshot is kept
next to the report. Without the token the same page must not show the
launcher. Without Chromium on this machine the check is "not run", never passed.
"""
from __future__ import annotations

import html
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from builder.check.result import CheckResult
from builder.check.server_process import Server

LAUNCHER = re.compile(r'class="[^"]*\bjp-Launcher\b[^"]*"')
LOGIN = re.compile(r'<input[^>]*name="password"')
# (title, category) of each launcher card. Category names are translated in a
# localised lab (Notebook is 笔记本 in zh_CN), so the notebook section is found
# by position: it always comes first.
CARD = re.compile(r'<div class="jp-LauncherCard" title="([^"]*)"[^>]*data-category="([^"]*)"')
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--no-proxy-server", "--window-size=1280,800"]
ATTEMPTS = 3
BUDGET_MS = 15000


def chromium(configured: str | None = None) -> str | None:
    """The configured browser (STACKS_CHROMIUM, read by the caller), else Debian's `chromium`, else `chromium-browser`."""
    if configured:
        return shutil.which(configured)
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launcher_checks(server: Server, image: str, fragment: str, out_dir: Path,
                    configured: str | None = None, env: Mapping[str, str] | None = None) -> list[CheckResult]:
    """The launcher with the token, the login page without; `configured` names the browser (None: look for one),
    `env` is the browser's environment (the composition root's; its HOME is replaced by a throw-away profile)."""
    env = env or {}
    shown = CheckResult(image, "JupyterLab shows the launcher in a browser (with the token)", fragment, "browser",
                        expected="a .jp-Launcher element with a notebook card for every kernel: "
                                 + ", ".join(_display_names(server)))
    hidden = CheckResult(image, "without the token the browser gets the login page, not the launcher", fragment, "browser",
                         expected="a password/token field and no .jp-Launcher element on /lab without the token")
    exe = chromium(configured)
    if exe is None:
        for result in (shown, hidden):
            result.status, result.got = "not run", "chromium not installed (apt-get install chromium)"
        return [shown, hidden]
    screenshots = out_dir / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    shot = screenshots / f"{image}.png"
    with shown.timed():
        dom = ""
        for _ in range(ATTEMPTS):  # the first load may still be compiling assets; look again
            dom = _render(exe, f"{server.base_url}lab?token={server.token}", shot, env)
            if LAUNCHER.search(dom):
                break
        cards = notebook_cards(dom)
        missing = [name for name in _display_names(server) if name not in cards]
        found = bool(LAUNCHER.search(dom))
        shown.verdict(found and not missing,
                      f"launcher {'shown' if found else 'missing'}; notebook cards: {', '.join(cards) or 'none'}"
                      + (f"; page title: {_title(dom)}" if not found else ""))
        if shot.is_file():
            shown.artifact = str(shot.relative_to(out_dir))
    with hidden.timed():
        dom = _render(exe, f"{server.base_url}lab", None, env)
        login = LOGIN.search(dom) is not None
        hidden.verdict(login and not LAUNCHER.search(dom), f"page title: {_title(dom)}; login field "
                       + ("shown" if login else "missing") + "; launcher " + ("shown" if LAUNCHER.search(dom) else "not shown"))
    return [shown, hidden]


def _display_names(server: Server) -> list[str]:
    return sorted(spec.get("spec", {}).get("display_name", name) for name, spec in server.kernelspecs.items())


def _render(exe: str, url: str, screenshot: Path | None, env: Mapping[str, str]) -> str:
    """The DOM after BUDGET_MS of virtual time (and a screenshot of it), from a fresh profile."""
    with tempfile.TemporaryDirectory(prefix="stacks-chromium-") as profile:
        args = [exe, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={BUDGET_MS}", "--dump-dom"]
        if screenshot is not None:  # absolute: Chromium runs in the throw-away profile folder
            args.append(f"--screenshot={screenshot.resolve()}")
        done = subprocess.run([*args, url], capture_output=True, text=True, timeout=120, check=False,
                              env={**env, "HOME": profile}, cwd=profile)
    return done.stdout


def _title(dom: str) -> str:
    match = re.search(r"<title>(.*?)</title>", dom, re.DOTALL)
    return html.unescape(match.group(1).strip()) if match else "(none)"


def notebook_cards(dom: str) -> list[str]:
    """Titles of the launcher's notebook cards (the first category), in any UI language."""
    found = [(html.unescape(title), category) for title, category in CARD.findall(dom)]
    if not found:
        return []
    first = found[0][1]
    return sorted({title for title, category in found if category == first})
