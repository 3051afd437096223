"""The files an operator installs beside tagwatch, shipped inside the package (the canonical
copies: the repository's systemd/, prometheus/, grafana/ and config.example.toml are
symbolic links to these). `tagwatch ops-files` lists them or copies them out.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

__all__ = ["FILES", "copy_to", "source_path"]

# path inside the package -> what it is
FILES: dict[str, str] = {
    "systemd/tagwatch.service": "systemd unit for `tagwatch run`",
    "prometheus/tagwatch-alerts.yml": "Prometheus alerting rules",
    "grafana/tagwatch.json": "Grafana dashboard",
    "config.example.toml": "example configuration, every key explained",
    "alert.schema.json": 'JSON Schema of the alerts a [[notify]] format = "json" target receives',
}


def source_path(name: str) -> Path:
    """Where the installed file is (a real file: the package is never zipped)."""
    return Path(str(resources.files(__name__).joinpath(name)))


def copy_to(directory: Path, force: bool = False) -> list[Path]:
    """Copy every file under `directory`, keeping the sub-folders. Refuses (FileExistsError
    naming the file) to overwrite anything unless `force`; nothing is copied then."""
    targets = [(source_path(name), directory / name) for name in FILES]
    if not force:
        for _, target in targets:
            if target.exists():
                raise FileExistsError(target)
    written = []
    for source, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        os.chmod(target, 0o644)
        written.append(target)
    return written
