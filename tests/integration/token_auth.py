"""A token service on 127.0.0.1 for `docker-registry`'s `auth: token` mode: the login Docker Hub, GHCR and Quay use.

The registry answers 401 with a Bearer challenge naming this service's realm;
clients (the Docker engine, stacks' registry client) fetch a JWT here with
Basic credentials and retry with it. The service signs RS256 tokens with a
throw-away key whose self-signed certificate the registry trusts, and keeps
a log of every request so a test can prove the token flow really ran.
"""
from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SERVICE, ISSUER = "stacks-test-registry", "stacks-test-issuer"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """Issues registry tokens to one user; anonymous and wrong passwords get 401."""

    def __init__(self, folder: Path, user: str, password: str):
        self.user, self.password = user, password
        self.requests: list[dict[str, str]] = []  # {"scope": ..., "user": ..., "granted": "yes"/"no"}
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self._cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                      .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                      .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                      .sign(self._key, hashes.SHA256()))
        folder.mkdir(parents=True, exist_ok=True)
        self.cert_file = folder / "token-ca.pem"
        self.cert_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                issuer._answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def registry_auth(self) -> str:
        """The `auth:` section of the registry's config that trusts this issuer."""
        return (f"auth:\n  token:\n    realm: {self.realm}\n    service: {SERVICE}\n"
                f"    issuer: {ISSUER}\n    rootcertbundle: {self.cert_file}\n")

    def stop(self) -> None:
        self._server.shutdown()

    def token(self, scopes: list[str], subject: str) -> str:
        header = {"typ": "JWT", "alg": "RS256",
                  "x5c": [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()]}
        now = int(time.time())
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(handler.path).query)
        scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
        user, password = self._basic(handler.headers.get("Authorization", ""))
        granted = user == self.user and password == self.password
        self.requests.append({"scope": " ".join(scopes), "user": user or "", "granted": "yes" if granted else "no"})
        if not granted:
            handler.send_response(401)
            handler.send_header("Content-Type", "application/json")
            handler.end_headers()
            handler.wfile.write(b'{"details": "invalid credentials"}')
            return
        token = self.token(scopes, user or "")
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    @staticmethod
    def _basic(header: str) -> tuple[str | None, str | None]:
        if not header.lower().startswith("basic "):
            return None, None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None, None
        return user, password
