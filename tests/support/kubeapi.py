"""A stand-in for a Kubernetes API server, serving Pod lists in the API's exact shapes from
tests/fixtures/kubernetes/ over TLS: no API server can run on these machines.

It does what the real one does where tagwatch depends on it: HTTPS only, a bearer token or
a client certificate signed by the cluster CA (else 401 with a Status body), `limit` and
`continue` pagination with `remainingItemCount`, 410 `Expired` for a continue token that is
too old (once, when asked), 403 `Forbidden` for an account without RBAC, and per-namespace
lists. `registry` replaces the fixtures' `registry.shop.example` so that their images can
live in the test's real registry.
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tlsca import CA

__all__ = ["FIXTURES", "KubeAPI"]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kubernetes"
FIXTURE_REGISTRY = "registry.shop.example"


class KubeAPI:
    def __init__(self, workdir: Path, *, token: str = "tw-sa-token",
                 registry: str | None = None) -> None:
        self.ca = CA("kubernetes test cluster CA")
        self.token = token
        self.registry = registry
        self.requests: list[dict[str, Any]] = []
        self.expire_next_continue = False
        self.forbidden = False
        context = self.ca.server_context(workdir, require_client=False)
        context.verify_mode = ssl.CERT_OPTIONAL  # a token or a client certificate
        context.load_verify_locations(cadata=self.ca.pem.decode())
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fixture(self, name: str) -> bytes:
        text = (FIXTURES / name).read_text()
        if self.registry:
            text = text.replace(FIXTURE_REGISTRY, self.registry)
        return text.encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Audit-Id", "0c8f6e2a-5d1b-4f3e-9a7c-2b4d6e8f0a1c")
                self.end_headers()
                self.wfile.write(body)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, json.dumps({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": message, "reason": reason, "code": code}).encode())

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                peer = self.connection.getpeercert()  # type: ignore[attr-defined]
                auth = self.headers.get("Authorization")
                api.requests.append({"path": url.path, "query": query, "auth": auth,
                                     "client_cert": bool(peer)})
                if auth != f"Bearer {api.token}" and not peer:
                    self._status(401, "Unauthorized", "Unauthorized")
                    return
                if api.forbidden:
                    self._send(403, api.fixture("status-403-forbidden.json"))
                    return
                if url.path == "/api/v1/pods":
                    pages = {None: "pods-page-1.json"}
                    for name in ("pods-page-1.json", "pods-page-2.json"):
                        token = json.loads((FIXTURES / name).read_text())["metadata"]["continue"]
                        pages[token] = ("pods-page-2.json" if name == "pods-page-1.json"
                                        else "pods-page-3.json")
                    cont = query.get("continue")
                    if cont is not None and api.expire_next_continue:
                        api.expire_next_continue = False
                        self._send(410, api.fixture("status-410-expired.json"))
                        return
                    if cont not in pages:
                        self._status(400, "BadRequest", "invalid continue token")
                        return
                    self._send(200, api.fixture(pages[cont]))
                elif url.path == "/api/v1/namespaces/shop/pods":
                    self._send(200, api.fixture("pods-namespace-shop.json"))
                elif url.path.startswith("/api/v1/namespaces/") and url.path.endswith("/pods"):
                    self._send(200, json.dumps({"kind": "PodList", "apiVersion": "v1",
                                                "metadata": {"resourceVersion": "48213377"},
                                                "items": []}).encode())
                else:
                    self._status(404, "NotFound", "the server could not find the requested "
                                 "resource")

        return Handler

    def write_kubeconfig(self, path: Path, *, user: dict[str, Any] | None = None,
                         context: str = "prod") -> Path:
        """A kubeconfig for this server: the CA as certificate-authority-data and, by
        default, the bearer token."""
        import base64

        import yaml

        user = user if user is not None else {"token": self.token}
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "shop-cluster", "cluster": {
                "server": self.url,
                "certificate-authority-data": base64.b64encode(self.ca.pem).decode()}}],
            "contexts": [{"name": context, "context": {"cluster": "shop-cluster",
                                                       "user": "tagwatch"}}],
            "users": [{"name": "tagwatch", "user": user}],
        }))
        return path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
