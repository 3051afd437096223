"""`tagwatch run` as a subprocess, reached over its listener (for the web tests).

`DaemonProcess(config, port, nofile=128)` starts the daemon with that RLIMIT_NOFILE (set in
the child before exec, as systemd's LimitNOFILE= would), `-v` logging to `<config>.log`.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["DaemonProcess"]


class DaemonProcess:
    def __init__(self, config: Path, port: int, *, nofile: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.config, self.port = config, port
        self.log = config.with_suffix(".log")
        env = dict(os.environ if env is None else env)
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "INVOCATION_ID", "JOURNAL_STREAM"):
            env.pop(name, None)

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with self.log.open("w") as err:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tagwatch", "run", "-c", str(config), "-v"],
                env=env, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=limit)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 5.0) -> httpx.Response:
        return httpx.get(self.url + path, timeout=timeout)

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                last = self.get("/healthz", timeout=2)
                if last.status_code == 200:
                    return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.1)
        raise AssertionError(f"never healthy ({last!r}):\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()
