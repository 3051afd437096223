"""The wheel carries the ops files (systemd unit, alert rules, dashboard, example config),
`tagwatch ops-files` copies them out, and there is one copy of each in the repository: the
package data, which the top-level paths link to."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from test_systemd import require_tool

from tagwatch.ops import FILES

REPO = Path(__file__).resolve().parent.parent
OPS = REPO / "tagwatch" / "ops"
# The paths the README, the tests and older instructions use.
TOP_LEVEL = {
    "systemd/tagwatch.service": "systemd/tagwatch.service",
    "prometheus/tagwatch-alerts.yml": "prometheus/tagwatch-alerts.yml",
    "grafana/tagwatch.json": "grafana/tagwatch.json",
    "config.example.toml": "config.example.toml",
    "alert.schema.json": "alert.schema.json",
}


def test_top_level_paths_are_links_to_the_package_data() -> None:
    assert set(TOP_LEVEL) == set(FILES)
    for name, top in TOP_LEVEL.items():
        path = REPO / top
        assert path.is_symlink(), f"{top} must be a symbolic link to tagwatch/ops/{name}"
        assert path.resolve() == (OPS / name).resolve()
        assert (OPS / name).is_file() and not (OPS / name).is_symlink()


def _ignore(directory: str, names: list[str]) -> set[str]:
    skip = {".venv", ".git", "build", "dist", "__pycache__", ".mypy_cache", ".ruff_cache",
            ".pytest_cache", ".hypothesis"}
    return {n for n in names if n in skip or n.endswith((".egg-info", ".db"))}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the working tree (the build writes build/ there)
    with this environment's setuptools: nothing is downloaded."""
    root = tmp_path_factory.mktemp("wheel")
    tree = root / "src"
    shutil.copytree(REPO, tree, symlinks=True, ignore=_ignore)
    out = root / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(out), str(tree)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = out.glob("tagwatch-*.whl")
    return built


def test_wheel_contains_the_ops_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        for name in FILES:
            data = archive.read(f"tagwatch/ops/{name}")
            assert data == (OPS / name).read_bytes(), name
        # ...and every module: a subpackage left out of pyproject's list would be missing.
        modules = {n for n in archive.namelist() if n.endswith(".py")}
    package = REPO / "tagwatch"
    assert modules == {str(p.relative_to(REPO)) for p in package.rglob("*.py")}


@pytest.mark.integration
def test_installed_wheel_copies_them_out_and_the_unit_verifies(wheel: Path,
                                                               tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install",
         "--quiet", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    script = env_dir / "bin" / "tagwatch"

    listed = subprocess.run([str(script), "ops-files"], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    for name in FILES:
        assert f"{env_dir}/lib/" in listed.stdout and f"tagwatch/ops/{name}" in listed.stdout

    out = tmp_path / "out"
    copied = subprocess.run([str(script), "ops-files", str(out)], capture_output=True,
                            text=True)
    assert copied.returncode == 0, copied.stderr
    for name in FILES:
        assert (out / name).read_bytes() == (OPS / name).read_bytes()
    assert "the unit runs /usr/bin/tagwatch: change its ExecStart= line" in copied.stdout
    again = subprocess.run([str(script), "ops-files", str(out)], capture_output=True,
                           text=True)
    assert again.returncode == 2 and "exists: not overwritten" in again.stderr

    # The unit as shipped, unchanged, passes `systemd-analyze verify` on a system whose
    # /usr/bin/tagwatch is this wheel's entry point (a --root tree standing for that host).
    require_tool(shutil.which("systemd-analyze") is not None, "systemd-analyze", "systemd")
    root = tmp_path / "root"
    for folder in ("usr/bin", "bin", "etc/systemd/system", "usr/lib/systemd"):
        (root / folder).mkdir(parents=True)
    shutil.copy(script, root / "usr/bin/tagwatch")
    shutil.copy(Path("/bin/kill").resolve(), root / "bin/kill")  # ExecReload=/bin/kill
    host_units = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                      if (p / "sysinit.target").exists())
    shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True)
    unit = root / "etc/systemd/system/tagwatch.service"
    shutil.copy(out / "systemd/tagwatch.service", unit)
    verify = subprocess.run(["systemd-analyze", "verify", f"--root={root}", str(unit)],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and verify.stdout == "" and verify.stderr == "", (
        f"systemd-analyze verify (exit {verify.returncode}):\n{verify.stdout}{verify.stderr}")
    # ...and names what is missing when tagwatch is not where the unit looks.
    (root / "usr/bin/tagwatch").unlink()
    verify = subprocess.run(["systemd-analyze", "verify", f"--root={root}", str(unit)],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode != 0
    assert "Command /usr/bin/tagwatch is not executable" in verify.stderr
