"""Versions read out of a built image: every version command of its chain, in one idle container.

The commands run as the image's user, with no network, side by side; the
first line a command prints is the version. Which commands, and how the
answers compare with the spec, is plan/versions.py.
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from builder.adapters.containers import VERSIONS, Container, ContainerRunner, RunSpec
from builder.plan.versions import Probe, VersionReport

PROBE_TIMEOUT = 120  # seconds per command


def read_versions(runner: ContainerRunner, ref: str, image: str, wanted: dict[str, Probe]) -> VersionReport:
    """Run every probe in one idle container of `ref`; first line of stdout is the version."""
    report = VersionReport(image)
    if not wanted:
        return report
    spec = RunSpec(image, "probe", purpose=VERSIONS, entrypoint=["sleep"], command=["infinity"], network=False)
    with runner.run(ref, spec) as container, ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda probe: (probe, _run(container, probe.command)), wanted.values()))
    for probe, (value, error) in answers:
        if value:
            report.versions[probe.name] = value
        else:
            report.failures[probe.name] = f"{error} (command from {probe.source}: {probe.command})"
    return report


def _run(container: Container, command: str) -> tuple[str, str]:
    """(version, "") or ("", why not)."""
    done = container.exec(["sh", "-c", command], timeout=PROBE_TIMEOUT, split=True)
    stderr = done.error_text.strip()
    lines = [line.strip() for line in done.text.splitlines() if line.strip()]
    if done.exit_code != 0:
        return "", f"exit status {done.exit_code}" + (f": {_tail(stderr)}" if stderr else "")
    if not lines:
        return "", "printed nothing" + (f" (stderr: {_tail(stderr)})" if stderr else "")
    return lines[0], ""


def _tail(text: str, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= limit else "..." + text[-limit:]
