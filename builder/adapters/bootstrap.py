"""Bases made without any registry: mmdebstrap a Debian/Ubuntu release, then import it.

This is what lets an air-gapped site, or one whose firewall blocks Docker
Hub, build the whole matrix: only the distribution's package archive (or a
mirror of it) is needed.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from builder.adapters.engine import BuildFailed, LineSink
from builder.specification.models import Bootstrap


def mmdebstrap_command(config: Bootstrap, tarball: Path, default_mirror: str | None = None,
                       architecture: str | None = None) -> list[str]:
    """`architecture` is Debian's name (arm64); None: the host's. A foreign one runs under QEMU user emulation."""
    cmd = ["mmdebstrap", f"--variant={config.variant}", f"--components={','.join(config.components)}"]
    if architecture:
        cmd.append(f"--architectures={architecture}")
    if config.packages:
        cmd.append(f"--include={','.join(config.packages)}")
    cmd += [config.suite, str(tarball)]
    mirror = config.mirror or default_mirror
    if mirror:
        cmd.append(mirror)
    return cmd


def bootstrap_tarball(config: Bootstrap, workdir: Path, sink: LineSink, default_mirror: str | None = None,
                      architecture: str | None = None) -> Path:
    """Run mmdebstrap into a tarball under `workdir`; BuildFailed says what went wrong."""
    if shutil.which("mmdebstrap") is None:
        raise BuildFailed(
            "mmdebstrap is not installed (Debian/Ubuntu: apt-get install mmdebstrap); "
            "or use 'pull:' for this base", "mmdebstrap",
        )
    tarball = Path(tempfile.mkdtemp(prefix="stacks-base-", dir=workdir)) / "rootfs.tar"
    cmd = mmdebstrap_command(config, tarball, default_mirror, architecture)
    sink("$ " + " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    assert proc.stdout is not None
    for line in proc.stdout:
        sink(line.rstrip("\n"))
    if proc.wait() != 0:
        raise BuildFailed(f"mmdebstrap exited with status {proc.returncode}", "mmdebstrap " + config.suite)
    return tarball
