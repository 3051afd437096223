"""Manifest parsing: platforms from indexes, attestations skipped, bad answers refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagwatch.core.manifest import (
    ACCEPT,
    MAX_MANIFEST_BYTES,
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_V2,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    ManifestError,
    is_manifest_type,
    parse_manifest,
)

D = ["sha256:" + c * 64 for c in "0123456789"]


def index(*entries: dict, media_type: str | None = MEDIA_OCI_INDEX) -> bytes:  # type: ignore[type-arg]
    doc: dict = {"schemaVersion": 2, "manifests": list(entries)}  # type: ignore[type-arg]
    if media_type:
        doc["mediaType"] = media_type
    return json.dumps(doc, indent=3).encode()


def entry(digest: str, os: str, arch: str, variant: str | None = None, **annotations: str) -> dict:  # type: ignore[type-arg]
    platform = {"os": os, "architecture": arch}
    if variant:
        platform["variant"] = variant
    e = {"mediaType": MEDIA_OCI_MANIFEST, "digest": digest, "size": 1, "platform": platform}
    if annotations:
        e["annotations"] = {k.replace("_", "."): v for k, v in annotations.items()}
    return e


def test_accept_lists_all_four_modern_types() -> None:
    for media_type in (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_V2):
        assert media_type in ACCEPT
    assert ACCEPT.index(MEDIA_OCI_INDEX) < ACCEPT.index(MEDIA_OCI_MANIFEST)


def test_index_platforms_skip_attestations() -> None:
    body = index(
        entry(D[0], "linux", "amd64"),
        entry(D[1], "linux", "arm64", "v8"),
        entry(D[2], "linux", "arm", "v7"),
        entry(D[3], "unknown", "unknown", vnd_docker_reference_type="attestation-manifest"),
        entry(D[4], "linux", "amd64", vnd_docker_reference_type="attestation-manifest"),
    )
    manifest = parse_manifest(body, MEDIA_OCI_INDEX)
    assert manifest.is_index
    assert manifest.platforms == {"linux/amd64": D[0], "linux/arm64": D[1], "linux/arm/v7": D[2]}


def test_docker_list_and_index_without_media_type() -> None:
    body = index(entry(D[0], "linux", "amd64"), media_type=MEDIA_DOCKER_LIST)
    assert parse_manifest(body, MEDIA_DOCKER_LIST).platforms == {"linux/amd64": D[0]}
    # BuildKit < 0.14 wrote OCI indexes without a mediaType: the content type decides.
    body = index(entry(D[0], "linux", "amd64"), media_type=None)
    assert parse_manifest(body, MEDIA_OCI_INDEX).is_index
    assert parse_manifest(body, None).is_index


def test_image_manifest() -> None:
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": {"digest": D[5], "size": 2},
            "layers": [],
        }
    ).encode()
    manifest = parse_manifest(body, MEDIA_OCI_MANIFEST + "; charset=utf-8")
    assert not manifest.is_index and manifest.config_digest == D[5]


@pytest.mark.parametrize(
    "body,content_type,message",
    [
        (b"<html><body>Bad gateway</body></html>", "text/html", "not valid JSON"),
        (b"[1, 2]", MEDIA_OCI_INDEX, "not a JSON object"),
        (b'{"foo": 1}', "application/json", "no manifest media type"),
        (index(media_type=MEDIA_OCI_INDEX), MEDIA_OCI_INDEX, "index lists no platform images"),
        (index(entry(D[3], "unknown", "unknown")), MEDIA_OCI_INDEX, "no platform images"),
        (b'{"mediaType": "application/vnd.example+json"}', None, "unsupported manifest media"),
        (
            b'{"mediaType": "' + MEDIA_OCI_MANIFEST.encode() + b'"}',
            MEDIA_OCI_MANIFEST,
            "no config digest",
        ),
        (
            json.dumps({"mediaType": MEDIA_OCI_MANIFEST, "config": {"digest": D[0]}}).encode(),
            MEDIA_OCI_INDEX,
            "declares mediaType",
        ),
        (b" " * (MAX_MANIFEST_BYTES + 1), MEDIA_OCI_INDEX, "over the 4194304 limit"),
    ],
)
def test_bad_answers_are_errors(body: bytes, content_type: str | None, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(body, content_type)


def test_is_manifest_type() -> None:
    assert is_manifest_type("application/vnd.oci.image.index.v1+json; charset=utf-8")
    assert not is_manifest_type("text/html")
    assert not is_manifest_type("application/json")
    assert not is_manifest_type(None)


@given(st.binary(max_size=512), st.sampled_from([None, MEDIA_OCI_INDEX, "text/html"]))
def test_any_bytes_give_a_manifest_or_a_manifest_error(
    body: bytes, content_type: str | None
) -> None:
    try:
        parse_manifest(body, content_type)
    except ManifestError as exc:
        assert "\n" not in str(exc)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=20,
    )
)
def test_any_json_gives_a_manifest_or_a_manifest_error(doc: object) -> None:
    for wrapped in (
        doc,
        {"mediaType": MEDIA_OCI_INDEX, "manifests": doc},
        {"manifests": [doc]},
        {"mediaType": MEDIA_OCI_MANIFEST, "config": doc},
    ):
        try:
            manifest = parse_manifest(json.dumps(wrapped).encode(), None)
        except ManifestError as exc:
            assert "\n" not in str(exc)
        else:
            assert manifest.media_type
