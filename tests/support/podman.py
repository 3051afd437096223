"""Drive a real Podman as a Docker Engine API: `podman system service` on a unix socket in a
temporary folder, self-contained (its own storage on vfs, run root, file locks, events log,
an empty registries.conf) so that it needs no systemd user session and leaves nothing
behind, and `podman` commands on the same storage to pull, build, load, create and remove.

Starting containers may be refused in a sandbox (crun cannot set rlimits here); created
containers are enough: the API lists them with `all=true`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["Podman", "require_podman"]

READY_TIMEOUT = 30.0


def require_podman() -> None:
    from regharness import require_binaries

    require_binaries("podman")


class Podman:
    """One Podman world in a temporary folder: `.socket` serves the Docker Engine API while
    `start()`ed; `run(...)` is the podman command line on the same storage."""

    def __init__(self) -> None:
        # Podman refuses a run root longer than 50 characters: a short folder in /tmp.
        self.root = root = Path(tempfile.mkdtemp(prefix="twpm-", dir="/tmp"))
        self.socket = root / "engine.sock"
        (root / "tmp").mkdir(exist_ok=True)
        (root / "containers.conf").write_text(
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{root / "events.log"}"\n'
            'lock_type = "file"\n'
            f'tmp_dir = "{root / "tmp"}"\n'
        )
        (root / "storage.conf").write_text(
            "[storage]\n"
            'driver = "vfs"\n'
            f'runroot = "{root / "run"}"\n'
            f'graphroot = "{root / "storage"}"\n'
        )
        (root / "registries.conf").write_text("unqualified-search-registries = []\n")
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(root / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(root / "registries.conf"),
            "TMPDIR": str(root / "tmp"),
        }
        self.argv = [
            "podman",
            "--root", str(root / "storage"),
            "--runroot", str(root / "run"),
            "--storage-driver", "vfs",
            "--tmpdir", str(root / "tmp"),
        ]
        self.service: subprocess.Popen[bytes] | None = None
        self.log = root / "service.log"

    @property
    def address(self) -> str:
        return f"unix://{self.socket}"

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        done = subprocess.run([*self.argv, *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: exit {done.returncode}: "
                               f"{done.stderr.strip()[-2000:]}")
        return done.stdout.strip()

    def start(self) -> None:
        """`podman system service --time=0` on the socket; returns once it answers."""
        if self.socket.exists():
            self.socket.unlink()
        with self.log.open("ab") as err:  # the child keeps its own copy
            self.service = subprocess.Popen(
                [*self.argv, "system", "service", "--time=0", self.address],
                env=self.env, stdout=subprocess.DEVNULL, stderr=err,
                start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.service.poll() is not None:
                raise RuntimeError(f"podman system service exited {self.service.returncode}:"
                                   f"\n{self.log.read_text()[-2000:]}")
            if self.socket.exists():
                try:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.settimeout(2)
                        s.connect(str(self.socket))
                        s.sendall(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
                        if s.recv(64).startswith(b"HTTP/1.0 200"):
                            return
                except OSError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"podman system service did not answer within {READY_TIMEOUT}s")

    def stop(self) -> None:
        """Stop the service (the engine is then down: its socket refuses or is gone)."""
        if self.service is None:
            return
        if self.service.poll() is None:
            os.killpg(self.service.pid, signal.SIGTERM)
            try:
                self.service.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.service.pid, signal.SIGKILL)
                self.service.wait()
        self.service = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Podman:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
