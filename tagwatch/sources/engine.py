"""`[[source]] engine`: the containers of a Docker Engine API — Docker's daemon, or Podman's
compatible `podman system service` — over its unix socket, or over TCP with TLS and a
client certificate as Docker's CLI uses them (`ca.pem`, `cert.pem`, `key.pem`).

Read-only: `GET /_ping` (the engine's API version: the request paths are versioned at the
lower of that and ours), `GET /containers/json`, `GET /images/json`, and
`GET /containers/{id}/json` for a container listed by image ID (see core.running). What the
answers mean is decided by the pure `tagwatch.core.running.from_engine`.
"""

from __future__ import annotations

import re
import ssl

import httpx

from tagwatch import __version__
from tagwatch.config import EngineConfig, SourceConfig
from tagwatch.core.running import Running, from_engine, looks_like_image_id
from tagwatch.errors import SourceError
from tagwatch.sources.http import get_json, one_line, reason

__all__ = ["MAX_API", "MIN_API", "negotiate", "read"]

# The API versions these requests work with: /containers/json?all, /images/json and
# /containers/{id}/json are in 1.24 (Docker 1.12); 1.48 (Docker 28.1) adds the container's
# ImageManifestDescriptor, the platform image it runs. Docker 29 refuses below 1.44.
MIN_API = (1, 24)
MAX_API = (1, 48)
MAX_INSPECTS = 200  # containers listed by image ID whose reference is looked up, per reading


def _client(engine: EngineConfig, timeout: float) -> httpx.Client:
    headers = {"User-Agent": f"tagwatch/{__version__}", "Accept-Encoding": "identity"}
    if engine.socket is not None:
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=engine.socket),
            base_url="http://engine",
            headers=headers,
            timeout=timeout,
            trust_env=False,
        )
    assert engine.host is not None and engine.port is not None
    host = f"[{engine.host}]" if ":" in engine.host else engine.host
    if not engine.tls:
        return httpx.Client(
            base_url=f"http://{host}:{engine.port}",
            headers=headers,
            timeout=timeout,
            trust_env=False,
        )
    try:
        if engine.verify:
            context = ssl.create_default_context(cafile=engine.ca_file)
        else:  # Docker's --tls without --tlsverify: encrypted, the engine not authenticated
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if engine.cert_file and engine.key_file:
            context.load_cert_chain(engine.cert_file, engine.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise SourceError(f"engine {engine.address}: TLS files: {one_line(str(exc))}") from None
    return httpx.Client(
        base_url=f"https://{host}:{engine.port}",
        verify=context,
        headers=headers,
        timeout=timeout,
        trust_env=False,
    )


def _version(text: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d{1,3})\.(\d{1,3})", text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def _text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def negotiate(server: tuple[int, int] | None, minimum: tuple[int, int] | None = None) -> str:
    """The API version to ask for: the lower of the engine's and ours. Raises SourceError
    when the engine is older than MIN_API, or requires newer than MAX_API."""
    if server is None:
        return _text(MIN_API)
    if server < MIN_API:
        raise SourceError(
            f"API version {server[0]}.{server[1]} is older than {MIN_API[0]}.{MIN_API[1]}"
        )
    if minimum is not None and minimum > MAX_API:
        raise SourceError(
            f"the engine requires API {minimum[0]}.{minimum[1]} or newer; tagwatch speaks up "
            f"to {MAX_API[0]}.{MAX_API[1]}"
        )
    return _text(min(server, MAX_API))


def _ping(client: httpx.Client, where: str, timeout: float) -> tuple[int, int] | None:
    """/_ping answers the text `OK`, not JSON: read the version header from a plain GET."""
    try:
        response = client.get("/_ping", timeout=timeout)
    except httpx.TimeoutException:
        raise SourceError(f"{where}: GET /_ping: no answer in {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"{where}: cannot connect: {reason(exc)}") from None
    if response.status_code != 200:
        raise SourceError(
            f"{where}: GET /_ping: HTTP {response.status_code} (is this a Docker Engine API?)"
        )
    return _version(response.headers.get("api-version", ""))


def read(source: SourceConfig, timeout: float) -> list[Running]:
    engine = source.engine
    assert engine is not None
    where = f"engine {engine.address}"
    with _client(engine, timeout) as client:
        server = _ping(client, where, timeout)
        minimum = None
        if server is None:
            answer, _ = get_json(client, "/version", where=where, timeout=timeout)
            if isinstance(answer, dict):
                server = _version(str(answer.get("ApiVersion", "")))
                minimum = _version(str(answer.get("MinAPIVersion", "")))
        try:
            version = negotiate(server, minimum)
        except SourceError as exc:
            raise SourceError(f"{where}: {exc}") from None
        base = f"/v{version}"
        params = {"all": "1"} if source.stopped else None
        containers, _ = get_json(
            client, f"{base}/containers/json", where=where, timeout=timeout, params=params
        )
        images, _ = get_json(client, f"{base}/images/json", where=where, timeout=timeout)
        if not isinstance(containers, list) or not isinstance(images, list):
            raise SourceError(f"{where}: the container or image list is not a JSON array")
        configured: dict[str, str] = {}
        for container in containers:
            if len(configured) >= MAX_INSPECTS:
                break
            if not isinstance(container, dict):
                continue
            cid, image = container.get("Id"), container.get("Image")
            if not isinstance(cid, str) or not re.fullmatch(r"[0-9a-f]{12,64}", cid):
                continue
            if isinstance(image, str) and looks_like_image_id(image):
                details, _ = get_json(
                    client, f"{base}/containers/{cid}/json", where=where, timeout=timeout
                )
                config = details.get("Config") if isinstance(details, dict) else None
                if isinstance(config, dict) and isinstance(config.get("Image"), str):
                    configured[cid] = config["Image"]
    return from_engine(engine.address, containers, images, configured)
