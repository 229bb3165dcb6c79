"""Where the one Docker engine of a run listens, and how each way of talking to it is told so.

The composition root (`builder.app.environment.engine_address`) resolves the
address once, the way the docker CLI would; everything that reaches the
engine gets it from there: the Docker SDK (`builder.adapters.docker.connect`),
every docker CLI child (`cli_env`: an explicit DOCKER_HOST, so neither a
DOCKER_CONTEXT nor the config's current context can send it elsewhere), and
the no-op's socket reader (`builder.adapters.engine_socket`). Standard
library only: the no-op answer imports it before anything else.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOST = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class EngineAddress:
    """An engine endpoint: `host` as DOCKER_HOST spells it (unix://, tcp://, ssh://, npipe://).

    `tls` says the engine is reached over TLS; then `verify` says whether its
    certificate is checked and `cert_path` holds ca.pem, cert.pem and key.pem
    (any of them may be missing). `origin` says where the address came from,
    for messages ("DOCKER_HOST", "docker context 'colima' (DOCKER_CONTEXT)").
    """

    host: str = DEFAULT_HOST
    origin: str = "the default socket"
    tls: bool = False
    verify: bool = False
    cert_path: str | None = None

    def cli_env(self) -> dict[str, str]:
        """The variables that point a docker CLI (or anything reading DOCKER_*) at exactly this engine."""
        env = {"DOCKER_HOST": self.host}
        if self.tls:
            env["DOCKER_TLS"] = "1"
            if self.verify:
                env["DOCKER_TLS_VERIFY"] = "1"
            if self.cert_path:
                env["DOCKER_CERT_PATH"] = self.cert_path
        return env

    @property
    def socket_path(self) -> str | None:
        """The local socket file of a unix:// address, else None."""
        return self.host[len("unix://"):] or None if self.host.startswith("unix://") else None

    def describe(self) -> str:
        return f"{self.host} (from {self.origin})"
