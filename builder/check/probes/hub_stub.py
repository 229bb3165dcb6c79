"""A stand-in for the JupyterHub API, just enough for a single-user server to start and check tokens.

Runs inside the image under test with its own Python (no extra packages):
    python -c "$(cat hub_stub.py)" PORT USER USER_TOKEN
GET /hub/api answers with the version of the image's own jupyterhub (so no
version warning); GET /hub/api/user knows exactly one token, USER_TOKEN, as
USER with access to USER's server; activity reports (POST) are accepted.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, user, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
try:
    from jupyterhub import __version__ as version
except ImportError:
    version = "5.0.0"
MODEL = {
    "kind": "user", "name": user, "admin": False, "groups": [], "session_id": None,
    "scopes": [f"access:servers!user={user}", f"access:servers!server={user}/"],
}


class Hub(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-JupyterHub-Version", version)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - the http.server API
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/hub/api":
            return self._send(200, {"version": version})
        if path == "/hub/api/user":
            sent = self.headers.get("Authorization", "").split()
            if sent[-1:] == [token]:
                return self._send(200, MODEL)
            return self._send(403, {"status": 403, "message": "unknown token"})
        return self._send(404, {"status": 404, "message": "not part of the stub"})

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return self._send(200, {})

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Hub).serve_forever()
