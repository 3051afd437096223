"""The per-target series of /metrics, written as text by tagwatch.metrics._StateWriter, are
exactly what prometheus_client writes for the same families built as MetricFamily objects
(the collector tagwatch had before; it is the oracle here): same lines, same order, same
escaping and number formatting."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from tagwatch.core.model import Kind, State, Target
from tagwatch.core.refs import parse_ref
from tagwatch.metrics import Metrics, StateRow, _StateWriter, _ts
from tagwatch.store import StatusRow

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC).timestamp()


class _StateCollector:
    """Per-target series, built from `rows()` at every scrape."""

    def __init__(self, rows: Callable[[], Sequence[StateRow]], clock: Callable[[], float]):
        self._rows = rows
        self._clock = clock

    def describe(self) -> Iterable[Metric]:
        return []  # built at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        rows = self._rows()
        now = self._clock()
        tag_labels = ["image", "tag"]
        pin_labels = ["image", "tag", "pinned"]
        target_labels = ["kind", "image", "tag", "pinned"]
        info = GaugeMetricFamily(
            "tagwatch_tag_info",
            "The digest the tag resolves to now (value is always 1).",
            labels=[*tag_labels, "digest"],
        )
        changed = GaugeMetricFamily(
            "tagwatch_tag_changed_timestamp_seconds",
            "When the tag last moved (first sight if never).",
            labels=tag_labels,
        )
        checked = GaugeMetricFamily(
            "tagwatch_tag_checked_timestamp_seconds",
            "Last successful check of the tag.",
            labels=tag_labels,
        )
        changes = CounterMetricFamily(
            "tagwatch_tag_changes", "Moves of the tag seen by tagwatch.", labels=tag_labels
        )
        success = GaugeMetricFamily(
            "tagwatch_tag_check_success",
            "Whether the last check of the tag succeeded (0/1).",
            labels=tag_labels,
        )
        present = GaugeMetricFamily(
            "tagwatch_tag_present",
            "0 when the registry says the tag does not exist (vanished), else 1; absent for "
            "a tag the registry never answered for.",
            labels=tag_labels,
        )
        stale = GaugeMetricFamily(
            "tagwatch_pin_stale", "Whether the pin is stale (0/1).", labels=pin_labels
        )
        missing = GaugeMetricFamily(
            "tagwatch_pin_missing",
            "Whether the pinned digest no longer exists upstream (0/1; checked while behind).",
            labels=pin_labels,
        )
        newer = GaugeMetricFamily(
            "tagwatch_tag_newer_available",
            "Newer version tags in the tag's track (for targets with a `newer` policy).",
            labels=tag_labels,
        )
        behind = GaugeMetricFamily(
            "tagwatch_pin_behind_seconds",
            "How long the pin has been behind (0 when current).",
            labels=pin_labels,
        )
        state = GaugeMetricFamily(
            "tagwatch_target_state",
            "The state of each watch and pin (value is always 1; the state is a label).",
            labels=[*target_labels, "state"],
        )
        failures = GaugeMetricFamily(
            "tagwatch_target_consecutive_failures", "Failed checks in a row.", labels=target_labels
        )
        targets = {Kind.WATCH.value: 0, Kind.PIN.value: 0}
        tags_done: set[tuple[str, str]] = set()
        newer_done: set[tuple[str, str]] = set()
        for item in rows:
            target, row = item.target, item.row
            image, tag = target.ref.name, target.tag
            pinned = target.pinned or ""
            targets[target.kind.value] += 1
            if row is None:
                continue  # not checked yet: no series rather than made-up values
            if row.state:
                state.add_metric([target.kind.value, image, tag, pinned, row.state.value], 1)
            failures.add_metric([target.kind.value, image, tag, pinned], float(row.fail_count))
            if target.kind is Kind.PIN:
                is_stale = row.state is State.STALE
                stale.add_metric([image, tag, pinned], 1.0 if is_stale else 0.0)
                missing.add_metric([image, tag, pinned], 1.0 if row.pin_missing else 0.0)
                since = _ts(row.behind_since)
                behind.add_metric([image, tag, pinned], max(0.0, now - since) if since else 0.0)
            if target.newer and (image, tag) not in newer_done:
                newer_done.add((image, tag))
                newer.add_metric([image, tag], float(len(row.newer)))
            if (image, tag) in tags_done:
                continue
            tags_done.add((image, tag))
            if row.current_digest:
                info.add_metric([image, tag, row.current_digest], 1)
            when = _ts(row.last_changed)
            if when is not None:
                changed.add_metric([image, tag], when)
            last = _ts(row.checked_at)
            if last is not None:
                checked.add_metric([image, tag], last)
            changes.add_metric([image, tag], float(row.changes))
            success.add_metric([image, tag], 0.0 if row.error else 1.0)
            if row.answered:  # never resolved: no presence series, so no false "vanished"
                present.add_metric([image, tag], 1.0 if row.present else 0.0)
        count = GaugeMetricFamily(
            "tagwatch_targets", "Configured watches and pins.", labels=["kind"]
        )
        for kind, n in targets.items():
            count.add_metric([kind], n)
        yield from (
            count,
            info,
            changed,
            checked,
            changes,
            success,
            present,
            state,
            failures,
            stale,
            missing,
            behind,
            newer,
        )


def _row(target: Target, **kw: object) -> StatusRow:
    base = StatusRow(
        key=target.key,
        kind=target.kind,
        pinned=target.pinned,
        state=State.OK,
        fail_count=0,
        changes=0,
        behind_since=None,
        behind_evidence=None,
        pin_missing=False,
        newer=(),
        tag_key=target.tag_key,
        digest="sha256:" + "a" * 64,
        platforms=MappingProxyType({}),
        present=True,
        first_seen=datetime(2026, 11, 1, tzinfo=UTC),
        changed_at=None,
        checked_at=datetime(2026, 11, 29, 11, 59, 1, tzinfo=UTC),
        error=None,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _rows() -> list[StateRow]:
    pinned = "sha256:" + "b" * 64
    watch = Target(Kind.WATCH, parse_ref("registry.example:5000/team/app:1.2"))
    same_tag = Target(Kind.WATCH, parse_ref("registry.example:5000/team/app:1.2"), newer="minor")
    pin = Target(Kind.PIN, parse_ref(f"docker.io/library/python:3.12@{pinned}"))
    stale_pin = Target(Kind.PIN, parse_ref(f"ghcr.io/o/x:latest@{pinned}"))
    newer = Target(Kind.WATCH, parse_ref("quay.io/a/b:v1"), newer="patch")
    vanished = Target(Kind.WATCH, parse_ref("quay.io/a/b:gone"))
    failing = Target(Kind.WATCH, parse_ref("quay.io/a/b:broken"))
    never = Target(Kind.WATCH, parse_ref("quay.io/a/b:never"))
    unchecked = Target(Kind.WATCH, parse_ref("quay.io/a/b:unchecked"))
    odd = Target(Kind.WATCH, parse_ref('localhost:5000/x/y:t"1'.replace('"', "_")))
    return [
        StateRow(watch, _row(watch, changes=3, changed_at=datetime(2026, 11, 20, tzinfo=UTC))),
        StateRow(same_tag, _row(same_tag, newer=("1.3", "1.4"))),
        StateRow(pin, _row(pin, state=State.OK)),
        StateRow(
            stale_pin,
            _row(
                stale_pin,
                state=State.STALE,
                behind_since=datetime(2026, 11, 28, 6, 30, tzinfo=UTC),
                pin_missing=True,
            ),
        ),
        StateRow(newer, _row(newer, newer=("v1.0.1",))),
        StateRow(vanished, _row(vanished, state=State.VANISHED, present=False)),
        StateRow(
            failing,
            _row(failing, state=State.ERROR, fail_count=4, error='boom "quoted" \\ back\nline'),
        ),
        StateRow(never, _row(never, state=None, digest=None, checked_at=None, first_seen=None)),
        StateRow(unchecked, None),
        StateRow(odd, _row(odd, digest='sha256:"odd\\digest\nname"')),
    ]


def _oracle(rows: Sequence[StateRow]) -> bytes:
    return _oracle_at(rows, NOW)


def _oracle_at(rows: Sequence[StateRow], now: float) -> bytes:
    registry = CollectorRegistry()
    registry.register(_StateCollector(lambda: rows, lambda: now))
    return generate_latest(registry)


def test_the_text_writer_writes_what_prometheus_client_writes() -> None:
    rows = _rows()
    text = _StateWriter(lambda: rows, lambda: NOW).text()
    assert text == _oracle(rows)
    assert b'tagwatch_tag_info{digest="sha256:\\"odd\\\\digest\\nname\\""' in text


def test_no_rows_and_many_rows_alike() -> None:
    assert _StateWriter(list, lambda: NOW).text() == _oracle([])
    many = [
        StateRow(t, _row(t))
        for t in (Target(Kind.WATCH, parse_ref(f"r.example/p/r{i % 7}:t{i}")) for i in range(500))
    ]
    assert _StateWriter(lambda: many, lambda: NOW).text() == _oracle(many)


def _families(text: str) -> dict[str, list[str]]:
    """The exposition's lines by family (its # HELP name), in order."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
        out.setdefault(name, []).append(line)
    return out


def _steady(text: str) -> list[str]:
    """The lines of an exposition that may not change between two scrapes of one state:
    all but the process's own (CPU, memory) and the pins' behind seconds (the clock)."""
    moving = ("process_", "python_", "tagwatch_pin_behind_seconds")
    return [
        line
        for name, lines in _families(text).items()
        if not name.startswith(moving)
        for line in lines
    ]


def test_gzip_exposition_is_the_same_text_compressed() -> None:
    rows = _rows()
    metrics = Metrics(rows=lambda: rows, clock=lambda: NOW)
    plain = metrics.exposition().decode()
    packed = metrics.exposition(gzip=True)
    assert packed[:2] == b"\x1f\x8b"  # a gzip member, as Content-Encoding: gzip says
    unpacked = gzip.decompress(packed).decode()
    assert _steady(unpacked) == _steady(plain)
    assert unpacked.count("\n") == plain.count("\n")
    # One member, read whole by a decoder that stops after the first (httpx's, curl's).
    one = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert one.decompress(packed) + one.flush() == unpacked.encode() and one.eof
    assert one.unused_data == b""
    # Every state family is there, each once, with what prometheus_client writes for it.
    families = _families(unpacked)
    oracle = _families(_oracle(rows).decode())
    assert {n: families[n] for n in oracle} == oracle


def test_the_steady_families_are_packed_once_per_state() -> None:
    rows, version, reads = _rows(), [1], [0]
    clock = [NOW]

    def read() -> list[StateRow]:
        reads[0] += 1
        return rows

    metrics = Metrics(rows=read, clock=lambda: clock[0], version=lambda: version[0])
    first = gzip.decompress(metrics.exposition(gzip=True)).decode()
    clock[0] += 90.0
    second = gzip.decompress(metrics.exposition(gzip=True)).decode()
    assert reads == [1]  # the second scrape read nothing
    assert _steady(second) == _steady(first)
    # ... and its pins' behind seconds are the clock's, not the first scrape's
    behind = "tagwatch_pin_behind_seconds"
    assert _families(first)[behind] != _families(second)[behind]
    assert _families(second)[behind] == _families(_oracle_at(rows, clock[0]).decode())[behind]
    # A new state (the version moves) is read and written again.
    rows = [StateRow(rows[0].target, replace(rows[0].row, changes=99)), *rows[1:]]
    version[0] += 1
    third = gzip.decompress(metrics.exposition(gzip=True)).decode()
    assert reads == [2]
    assert _families(third) != _families(second)
    assert 'tagwatch_tag_changes_total{image="registry.example:5000/team/app",tag="1.2"} 99.0' in (
        third
    )
    # Without a version (tests, one-shot users), every scrape reads the state.
    metrics = Metrics(rows=read, clock=lambda: NOW)
    metrics.exposition(gzip=True)
    metrics.exposition(gzip=True)
    assert reads == [4]


def test_a_cycle_warms_the_next_scrape_only_when_scrapes_come() -> None:
    rows, version, reads = _rows(), [1], [0]

    def read() -> list[StateRow]:
        reads[0] += 1
        return rows

    metrics = Metrics(rows=read, clock=lambda: NOW, version=lambda: version[0])
    version[0] += 1
    metrics.warm()  # nobody scraped yet: nothing is made
    assert reads == [0]
    metrics.exposition(gzip=True)
    assert reads == [1]
    version[0] += 1
    metrics.warm()  # scraped since the last pack: the new state is packed now ...
    assert reads == [2]
    metrics.exposition(gzip=True)  # ... and the scrape finds it made
    assert reads == [2]
    version[0] += 1
    metrics.warm()
    metrics.warm()  # at most one pack per scrape, however many cycles end
    assert reads == [3]
