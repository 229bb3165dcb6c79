"""Site settings: how this machine fetches bytes (CA certificates, mirrors), never what an image is.

They reach builds as a BuildKit secret (the CA bundle) and build arguments
(paths and mirror URLs), so they stay out of every layer and out of the
content hash: the same image built behind a corporate proxy or on a laptop
has the same hash. Used by `stacks build` and `stacks bake` alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from builder.plan.render import CA_ARGS, CA_PATH, CA_SECRET, Mode

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class SiteError(Exception):
    """Site settings that would leak a secret into an image, or cannot work on this engine."""


@dataclass(frozen=True)
class Site:
    ca_certificates: tuple[Path, ...] = ()
    pip_index_url: str | None = None
    npm_registry: str | None = None
    apt_mirror: str | None = None

    def check(self, mode: Mode) -> None:
        """Refuse settings that would put a secret into an image or its history."""
        for name, url in (("pip_index_url", self.pip_index_url), ("npm_registry", self.npm_registry)):
            if url and "@" in (urlsplit(url).netloc or ""):
                raise SiteError(
                    f"{name} contains credentials; build arguments are visible in `docker history`, so stacks refuses "
                    "to pass them. Use a mirror that needs no credentials on the build network."
                )
        missing = [str(p) for p in self.ca_certificates if not Path(p).is_file()]
        if missing:
            raise SiteError(f"CA certificate file not found: {', '.join(missing)}")
        if mode == "classic" and self.ca_certificates:
            raise SiteError(
                "extra CA certificates need BuildKit (they are mounted as build secrets); the classic builder could "
                "only bake them into a layer. Install a docker CLI with BuildKit (buildx) or drop --ca-cert/STACKS_CA_CERTS."
            )

    def build_environment(self, folder: Path) -> tuple[dict[str, Path], dict[str, str]]:
        """The per-run secrets and build args; the CA bundle is written into `folder`."""
        secrets: dict[str, Path] = {}
        args: dict[str, str] = {}
        if self.ca_certificates:
            bundle = folder / "ca-bundle.pem"
            bundle.parent.mkdir(parents=True, exist_ok=True)
            bundle.write_bytes(ca_bundle(self.ca_certificates))
            secrets[CA_SECRET] = bundle.resolve()
            args.update({name: CA_PATH for name in CA_ARGS})
        if self.pip_index_url:
            args["PIP_INDEX_URL"] = self.pip_index_url
        if self.npm_registry:
            args["NPM_CONFIG_REGISTRY"] = self.npm_registry
        return secrets, args


def ca_bundle(extra: tuple[Path, ...]) -> bytes:
    """Public roots plus the extra certificates: tools given this file trust both."""
    parts: list[bytes] = []
    try:
        import certifi

        parts.append(Path(certifi.where()).read_bytes())
    except ImportError:
        if SYSTEM_BUNDLE.is_file():
            parts.append(SYSTEM_BUNDLE.read_bytes())
    for path in extra:
        parts.append(Path(path).read_bytes())
    return b"\n".join(p.rstrip(b"\n") for p in parts) + b"\n"
