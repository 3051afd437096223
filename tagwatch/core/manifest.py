"""Manifest media types and parsing: bytes in, a `Manifest` out. No I/O.

A registry answers a manifest request with one of four modern media types: an image index
(OCI) or manifest list (Docker), which name one image manifest per platform, or a single
image manifest (OCI or Docker schema 2). BuildKit adds attestation manifests to indexes
(platform `unknown/unknown`); they are not images and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tagwatch.core.jsondoc import JSONError, loads
from tagwatch.core.refs import platform_key

__all__ = [
    "ACCEPT",
    "IMAGE_TYPES",
    "INDEX_TYPES",
    "MAX_MANIFEST_BYTES",
    "MEDIA_DOCKER_LIST",
    "MEDIA_DOCKER_V2",
    "MEDIA_OCI_INDEX",
    "MEDIA_OCI_MANIFEST",
    "SCHEMA1_TYPES",
    "Manifest",
    "ManifestError",
    "is_manifest_type",
    "parse_manifest",
    "sha256_digest",
]

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_V1 = "application/vnd.docker.distribution.manifest.v1+json"
MEDIA_DOCKER_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_TYPES = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST})
IMAGE_TYPES = frozenset({MEDIA_OCI_MANIFEST, MEDIA_DOCKER_V2})
SCHEMA1_TYPES = frozenset({MEDIA_DOCKER_V1, MEDIA_DOCKER_V1_SIGNED})

# Every modern type, index types first. Leaving out the index types makes the distribution
# registry answer 404 for an OCI index, and a Docker list silently resolves to its amd64
# child; the legacy schema-1 types come last so that only schema-1-only repositories get them.
ACCEPT = ", ".join(
    [
        MEDIA_OCI_INDEX,
        MEDIA_DOCKER_LIST,
        MEDIA_OCI_MANIFEST,
        MEDIA_DOCKER_V2,
        MEDIA_DOCKER_V1_SIGNED,
        MEDIA_DOCKER_V1,
    ]
)

# The distribution spec asks clients to accept manifests of at least 4 MB; nothing real is
# near that, so anything larger is a broken or hostile answer.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

ATTESTATION_TYPE = "attestation-manifest"


class ManifestError(ValueError):
    """The bytes are not a manifest of a type we understand. The message is one line."""


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    # For an index: platform ("linux/arm64") -> image manifest digest, attestations skipped.
    platforms: dict[str, str] = field(default_factory=dict)
    # For an image manifest: the config blob's digest.
    config_digest: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    # For an image manifest: (digest, compressed size) of each layer, in order.
    layers: tuple[tuple[str, int], ...] = ()

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def sha256_digest(body: bytes) -> str:
    import hashlib  # loaded once a body is verified: a steady check makes HEADs only

    return "sha256:" + hashlib.sha256(body).hexdigest()


def is_manifest_type(content_type: str | None) -> bool:
    """True for a manifest media type (parameters such as `; charset=utf-8` are ignored)."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return base in INDEX_TYPES or base in IMAGE_TYPES or base in SCHEMA1_TYPES


def _media_type(content_type: str | None, doc: dict[str, Any]) -> str:
    declared = doc.get("mediaType")
    header = (content_type or "").split(";", 1)[0].strip().lower()
    if isinstance(declared, str) and declared:
        if header and is_manifest_type(header) and header != declared:
            raise ManifestError(
                f"manifest declares mediaType {declared} but was served as {header}"
            )
        return declared
    if is_manifest_type(header):
        return header
    # BuildKit before 0.14 wrote OCI indexes without a mediaType: sniff the shape.
    if "manifests" in doc:
        return MEDIA_OCI_INDEX
    if "config" in doc:
        return MEDIA_OCI_MANIFEST
    raise ManifestError("answer has no manifest media type")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_attestation(entry: dict[str, Any]) -> bool:
    platform = _dict(entry.get("platform"))
    annotations = _dict(entry.get("annotations"))
    return (
        platform.get("os") == "unknown"
        or platform.get("architecture") == "unknown"
        or annotations.get("vnd.docker.reference.type") == ATTESTATION_TYPE
    )


def parse_manifest(body: bytes, content_type: str | None) -> Manifest:
    """Parse a manifest or index. Raises ManifestError for anything else."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is {len(body)} bytes, over the {MAX_MANIFEST_BYTES} limit")
    try:
        doc = loads(body)
    except JSONError as exc:
        raise ManifestError(f"manifest: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object")
    media_type = _media_type(content_type, doc)
    annotations = {
        str(k): v for k, v in _dict(doc.get("annotations")).items() if isinstance(v, str)
    }
    if media_type in INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise ManifestError("index has no 'manifests' list")
        platforms: dict[str, str] = {}
        for entry in entries:
            if not isinstance(entry, dict) or _is_attestation(entry):
                continue
            digest = entry.get("digest")
            platform = entry.get("platform")
            if not isinstance(digest, str) or not isinstance(platform, dict):
                continue
            os_, arch = platform.get("os"), platform.get("architecture")
            if not isinstance(os_, str) or not isinstance(arch, str):
                continue
            variant = platform.get("variant")
            try:
                key = platform_key(os_, arch, variant if isinstance(variant, str) else None)
            except ValueError:
                continue
            platforms.setdefault(key, digest)
        if not platforms:
            raise ManifestError("index lists no platform images")
        return Manifest(media_type, platforms=platforms, annotations=annotations)
    if media_type in IMAGE_TYPES:
        config = doc.get("config")
        config_digest = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(config_digest, str):
            raise ManifestError("image manifest has no config digest")
        layers: list[tuple[str, int]] = []
        for layer in doc.get("layers") or []:
            if isinstance(layer, dict) and isinstance(layer.get("digest"), str):
                size = layer.get("size")
                layers.append((layer["digest"], size if isinstance(size, int) else 0))
        return Manifest(
            media_type, config_digest=config_digest, annotations=annotations, layers=tuple(layers)
        )
    if media_type in SCHEMA1_TYPES:
        return Manifest(media_type)
    raise ManifestError(f"unsupported manifest media type {media_type}")
