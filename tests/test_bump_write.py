"""`tagwatch.bump.write_atomic`: how `bump --write` replaces one file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tagwatch.bump import TEMP_MARK, WriteError, write_atomic

OLD = b"FROM a:1@sha256:" + b"a" * 64 + b"\r\n"
NEW = b"FROM a:1@sha256:" + b"b" * 64 + b"\r\n"


def leftovers(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if TEMP_MARK in p.name]


def test_replaces_content_and_keeps_mode_and_owner(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_bytes(OLD)
    path.chmod(0o640)
    # As root any owner can be given (and must be kept); otherwise only one's own.
    owner = (12345, 23456) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(path, *owner)
    inode = path.stat().st_ino
    write_atomic(path, OLD, NEW)
    info = path.stat()
    assert path.read_bytes() == NEW
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert (info.st_uid, info.st_gid) == owner
    assert info.st_ino != inode  # a new file renamed over the old one
    assert leftovers(tmp_path) == []


def test_writes_through_a_symbolic_link(tmp_path: Path) -> None:
    real = tmp_path / "real.Dockerfile"
    real.write_bytes(OLD)
    link = tmp_path / "Dockerfile"
    link.symlink_to(real.name)
    write_atomic(link, OLD, NEW)
    assert link.is_symlink() and real.read_bytes() == NEW


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda p: p.chmod(0o444), "read-only (mode 0444): left alone"),
        (lambda p: os.link(p, p.with_name("other")), "has 2 hard links"),
        (lambda p: p.write_bytes(OLD + b"# edited\n"), "changed since it was read"),
    ],
)
def test_refuses_and_leaves_the_file(tmp_path: Path, prepare, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "Dockerfile"
    path.write_bytes(OLD)
    prepare(path)
    before = path.read_bytes()
    with pytest.raises(WriteError, match=message.replace("(", r"\(").replace(")", r"\)")):
        write_atomic(path, OLD, NEW)
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_a_missing_directory_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="cannot write: No such file or directory"):
        write_atomic(tmp_path / "gone" / "Dockerfile", OLD, NEW)
