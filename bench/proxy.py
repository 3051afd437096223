"""A TCP proxy on loopback that adds a fixed delay to every request (target 3).

Every chunk read from a client is held for `delay` seconds before it is forwarded upstream;
answers come back at once. A small HTTP/1.1 request (a HEAD or GET without a body) arrives
in one chunk, so with keep-alive each request is delayed once, as a far-away registry would
delay it, while the connection itself is not. `chunks` and `requests` (request lines seen)
let the caller check that one chunk was one request; `first` is when the first request
arrived (a client's start-up ends there).

It runs an asyncio loop in a daemon thread of the calling process:

    with DelayProxy("127.0.0.1", upstream_port, delay=0.05) as proxy:
        ... point clients at proxy.host ...
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time

_REQUEST_LINE = re.compile(rb"(?:^|\r\n)[A-Z]+ \S+ HTTP/1\.[01]\r\n")


class DelayProxy:
    def __init__(self, upstream_host: str, upstream_port: int, delay: float) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay = delay
        self.chunks = 0
        self.requests = 0
        self.connections = 0
        self.first: float | None = None  # time.monotonic() when the first request arrived
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> DelayProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("delay proxy did not start")
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def cpu_ns(self) -> int:
        """CPU time of the proxy's thread (its event loop: accepting, reading, forwarding)."""
        ident = self._thread.ident
        if ident is None:
            return 0
        return time.clock_gettime_ns(time.pthread_getcpuclockid(ident))

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=256)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return

        async def client_to_upstream() -> None:
            try:
                while chunk := await reader.read(65536):
                    if self.first is None:
                        self.first = time.monotonic()
                    self.chunks += 1
                    self.requests += len(_REQUEST_LINE.findall(chunk))
                    await asyncio.sleep(self.delay)
                    up_writer.write(chunk)
                    await up_writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    up_writer.write_eof()

        async def upstream_to_client() -> None:
            try:
                while chunk := await up_reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    writer.close()

        await asyncio.gather(client_to_upstream(), upstream_to_client())
        with contextlib.suppress(Exception):
            up_writer.close()
