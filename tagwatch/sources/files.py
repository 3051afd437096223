"""`[[source]] path`: the image references in a team's files (Dockerfiles, compose files,
Kubernetes manifests; tagwatch.core.scan), each with the file and line it came from."""

from __future__ import annotations

import logging
import os

from tagwatch.config import SourceConfig
from tagwatch.core.refs import ImageRef
from tagwatch.errors import SourceError

__all__ = ["read"]

log = logging.getLogger("tagwatch.sources")


def read(source: SourceConfig) -> list[tuple[ImageRef, str]]:
    """(reference with a tag and maybe a digest, "file:line") for every usable reference.
    Unresolvable ones (`${VAR}`) and digest-only ones are logged, never guessed."""
    from tagwatch.core.scan import scan_paths  # PyYAML loads only when there are sources

    assert source.path is not None
    try:
        items = scan_paths([source.path], include=source.include, exclude=source.exclude)
    except (FileNotFoundError, OSError) as exc:
        raise SourceError(f"{source.where}: cannot scan {source.path}: {exc}") from None
    is_dir = os.path.isdir(source.path)
    base = source.path if is_dir else os.path.dirname(source.path)
    out = []
    for item in items:
        where = os.path.join(base, item.file) if is_dir else item.file
        place = f"{where}:{item.line}"
        ref = item.ref
        if ref is None:
            log.debug("%s: %s: %s", source.where, place, item.problem)
            continue
        if ref.tag is None:  # pinned by digest alone: there is no tag to follow
            log.debug("%s: %s: %s has no tag; skipped", source.where, place, ref)
            continue
        out.append((ref, place))
    return out
