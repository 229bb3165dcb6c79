"""Whether this host can run another platform's programs: QEMU user emulation registered with binfmt_misc.

Building for linux/arm64 on an amd64 engine runs every `RUN` step, the
bootstrap of the base and every smoke check through QEMU. When the kernel
has no interpreter registered for the platform, those builds would fail
deep inside (`exec format error`) or, worse, be skipped by tools that fall
back to the native architecture; stacks asks first and names what is
missing instead. The check reads the local kernel's binfmt_misc: it speaks
for an engine on this host (the usual case), not for a remote DOCKER_HOST.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from builder.adapters.containers import Container, ContainerRunner, ExecResult, HealthCheck, ImageFacts, RunSpec, State
from builder.reference import platform_architecture

T = TypeVar("T")
#: how much longer a step takes under QEMU user emulation than natively: every check's timeout is scaled by it
#: (measured: starting JupyterLab and a Python kernel under emulation takes 3 to 5 times as long on a quiet
#: 2-core machine; with other work on it the server's start went past 6 times its native health start period)
SLOWDOWN = 10.0

BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")
#: OCI architecture -> the name qemu-user-static registers under binfmt_misc (qemu-<name>)
QEMU_NAMES = {"arm64": "aarch64", "amd64": "x86_64", "arm/v7": "arm", "arm/v6": "arm", "386": "i386",
              "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


@dataclass(frozen=True)
class Emulation:
    """The host's binfmt_misc, at `root` (tests point it at a folder of their own)."""

    root: Path = BINFMT_MISC

    def problem(self, platform: str, native: str) -> str | None:
        """Why `platform` cannot run on a host of platform `native`, or None when it can (or needs no emulation)."""
        if platform == native:
            return None
        architecture = platform_architecture(platform)
        name = QEMU_NAMES.get(architecture)
        if name is None:
            return f"no QEMU emulation is known for {platform}"
        if not (self.root / "status").exists():
            return (f"building for {platform} on this {native} host needs QEMU user emulation, but binfmt_misc is "
                    f"not mounted (as root: mount -t binfmt_misc binfmt_misc {self.root}; or run scripts/ensure-engine.sh)")
        entry = self.root / f"qemu-{name}"
        try:
            text = entry.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return (f"building for {platform} on this {native} host needs QEMU user emulation: no interpreter for "
                    f"{name} is registered ({entry} is missing; install qemu-user-static and binfmt-support, "
                    "then update-binfmts --enable, or run scripts/ensure-engine.sh)")
        if not text.startswith("enabled"):
            return f"QEMU emulation of {name} is registered but disabled ({entry}): update-binfmts --enable qemu-{name}"
        return None

    def setuid_works(self, platform: str) -> bool:
        """Setuid programs (sudo) gain their owner's rights under emulation only when the interpreter is registered
        with the credentials flag (C); qemu-user-static registers without it, so sudo fails there."""
        name = QEMU_NAMES.get(platform_architecture(platform), "")
        try:
            text = (self.root / f"qemu-{name}").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        flags = next((line.split(":", 1)[1] for line in text.splitlines() if line.startswith("flags:")), "")
        return "C" in flags


class EmulatedContainers:
    """A `ContainerRunner` for another platform's images: containers start with `--platform`, and every timeout
    a check gives (a command's, a wait's, a health check's) is `factor` times longer, so a check fails for what
    the image does, not for the emulator's speed."""

    def __init__(self, inner: ContainerRunner, platform: str, factor: float = SLOWDOWN) -> None:
        self.inner, self.platform, self.factor = inner, platform, factor

    def image(self, ref: str) -> ImageFacts:
        return self.inner.image(ref)

    def runtimes(self) -> frozenset[str]:
        return self.inner.runtimes()

    @contextmanager
    def run(self, ref: str, spec: RunSpec) -> Iterator[Container]:
        health = spec.healthcheck
        if health is not None:
            health = HealthCheck(health.test, health.interval, health.timeout * self.factor,
                                 health.start_period * self.factor, health.retries)
        with self.inner.run(ref, replace(spec, platform=self.platform, healthcheck=health)) as container:
            yield _ScaledContainer(container, self.factor)

    def clock(self) -> float:
        return self.inner.clock()

    def wait_until(self, condition: Callable[[], T | None], timeout: float, interval: float,
                   since: float | None = None) -> T | None:
        return self.inner.wait_until(condition, timeout * self.factor, interval, since)


class _ScaledContainer:
    """A container whose `exec` timeouts are scaled (see `EmulatedContainers`)."""

    def __init__(self, inner: Container, factor: float) -> None:
        self.inner, self.factor = inner, factor

    @property
    def name(self) -> str:
        return self.inner.name

    def exec(self, command: list[str], timeout: float | None = None, *, user: str | None = None,
             split: bool = False, detach: bool = False) -> ExecResult:
        scaled = timeout * self.factor if timeout is not None else None
        return self.inner.exec(command, scaled, user=user, split=split, detach=detach)

    def logs(self, tail: int | None = 15, stderr: bool = True) -> str:
        return self.inner.logs(tail, stderr)

    def state(self) -> State:
        return self.inner.state()

    def host_port(self, port: int) -> int | None:
        return self.inner.host_port(port)

    def processes(self) -> list[tuple[str, str, str]]:
        return self.inner.processes()
