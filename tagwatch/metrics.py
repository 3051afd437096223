"""The Prometheus edge: what tagwatch exports (tagwatch.web serves it).

Two kinds of series:

* Process-wide counters and histograms (requests, cycles, events, notifications) live in
  prometheus_client objects, created at start with every known label value set to 0, so
  that `rate()` and `increase()` work from the first scrape.
* Per-target series (`tagwatch_tag_*`, `tagwatch_pin_*`, `tagwatch_target_*`) are written
  as text from the current state (`_StateWriter`, byte for byte what prometheus_client would
  write for them, without its per-sample objects), kept gzip-compressed between two changes
  of that state: a target removed from the config disappears from the next scrape, and no
  series object exists between scrapes.

Digests appear only as a label of `tagwatch_tag_info`, whose value is always 1, so each move
adds exactly one new series.
"""

from __future__ import annotations

import logging
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.utils import floatToGoString

from tagwatch import __version__
from tagwatch.core.model import EventKind, Kind, State, Target
from tagwatch.errors import StoreError
from tagwatch.registry.gate import parse_ratelimit_header
from tagwatch.store import StatusRow

__all__ = ["Metrics", "StateRow", "parse_ratelimit"]

log = logging.getLogger("tagwatch.metrics")

EVENT_KINDS = [e.value for e in EventKind if e not in (EventKind.TEST, EventKind.FIRST_SEEN)]
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CYCLE_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def parse_ratelimit(value: str | None) -> float | None:
    """`76;w=21600` (Docker Hub) or `76` -> 76.0; None when absent or unreadable."""
    parsed = parse_ratelimit_header(value)
    return parsed[0] if parsed else None


@dataclass(frozen=True, slots=True)
class StateRow:
    """What the collector needs about one target: its config and its stored status row."""

    target: Target
    row: StatusRow | None


def _ts(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


# The per-target families, in the order they are written: (name, type, help, label names).
_TAG = ("image", "tag")
_PIN = ("image", "tag", "pinned")
_TARGET = ("kind", "image", "tag", "pinned")
STATE_FAMILIES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("tagwatch_targets", "gauge", "Configured watches and pins.", ("kind",)),
    (
        "tagwatch_tag_info",
        "gauge",
        "The digest the tag resolves to now (value is always 1).",
        (*_TAG, "digest"),
    ),
    (
        "tagwatch_tag_changed_timestamp_seconds",
        "gauge",
        "When the tag last moved (first sight if never).",
        _TAG,
    ),
    (
        "tagwatch_tag_checked_timestamp_seconds",
        "gauge",
        "Last successful check of the tag.",
        _TAG,
    ),
    ("tagwatch_tag_changes", "counter", "Moves of the tag seen by tagwatch.", _TAG),
    (
        "tagwatch_tag_check_success",
        "gauge",
        "Whether the last check of the tag succeeded (0/1).",
        _TAG,
    ),
    (
        "tagwatch_tag_present",
        "gauge",
        "0 when the registry says the tag does not exist (vanished), else 1; absent for "
        "a tag the registry never answered for.",
        _TAG,
    ),
    (
        "tagwatch_target_state",
        "gauge",
        "The state of each watch and pin (value is always 1; the state is a label).",
        (*_TARGET, "state"),
    ),
    ("tagwatch_target_consecutive_failures", "gauge", "Failed checks in a row.", _TARGET),
    ("tagwatch_pin_stale", "gauge", "Whether the pin is stale (0/1).", _PIN),
    (
        "tagwatch_pin_missing",
        "gauge",
        "Whether the pinned digest no longer exists upstream (0/1; checked while behind).",
        _PIN,
    ),
    (
        "tagwatch_pin_behind_seconds",
        "gauge",
        "How long the pin has been behind (0 when current).",
        _PIN,
    ),
    (
        "tagwatch_tag_newer_available",
        "gauge",
        "Newer version tags in the tag's track (for targets with a `newer` policy).",
        _TAG,
    ),
)


def _escape(value: str) -> str:
    """A label value as the text format writes it (prometheus_client's own escaping)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


# The one state family whose values move with the clock (now - behind_since): written at
# every scrape. Every other one changes only when the recorded state or the targets do.
_MOVING = frozenset({"tagwatch_pin_behind_seconds"})
_STEADY = tuple(name for name, *_ in STATE_FAMILIES if name not in _MOVING)


@dataclass(frozen=True)
class _Packed:
    """The state families that do not move with the clock, deflated once per change of
    `version`, with what a scrape needs to add the rest: the pins' label text and when
    each fell behind."""

    version: Any
    deflated: bytes  # raw deflate blocks, sync-flushed: more blocks may follow
    crc: int  # CRC-32 and length of the text they hold (gzip's trailer counts it all)
    length: int
    pins: list[tuple[str, float | None]]


class _StateWriter:
    """The per-target series, written as exposition text from `rows()` at every scrape.

    Exactly what prometheus_client writes for these families (tests hold the two equal),
    without its objects: a scrape of 100,000 watches builds 800,000 samples, which through
    MetricFamily objects cost ~7 s of CPU and ~450 MB at the peak; here each line is one
    format of already-escaped label text, and each distinct label value and number is
    escaped or formatted once per scrape.

    With `version` (a value that changes whenever the rows or the targets may have), the
    gzip exposition keeps the families that do not move with the clock compressed between
    two changes: at 100,000 watches reading the rows and writing their text is ~2 s, and a
    daemon's state changes once per cycle while Prometheus scrapes several times."""

    def __init__(
        self,
        rows: Callable[[], Sequence[StateRow]],
        clock: Callable[[], float],
        version: Callable[[], Any] | None = None,
    ):
        self._rows = rows
        self._clock = clock
        self._version = version
        self._packed: _Packed | None = None
        self._scraped = False  # a gzip scrape since the last pack
        self._lock = threading.Lock()

    def text(self) -> bytes:
        return b"".join(self.chunks())

    def chunks(self, names: Iterable[str] | None = None) -> Iterator[bytes]:
        """The exposition text of each family in turn (`names`: only those): only one
        family's lines exist at a time (at 100,000 watches a family is ~10 MB of text, all
        of them ~80 MB)."""
        text = _Text()
        series = _Series.of(self._rows(), text)
        yield from _families(series, text, self._clock(), names)

    def exposition(self, head: bytes, gzip: bool) -> bytes:
        """The state families that do not move with the clock, then `head` (the process-wide
        metrics), then the one that does; `gzip`: as one gzip member."""
        if not gzip:
            series_text = _Text()
            series = _Series.of(self._rows(), series_text)
            now = self._clock()
            return b"".join(
                [
                    *_families(series, series_text, now, _STEADY),
                    head,
                    *_families(series, series_text, now, _MOVING),
                ]
            )
        self._scraped = True
        packed = self._pack()
        tail = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
        parts = [_GZIP_HEADER, packed.deflated]
        crc, length = packed.crc, packed.length
        for chunk in (head, _pins_behind(packed.pins, self._clock())):
            parts.append(tail.compress(chunk))
            crc, length = zlib.crc32(chunk, crc), length + len(chunk)
        parts += [tail.flush(), struct.pack("<II", crc, length & 0xFFFFFFFF)]
        return b"".join(parts)

    def warm(self) -> None:
        """Pack a changed state now (the daemon calls this after each cycle), so that the
        next scrape finds it made; only when a gzip scrape came since the last pack: never
        more packs than scrapes, and none for a daemon nobody scrapes."""
        if self._version is None or not self._scraped:
            return
        self._scraped = False
        try:
            self._pack()
        except StoreError as exc:  # the next scrape meets it, and answers 500
            log.warning("metrics: %s", exc)

    def _pack(self) -> _Packed:
        with self._lock:  # two scrapes at once: one packs, the other waits and reuses it
            version = self._version() if self._version is not None else object()
            if self._packed is not None and self._packed.version == version:
                return self._packed
            self._packed = None  # the old text goes before the new is made
            text = _Text()
            series = _Series.of(self._rows(), text)
            # Level 1: the text is repetitive enough (~30x smaller); higher levels cost seconds.
            packer = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
            parts, crc, length = [], 0, 0
            for chunk in _families(series, text, 0.0, _STEADY):
                parts.append(packer.compress(chunk))
                crc, length = zlib.crc32(chunk, crc), length + len(chunk)
            parts.append(packer.flush(zlib.Z_SYNC_FLUSH))
            pins = [(ipt, _ts(row.behind_since)) for ipt, row in series.pins]
            self._packed = _Packed(version, b"".join(parts), crc, length, pins)
            return self._packed


# A gzip member's header: deflate, no name or comment, no time, unknown OS (RFC 1952).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def _pins_behind(pins: Sequence[tuple[str, float | None]], now: float) -> bytes:
    """tagwatch_pin_behind_seconds, as _family_lines writes it, from the packed pins."""
    num = _Text().num
    family = next(f for f in STATE_FAMILIES if f[0] == "tagwatch_pin_behind_seconds")
    return _family_text(family, (f"{{{ipt}}} {num(_behind(now, since))}" for ipt, since in pins))


def _behind(now: float, since: float | None) -> float:
    """A pin's behind seconds: 0 while it is current."""
    return max(0.0, now - since) if since else 0.0


def _families(
    series: _Series, text: _Text, now: float, names: Iterable[str] | None = None
) -> Iterator[bytes]:
    """Each family's exposition text (those in `names`, else all), in STATE_FAMILIES order."""
    lines = _family_lines(series, text, now)
    wanted = None if names is None else set(names)
    for family in STATE_FAMILIES:
        if wanted is None or family[0] in wanted:
            yield _family_text(family, lines[family[0]]())


def _family_text(family: tuple[str, str, str, Any], lines: Iterable[str]) -> bytes:
    """One family's HELP, TYPE and sample lines (each line: what follows the sample name)."""
    name, kind, doc, _ = family
    sample = f"{name}_total" if kind == "counter" else name
    text = [f"# HELP {sample} {doc}\n# TYPE {sample} {kind}\n"]
    text += [f"{sample}{line}\n" for line in lines]
    return "".join(text).encode()


class _Text:
    """Label values escaped and numbers formatted as prometheus_client does, each distinct
    one once per scrape."""

    def __init__(self) -> None:
        self._escaped: dict[str, str] = {}
        self._numbers: dict[float, str] = {}

    def esc(self, value: str) -> str:
        text = self._escaped.get(value)
        if text is None:
            text = self._escaped[value] = _escape(value)
        return text

    def num(self, value: float) -> str:
        text = self._numbers.get(value)
        if text is None:
            text = self._numbers[value] = floatToGoString(value)  # type: ignore[no-untyped-call]
        return text


@dataclass
class _Series:
    """Which rows give which series, with their label text (labels sorted by name, as
    prometheus_client writes them): one pass over the rows."""

    targets: dict[str, int]
    tags: list[tuple[str, StatusRow]]  # the first row of each (image, tag)
    checked: list[tuple[str, str, StatusRow]]  # every checked target
    pins: list[tuple[str, StatusRow]]
    newer: list[tuple[str, StatusRow]]

    @classmethod
    def of(cls, rows: Sequence[StateRow], text: _Text) -> _Series:
        esc = text.esc
        series = cls({Kind.WATCH.value: 0, Kind.PIN.value: 0}, [], [], [], [])
        tags_done: set[tuple[str, str]] = set()
        newer_done: set[tuple[str, str]] = set()
        for item in rows:
            target, row = item.target, item.row
            image, tag = target.ref.name, target.tag
            kind = target.kind.value
            series.targets[kind] += 1
            if row is None:
                continue  # not checked yet: no series rather than made-up values
            pinned = target.pinned or ""
            series.checked.append(
                (f'image="{esc(image)}",kind="{kind}",pinned="{esc(pinned)}"', esc(tag), row)
            )
            if target.kind is Kind.PIN:
                series.pins.append(
                    (f'image="{esc(image)}",pinned="{esc(pinned)}",tag="{esc(tag)}"', row)
                )
            it = f'image="{esc(image)}",tag="{esc(tag)}"'
            if target.newer and (image, tag) not in newer_done:
                newer_done.add((image, tag))
                series.newer.append((it, row))
            if (image, tag) not in tags_done:
                tags_done.add((image, tag))
                series.tags.append((it, row))
        return series


def _family_lines(s: _Series, text: _Text, now: float) -> dict[str, Callable[[], Iterable[str]]]:
    """Each state family's sample lines after its name, made when the family is written."""
    esc, num = text.esc, text.num
    one, zero = num(1.0), num(0.0)

    def behind(row: StatusRow) -> str:
        return num(_behind(now, _ts(row.behind_since)))

    return {
        "tagwatch_targets": lambda: (
            f'{{kind="{k}"}} {num(float(n))}' for k, n in s.targets.items()
        ),
        "tagwatch_tag_info": lambda: (
            f'{{digest="{esc(row.digest)}",{it}}} {one}'
            for it, row in s.tags
            if row.digest and row.present
        ),
        "tagwatch_tag_changed_timestamp_seconds": lambda: (
            f"{{{it}}} {num(when)}"
            for it, row in s.tags
            if (when := _ts(row.last_changed)) is not None
        ),
        "tagwatch_tag_checked_timestamp_seconds": lambda: (
            f"{{{it}}} {num(last)}"
            for it, row in s.tags
            if (last := _ts(row.checked_at)) is not None
        ),
        "tagwatch_tag_changes": lambda: (
            f"{{{it}}} {num(float(row.changes))}" for it, row in s.tags
        ),
        "tagwatch_tag_check_success": lambda: (
            f"{{{it}}} {zero if row.error else one}" for it, row in s.tags
        ),
        # never resolved: no presence series, so no false "vanished"
        "tagwatch_tag_present": lambda: (
            f"{{{it}}} {one if row.present else zero}" for it, row in s.tags if row.answered
        ),
        "tagwatch_target_state": lambda: (
            f'{{{ikp},state="{row.state.value}",tag="{tag}"}} {one}'
            for ikp, tag, row in s.checked
            if row.state
        ),
        "tagwatch_target_consecutive_failures": lambda: (
            f'{{{ikp},tag="{tag}"}} {num(float(row.fail_count))}' for ikp, tag, row in s.checked
        ),
        "tagwatch_pin_stale": lambda: (
            f"{{{ipt}}} {one if row.state is State.STALE else zero}" for ipt, row in s.pins
        ),
        "tagwatch_pin_missing": lambda: (
            f"{{{ipt}}} {one if row.pin_missing else zero}" for ipt, row in s.pins
        ),
        "tagwatch_pin_behind_seconds": lambda: (f"{{{ipt}}} {behind(row)}" for ipt, row in s.pins),
        "tagwatch_tag_newer_available": lambda: (
            f"{{{it}}} {num(float(len(row.newer)))}" for it, row in s.newer
        ),
    }


class _OutboxCollector:
    """`tagwatch_notifications_pending`: alerts due and not delivered, per notification
    target (its name, never its URL), read from the outbox at scrape time."""

    def __init__(self, pending: Callable[[], Mapping[str, int]]) -> None:
        self._pending = pending

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "tagwatch_notifications_pending",
            "Alerts due for delivery and not sent yet (a failed delivery waits here for the "
            "next attempt), per notification target.",
            labels=["notify"],
        )
        for name, count in sorted(self._pending().items()):
            gauge.add_metric([name], float(count))
        yield gauge


class Metrics:
    """Every tagwatch metric, in its own registry (no global state: tests make several)."""

    def __init__(
        self,
        rows: Callable[[], Sequence[StateRow]] = list,
        clock: Callable[[], float] = lambda: datetime.now(UTC).timestamp(),
        pending: Callable[[], Mapping[str, int]] = dict,
        version: Callable[[], Any] | None = None,
    ) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` doubles output
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        Gauge(
            "tagwatch_build_info",
            "tagwatch's version (value is always 1).",
            ["version"],
            registry=r,
        ).labels(__version__).set(1)
        self.interval = Gauge(
            "tagwatch_interval_seconds",
            "The longest check interval of any watch or pin.",
            registry=r,
        )
        self.requests = Counter(
            "tagwatch_registry_requests",
            "HTTP requests to registries, by status code ('error' when no answer came).",
            ["registry", "method", "code"],
            registry=r,
        )
        self.request_duration = Histogram(
            "tagwatch_registry_request_duration_seconds",
            "Registry request latency.",
            ["registry"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.ratelimit_remaining = Gauge(
            "tagwatch_registry_ratelimit_remaining",
            "Requests left in the registry's rate-limit window (ratelimit-remaining).",
            ["registry"],
            registry=r,
        )
        self.ratelimit_limit = Gauge(
            "tagwatch_registry_ratelimit_limit",
            "The registry's rate limit per window (ratelimit-limit).",
            ["registry"],
            registry=r,
        )
        self.cycle_duration = Histogram(
            "tagwatch_cycle_duration_seconds",
            "Duration of one check cycle.",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.last_cycle = Gauge(
            "tagwatch_last_cycle_timestamp_seconds", "End of the last completed cycle.", registry=r
        )
        self.cycles = Counter(
            "tagwatch_cycles",
            "Completed check cycles: 'ok' when every check worked.",
            ["result"],
            registry=r,
        )
        self.events = Counter("tagwatch_events", "Events decided, by kind.", ["event"], registry=r)
        self.notifications = Counter(
            "tagwatch_notifications", "Alert deliveries, by result.", ["result"], registry=r
        )
        for result in ("ok", "failed"):
            self.cycles.labels(result)
        for kind in EVENT_KINDS:
            self.events.labels(kind)
        self.http_dropped = Counter(
            "tagwatch_http_connections_dropped",
            "Connections to this listener closed unanswered: 'evicted' to make room for a new "
            "one, 'timeout' for no complete request or an unread answer in time.",
            ["reason"],
            registry=r,
        )
        for result in ("sent", "failed"):
            self.notifications.labels(result)
        for reason in ("evicted", "timeout"):
            self.http_dropped.labels(reason)
        self.source_up = Gauge(
            "tagwatch_source_up",
            "Whether the last reading of an engine or Kubernetes [[source]] worked (0/1).",
            ["source"],
            registry=r,
        )
        self.source_targets = Gauge(
            "tagwatch_source_targets",
            "Targets a [[source]] yields (from its last good reading while it is down).",
            ["source"],
            registry=r,
        )
        r.register(_OutboxCollector(pending))
        self._state = _StateWriter(rows, clock, version)
        self._lock = threading.Lock()
        self._last_finished = 0.0

    def observe_request(
        self, registry: str, method: str, code: str, seconds: float, headers: Any
    ) -> None:
        """The registry client's observer: one call per HTTP request."""
        self.requests.labels(registry, method, code).inc()
        self.request_duration.labels(registry).observe(seconds)
        if headers is not None:
            remaining = parse_ratelimit(headers.get("ratelimit-remaining"))
            if remaining is not None:
                self.ratelimit_remaining.labels(registry).set(remaining)
            limit = parse_ratelimit(headers.get("ratelimit-limit"))
            if limit is not None:
                self.ratelimit_limit.labels(registry).set(limit)

    def observe_cycle(
        self, seconds: float, failed: bool, events: Iterable[str], finished: float
    ) -> None:
        self.cycle_duration.observe(seconds)
        self.cycles.labels("failed" if failed else "ok").inc()
        for kind in events:
            if kind in EVENT_KINDS:
                self.events.labels(kind).inc()
        with self._lock:  # cycles of several registries end in any order
            if finished > self._last_finished:
                self._last_finished = finished
                self.last_cycle.set(finished)

    def observe_sources(self, statuses: Iterable[tuple[str, bool, int]]) -> None:
        """(source label, read ok, targets) per [[source]], after each reading; sources no
        longer configured lose their series."""
        seen = set()
        for label, ok, targets in statuses:
            seen.add(label)
            self.source_up.labels(label).set(1 if ok else 0)
            self.source_targets.labels(label).set(targets)
        for gauge in (self.source_up, self.source_targets):
            for labels in list(gauge._metrics):  # noqa: SLF001 - prometheus_client has no API
                if labels[0] not in seen:
                    gauge.remove(*labels)

    def observe_delivery(self, ok: bool) -> None:
        self.notifications.labels("sent" if ok else "failed").inc()

    def observe_dropped_connection(self, reason: str) -> None:
        self.http_dropped.labels(reason).inc()

    def exposition(self, gzip: bool = False) -> bytes:
        """The per-target series, then the process-wide metrics (prometheus_client's
        registry), then the one per-target family that moves with the clock; `gzip`:
        compressed (Prometheus asks for it), the steady families from a copy kept until the
        state changes, so that the ~80 MB of text of 100,000 watches is neither made at
        every scrape nor ever held whole."""
        return self._state.exposition(generate_latest(self.registry), gzip)

    def warm(self) -> None:
        """After a cycle: write the per-target series of the new state before the next scrape
        asks for them (`_StateWriter.warm`)."""
        self._state.warm()


def state_rows(targets: Sequence[Target], rows: Sequence[StatusRow]) -> list[StateRow]:
    """Pair each configured target with its stored status row (by key)."""
    by_key = {row.key: row for row in rows}
    return [StateRow(t, by_key.get(t.key)) for t in targets]
