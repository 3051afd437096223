"""Minimal HEAD loops that `bench/run.py` measures beside `tagwatch check` (target 2).

    python bench/clients.py {aiohttp|httpx-threads|httpx-async|http.client-threads} \
        TAGS_JSON CONCURRENCY

TAGS_JSON is a JSON list of manifest URLs (http://127.0.0.1:PORT/v2/REPO/manifests/TAG).
Each loop sends one `HEAD` per URL with tagwatch's own Accept header, `CONCURRENCY` in
flight over keep-alive connections, reads `Docker-Content-Digest`, and prints one JSON line:
`{"client": ..., "checked": N, "ok": N, "loop_seconds": S}` (the loop only; `run.py`
measures the whole process around it). These are deliberately the smallest correct loops:
no retries, no auth, no bookkeeping, so they bound what any Python client can do.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

# tagwatch's Accept header, copied so that the baselines do not import tagwatch (and pay for
# its imports); `run.py` checks it is still equal to tagwatch.core.manifest.ACCEPT.
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
    ]
)
HEADERS = {"Accept": ACCEPT, "User-Agent": "tagwatch-bench-baseline"}


def _aiohttp(urls: list[str], concurrency: int) -> int:
    import asyncio

    import aiohttp

    async def main() -> int:
        ok = 0
        it = iter(urls)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector, headers=HEADERS) as session:

            async def worker() -> None:
                nonlocal ok
                for url in it:
                    async with session.head(url) as response:
                        if response.status == 200 and response.headers.get("Docker-Content-Digest"):
                            ok += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok

    return asyncio.run(main())


def _httpx_threads(urls: list[str], concurrency: int) -> int:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    it = iter(urls)
    lock = threading.Lock()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(headers=HEADERS, limits=limits, trust_env=False) as client:

        def worker() -> int:
            ok = 0
            while True:
                with lock:
                    url = next(it, None)
                if url is None:
                    return ok
                response = client.head(url)
                if response.status_code == 200 and response.headers.get("docker-content-digest"):
                    ok += 1

        with ThreadPoolExecutor(concurrency) as pool:
            return sum(pool.map(lambda _: worker(), range(concurrency)))


def _httpx_async(urls: list[str], concurrency: int) -> int:
    import asyncio

    import httpx

    async def main() -> int:
        ok = 0
        it = iter(urls)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(headers=HEADERS, limits=limits, trust_env=False) as client:

            async def worker() -> None:
                nonlocal ok
                for url in it:
                    response = await client.head(url)
                    if response.status_code == 200 and response.headers.get(
                        "docker-content-digest"
                    ):
                        ok += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok

    return asyncio.run(main())


def _http_client_threads(urls: list[str], concurrency: int) -> int:
    """The standard library's http.client: one keep-alive connection per thread."""
    import http.client
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    it = iter(urls)
    lock = threading.Lock()

    def worker() -> int:
        ok = 0
        conn: http.client.HTTPConnection | None = None
        while True:
            with lock:
                url = next(it, None)
            if url is None:
                break
            parts = urlsplit(url)
            if conn is None:
                conn = http.client.HTTPConnection(parts.netloc, timeout=10)
            conn.request("HEAD", parts.path, headers=HEADERS)
            response = conn.getresponse()
            response.read()
            if response.status == 200 and response.getheader("Docker-Content-Digest"):
                ok += 1
        if conn is not None:
            conn.close()
        return ok

    with ThreadPoolExecutor(concurrency) as pool:
        return sum(pool.map(lambda _: worker(), range(concurrency)))


CLIENTS: dict[str, Callable[[list[str], int], int]] = {
    "aiohttp": _aiohttp,
    "httpx-threads": _httpx_threads,
    "httpx-async": _httpx_async,
    "http.client-threads": _http_client_threads,
}


def main(argv: list[str]) -> int:
    name, path, concurrency = argv[0], argv[1], int(argv[2])
    with open(path) as f:
        urls = json.load(f)
    # Imports are part of the process (run.py measures it whole), not of the loop.
    __import__({"aiohttp": "aiohttp", "http.client-threads": "http.client"}.get(name, "httpx"))
    __import__("asyncio")
    started = time.perf_counter()
    ok = CLIENTS[name](urls, concurrency)
    seconds = time.perf_counter() - started
    print(json.dumps({"client": name, "checked": len(urls), "ok": ok, "loop_seconds": seconds}))
    return 0 if ok == len(urls) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
