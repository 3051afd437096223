"""The pure half of `tagwatch bump` (tagwatch.core.bump): where a pin's digest is written,
what it should become, and rewriting bytes so that nothing but the digest changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagwatch.core.bump import (
    BOM,
    Edit,
    Pinned,
    behind_since,
    decode,
    find_pins,
    pinned_from_history,
    propose,
    rewrite,
    summary,
    unified_diff,
)
from tagwatch.core.model import Resolved, Stretch
from tagwatch.core.scan import scan_compose, scan_dockerfile, scan_kubernetes

OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64
ARM = "sha256:" + "c" * 64
ARM_NEW = "sha256:" + "d" * 64
AMD_NEW = "sha256:" + "e" * 64
INDEX = "application/vnd.oci.image.index.v1+json"


def dockerfile_pins(text: str):  # type: ignore[no-untyped-def]
    return find_pins(text, scan_dockerfile(text, "Dockerfile"))


# --- finding the digest -----------------------------------------------------------------


def test_dockerfile_digest_offsets_with_crlf_bom_and_no_final_newline() -> None:
    text = (
        "\ufeff# syntax=docker/dockerfile:1\r\n"
        f"FROM  --platform=linux/arm64   python:3.12@{OLD} AS build\r\n"
        f"COPY --from=alpine:3.20@{OLD} /a /a\r\n"
        f"RUN --mount=type=bind,from=busybox:1@{OLD},target=/b true\r\n"
        f"FROM python:3.12-slim@{OLD}"
    )
    pins = dockerfile_pins(text)
    assert [(p.line, p.context) for p in pins] == [
        (2, "FROM"),
        (3, "COPY --from"),
        (4, "RUN --mount"),
        (5, "FROM"),
    ]
    for pin in pins:
        assert pin.problem is None and pin.at is not None
        assert text[pin.at : pin.at + len(OLD)] == OLD
    assert len({p.at for p in pins}) == 4


def test_references_that_cannot_be_rewritten_say_why() -> None:
    text = (
        f"ARG BASE=python:3.12@{OLD}\n"
        "ARG TAG=3.12\n"
        "FROM ${BASE}\n"
        f"FROM python:${{TAG}}@{OLD}\n"
        f"FROM python:3.12@\\\n{OLD}\n"
        f"FROM alpine@{OLD}\n"
    )
    by_line = {p.line: p for p in dockerfile_pins(text)}
    assert by_line[3].at is None and "built from ${BASE}" in (by_line[3].problem or "")
    assert by_line[3].ref is not None  # still checked: it can be behind all the same
    assert by_line[4].at is None and "built from ${TAG}" in (by_line[4].problem or "")
    assert by_line[5].at is None and "line continuation" in (by_line[5].problem or "")
    assert by_line[7].at is None and "no tag to follow" in (by_line[7].problem or "")


def test_unresolved_variable_in_a_pinned_reference_is_reported() -> None:
    pins = dockerfile_pins(f"FROM python:${{UNSET}}@{OLD}\nFROM python:${{UNSET}}\n")
    assert len(pins) == 1  # the one without a digest is no pin
    assert pins[0].ref is None and "${UNSET}" in (pins[0].problem or "")


def test_compose_spans_quotes_comments_merge_keys_and_variables() -> None:
    text = (
        "x-base: &base\n"
        f"  image: 'nginx:1.27@{OLD}'   # pinned by hand\n"
        "services:\n"
        "  web:\n"
        "    <<: *base\n"
        "  api:\n"
        "    <<: *base\n"
        "  db:\n"
        f"    image: ${{DB_IMAGE:-postgres:16@{OLD}}}\n"
        "  cache:\n"
        f'    image: "redis:7@\\x73ha256:{"a" * 64}"\n'
    )
    pins = find_pins(text, scan_compose(text, "compose.yaml"))
    rewritable = [p for p in pins if p.at is not None]
    assert len(rewritable) == 1  # web and api share one written digest: one edit
    assert text[rewritable[0].at : rewritable[0].at + len(OLD)] == OLD  # type: ignore[operator]
    problems = {p.context: p.problem for p in pins if p.at is None}
    assert "built from ${DB_IMAGE}" in (problems["compose service db"] or "")
    assert "not written out literally" in (problems["compose service cache"] or "")


def test_kubernetes_block_scalar_and_flow_styles() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        f"  - {{name: a, image: 'busybox:1@{OLD}'}}\n"
        "  - name: b\n    image: >-\n"
        f"      busybox:1@{OLD}\n"
    )
    pins = find_pins(text, scan_kubernetes(text, "pod.yaml"))
    assert len(pins) == 2 and all(p.at is not None for p in pins)
    assert all(text[p.at : p.at + len(OLD)] == OLD for p in pins)  # type: ignore[operator]


# --- deciding ---------------------------------------------------------------------------


def test_propose() -> None:
    index = Resolved(NEW, INDEX, {"linux/amd64": AMD_NEW, "linux/arm64": ARM_NEW})
    assert propose(index, Pinned("index")).new == NEW
    arm = propose(index, Pinned("image", "linux/arm64"))
    assert (arm.new, arm.platform) == (ARM_NEW, "linux/arm64")
    gone = propose(index, Pinned("image", "linux/s390x"))
    assert gone.new is None and "linux/s390x" in (gone.reason or "")
    unknown = propose(index, Pinned(None, why="the registry no longer serves it"))
    assert unknown.new is None and "no longer serves" in (unknown.reason or "")
    assert propose(index, None).new is None
    assert propose(index, Pinned("image")).new is None
    single = Resolved(NEW, "application/vnd.oci.image.manifest.v1+json", {})
    assert propose(single, None).new == NEW  # one image: nothing to choose between


def test_history_tells_what_a_digest_was_and_since_when() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    history = [
        Stretch(NEW, {"linux/arm64": ARM_NEW}, t0 + timedelta(days=3), t0 + timedelta(days=5)),
        Stretch(OLD, {"linux/arm64": ARM}, t0, t0 + timedelta(days=3)),
    ]
    assert pinned_from_history(OLD, history) == Pinned("index")
    assert pinned_from_history(ARM, history) == Pinned("image", "linux/arm64")
    assert pinned_from_history("sha256:" + "f" * 64, history) is None
    now = t0 + timedelta(days=5)
    assert behind_since(ARM, history, now) == t0 + timedelta(days=3)
    assert behind_since(ARM_NEW, history, now) == now
    assert behind_since("sha256:" + "f" * 64, history, now) is None


# --- rewriting --------------------------------------------------------------------------


def test_rewrite_changes_only_the_digest() -> None:
    data = BOM + f"# é comment\r\nFROM python:3.12@{OLD}  # keep\r\nRUN true".encode()
    text = decode(data)
    assert text is not None
    at = text.index(OLD)
    out = rewrite(data, [Edit(at, OLD, NEW)])
    assert out == data.replace(OLD.encode(), NEW.encode())
    with pytest.raises(ValueError):
        rewrite(data, [Edit(at + 1, OLD, NEW)])
    assert decode(b"\xff\xfe") is None


@given(
    before=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    after=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    bom=st.booleans(),
)
def test_rewrite_round_trips_any_surrounding_text(before: str, after: str, bom: bool) -> None:
    data = (BOM if bom else b"") + (before + OLD + after).encode()
    out = rewrite(data, [Edit(len(before), OLD, NEW)])
    assert out == (BOM if bom else b"") + (before + NEW + after).encode()


def test_unified_diff_keeps_crlf_and_marks_a_missing_final_newline() -> None:
    old = f"# c\r\nFROM a:1@{OLD}".encode()
    new = f"# c\r\nFROM a:1@{NEW}".encode()
    diff = unified_diff("svc/Dockerfile", old, new)
    assert diff.startswith("--- a/svc/Dockerfile\n+++ b/svc/Dockerfile\n@@ -1,2 +1,2 @@\n")
    assert " # c\r\n" in diff
    assert diff.endswith(
        f"-FROM a:1@{OLD}\n\\ No newline at end of file\n"
        f"+FROM a:1@{NEW}\n\\ No newline at end of file\n"
    )
    assert unified_diff("/abs/Dockerfile", old, new).startswith("--- /abs/Dockerfile\n")
    assert "\\x0a" in unified_diff("evil\nname", old, new).splitlines()[0]


def test_summary_line() -> None:
    assert (
        summary({"behind": 3, "bumped": 3}, 2, wrote=True, stale=None)
        == "3 pins behind in 2 files; 3 bumped"
    )
    assert (
        summary({"behind": 2, "bumped": 1, "current": 4, "error": 1}, 1, wrote=False, stale=None)
        == "2 pins behind in 1 file; 1 to bump (--write), 1 left alone; 4 current, "
        "1 could not be checked"
    )
    assert summary({"current": 1}, 0, wrote=True, stale=0) == "0 pins behind (0 stale); 1 current"
