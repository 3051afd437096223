"""`[[source]] kubernetes`: the containers of a cluster's Pods, read from its API server.

Access is either in-cluster (the Pod's service-account token and CA, the API server from
KUBERNETES_SERVICE_HOST/PORT) or a kubeconfig file: its current context (or `context`),
the cluster's server and CA (`certificate-authority[-data]`, or
`insecure-skip-tls-verify`), and the user's bearer token (`token`, `tokenFile`) or client
certificate (`client-certificate[-data]`, `client-key[-data]`). Exec plugins and auth
providers (`aws eks get-token`, `gke-gcloud-auth-plugin`, OIDC) are not supported: they run
programs, and are refused with a message saying so. The token is read again at every
reading (projected service-account tokens rotate) and is sent to that server only.

Read-only, and nothing but `GET /api/v1/pods` (or `/api/v1/namespaces/NS/pods` for each of
`namespaces`) in pages of `limit=500`, following `metadata.continue`; a continue token that
expired (HTTP 410) restarts the listing. The RBAC it needs is `get` and `list` on `pods`
(deploy/kubernetes/rbac.yaml). What the Pods mean is decided by the pure
`tagwatch.core.running.from_pods`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from tagwatch import __version__
from tagwatch.config import KubernetesConfig, SourceConfig
from tagwatch.core.running import Running, from_pods
from tagwatch.errors import SourceError
from tagwatch.sources.http import HTTPStatusError, get_json, one_line

__all__ = ["SERVICE_ACCOUNT", "Access", "access", "read"]

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
PAGE = 500
MAX_PAGES = 2000  # a million Pods: past that, a server that never stops paging
HINTS = {
    401: "the API server refused the credentials: token expired or revoked?",
    403: "the account needs get and list on pods: see deploy/kubernetes/rbac.yaml",
}


@dataclass(frozen=True, slots=True)
class Access:
    """How to reach the API server. `token_file` is read at each reading; `token` is a
    kubeconfig's literal token."""

    where: str  # "kubernetes in-cluster", "kubernetes /etc/tagwatch/kubeconfig"
    server: str  # https://host:port
    ca_file: str | None = None
    ca_data: bytes | None = None
    verify: bool = True
    token: str | None = None
    token_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None


def _yaml(path: str, where: str) -> Any:
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SourceError(f"{where}: {path} is not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SourceError(f"{where}: {path}{line}: not a kubeconfig (YAML error)") from None


def _named(entries: Any, name: str, key: str) -> dict[str, Any] | None:
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(key)
            return value if isinstance(value, dict) else {}
    return None


def _data(value: Any, what: str, where: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SourceError(f"{where}: {what} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SourceError(f"{where}: {what} is not valid base64") from None


def access(config: KubernetesConfig, env: dict[str, str] | None = None) -> Access:
    """Where the API server is and how to authenticate, from the service account or the
    kubeconfig. Raises SourceError naming what is missing or unsupported."""
    env = dict(os.environ) if env is None else env
    if config.kubeconfig is None:
        where = "kubernetes in-cluster"
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise SourceError(
                f"{where}: KUBERNETES_SERVICE_HOST/PORT are not set: not running in a Pod?"
            )
        token_path, ca = SERVICE_ACCOUNT / "token", SERVICE_ACCOUNT / "ca.crt"
        for needed in (token_path, ca):
            if not needed.is_file():
                raise SourceError(
                    f"{where}: {needed} does not exist (automountServiceAccountToken: false?)"
                )
        server_host = f"[{host}]" if ":" in host else host
        return Access(
            where, f"https://{server_host}:{port}", ca_file=str(ca), token_file=str(token_path)
        )

    path = config.kubeconfig
    where = f"kubernetes {path}"
    base = Path(path).parent
    data = _yaml(path, where)
    if not isinstance(data, dict):
        raise SourceError(f"{where}: not a kubeconfig (no mapping at the top)")
    context_name = config.context or data.get("current-context")
    if not isinstance(context_name, str) or not context_name:
        raise SourceError(f"{where}: no current-context: set context in the [[source]]")
    context = _named(data.get("contexts"), context_name, "context")
    if context is None:
        raise SourceError(f"{where}: no context named {context_name!r}")
    cluster_name, user_name = context.get("cluster"), context.get("user")
    cluster = _named(data.get("clusters"), str(cluster_name), "cluster")
    if cluster is None:
        raise SourceError(f"{where}: context {context_name!r} names no known cluster")
    user = _named(data.get("users"), str(user_name), "user") if user_name else {}
    if user is None:
        raise SourceError(f"{where}: context {context_name!r} names no known user")
    server = cluster.get("server")
    if not isinstance(server, str) or urlsplit(server).scheme != "https":
        raise SourceError(
            f"{where}: cluster {cluster_name!r}: server must be an https:// URL, not {server!r}"
        )
    for unsupported in ("exec", "auth-provider"):
        if user.get(unsupported):
            raise SourceError(
                f"{where}: user {user_name!r} authenticates with an {unsupported} plugin, which "
                "tagwatch does not run: give it a token (a ServiceAccount's, see "
                "deploy/kubernetes/) or a client certificate"
            )

    def local(value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return None
        found = Path(value).expanduser()
        return str(found if found.is_absolute() else base / found)

    token = user.get("token") if isinstance(user.get("token"), str) else None
    return Access(
        where,
        server.rstrip("/"),
        ca_file=local(cluster.get("certificate-authority")),
        ca_data=_data(
            cluster.get("certificate-authority-data"), "certificate-authority-data", where
        ),
        verify=cluster.get("insecure-skip-tls-verify") is not True,
        token=token,
        token_file=local(user.get("tokenFile")),
        cert_file=local(user.get("client-certificate")),
        key_file=local(user.get("client-key")),
        cert_data=_data(user.get("client-certificate-data"), "client-certificate-data", where),
        key_data=_data(user.get("client-key-data"), "client-key-data", where),
    )


@contextlib.contextmanager
def _pem_files(cert: bytes, key: bytes) -> Iterator[tuple[str, str]]:
    """ssl loads a client certificate from files only: private ones, removed at once."""
    with tempfile.TemporaryDirectory(prefix="tagwatch-kube-") as folder:
        paths = []
        for name, data in (("cert.pem", cert), ("key.pem", key)):
            path = os.path.join(folder, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            paths.append(path)
        yield paths[0], paths[1]


def _context(found: Access) -> ssl.SSLContext:
    try:
        if found.verify:
            context = ssl.create_default_context(
                cafile=found.ca_file,
                cadata=found.ca_data.decode("ascii", "replace") if found.ca_data else None,
            )
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if found.cert_data and found.key_data:
            with _pem_files(found.cert_data, found.key_data) as (cert, key):
                context.load_cert_chain(cert, key)
        elif found.cert_file and found.key_file:
            context.load_cert_chain(found.cert_file, found.key_file)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise SourceError(f"{found.where}: TLS: {one_line(str(exc))}") from None
    return context


def _token(found: Access) -> str | None:
    if found.token_file:
        try:
            return Path(found.token_file).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise SourceError(
                f"{found.where}: cannot read the token {found.token_file}: {exc.strerror or exc}"
            ) from None
    return found.token


def _pods(client: httpx.Client, path: str, where: str, timeout: float) -> list[Any]:
    """Every Pod under `path`, page by page. A continue token that expired (410 Gone: the
    listing took longer than the server keeps its snapshot) restarts the listing, twice at
    most."""
    for _attempt in range(3):
        items: list[Any] = []
        token: str | None = None
        seen: set[str] = set()
        try:
            for _page in range(MAX_PAGES):
                params = {"limit": str(PAGE)}
                if token:
                    params["continue"] = token
                page, _ = get_json(
                    client, path, where=where, timeout=timeout, params=params, hint=HINTS
                )
                if not isinstance(page, dict) or not isinstance(page.get("items", []), list):
                    raise SourceError(f"{where}: GET {path}: the answer is not a PodList")
                items.extend(page.get("items") or [])
                meta = page.get("metadata") if isinstance(page.get("metadata"), dict) else {}
                token = meta.get("continue") if isinstance(meta, dict) else None
                if not isinstance(token, str) or not token:
                    return items
                if token in seen:
                    raise SourceError(f"{where}: GET {path}: the server repeats a page")
                seen.add(token)
            raise SourceError(f"{where}: GET {path}: more than {MAX_PAGES} pages")
        except HTTPStatusError as exc:
            if exc.status != 410 or token is None:
                raise
    raise SourceError(f"{where}: GET {path}: the listing kept expiring (HTTP 410)")


def read(source: SourceConfig, timeout: float) -> list[Running]:
    assert source.kubernetes is not None
    found = access(source.kubernetes)
    headers = {
        "User-Agent": f"tagwatch/{__version__}",
        "Accept": "application/json",
        "Accept-Encoding": "identity",
    }
    token = _token(found)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(
        base_url=found.server,
        verify=_context(found),
        headers=headers,
        timeout=timeout,
        trust_env=False,
        follow_redirects=False,
    ) as client:
        if source.kubernetes.namespaces:
            pods: list[Any] = []
            for namespace in source.kubernetes.namespaces:
                path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods"
                pods.extend(_pods(client, path, found.where, timeout))
        else:
            pods = _pods(client, "/api/v1/pods", found.where, timeout)
    return from_pods(pods, stopped=source.stopped)
