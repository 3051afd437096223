"""The command line: a thin shell over the check cycle and the store.

Exit status: 0 every check succeeded (moves, vanished tags and stale pins are findings, not
failures); 1 one or more checks failed; 2 usage or configuration error, with a one-line
message naming the file and line, the key, or the reference, and never a traceback.

Imports are lazy: `tagwatch --version` and `tagwatch status` do not load httpx or apprise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tagwatch import __version__
from tagwatch.core.text import clean

if TYPE_CHECKING:
    from pathlib import Path

    from tagwatch.bump import FilePlan
    from tagwatch.check import CycleReport, TargetResult
    from tagwatch.config import Config
    from tagwatch.core.model import TagKey
    from tagwatch.registry.client import RegistryClient
    from tagwatch.sources import Expansion
    from tagwatch.store import Store, Undelivered

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("tagwatch")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, as for config errors
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"tagwatch: error: {message}\n")


_PRIORITIES = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}
LOG_LINE_LIMIT = 2000  # characters of one log message; ours stay far below


class _OneLine(logging.Filter):
    """Every log record one line, whatever it carries. Registry error messages, labels and
    tag names reach log messages; through `core.text.clean` a newline in them cannot forge a
    line and an escape sequence cannot reach the terminal (at any `-v`). An exception is
    folded to `Name: message at file:line fn < …`, never a multi-line traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from tagwatch.core.text import clean
        from tagwatch.errors import describe_failure, raised_at

        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a record whose arguments do not fit its format
            text = f"{record.msg} % {record.args!r} (the arguments did not fit)"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f" | {describe_failure(exc)} at {raised_at(exc)}"
        record.msg, record.args = clean(text, LOG_LINE_LIMIT), None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


class _JournalFormatter(logging.Formatter):
    """journald adds timestamps; a `<N>` prefix sets the line's syslog priority."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text += " | " + self.formatException(record.exc_info).replace("\n", " | ")
        return f"<{_PRIORITIES.get(record.levelname, 6)}>{text}"


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _setup_logging(verbose: int, quiet_default: bool = True, log_format: str = "auto") -> None:
    level = logging.WARNING if quiet_default else logging.INFO
    if verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    under_systemd = bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))
    formatter: logging.Formatter
    if log_format == "json":
        formatter = _JsonFormatter()
        formatter.converter = time.gmtime
    elif log_format == "journal" or (log_format == "auto" and under_systemd):
        formatter = _JournalFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    handler.setFormatter(formatter)
    handler.addFilter(_OneLine())
    root = logging.getLogger("tagwatch")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # What each step of a check does (check.cycle): -v, for every command (the daemon logs at
    # INFO by default, without them). Each HTTP request (tagwatch.registry, DEBUG): -vv.
    logging.getLogger("tagwatch.steps").setLevel(logging.INFO if verbose >= 1 else logging.WARNING)
    # httpx logs every request at INFO, with URLs; APScheduler logs every run at INFO.
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose >= 3 else logging.WARNING)
    apscheduler = logging.getLogger("apscheduler")
    apscheduler.handlers[:] = [handler]
    apscheduler.setLevel(logging.DEBUG if verbose >= 3 else logging.WARNING)
    apscheduler.propagate = False


def _fail(message: str, status: int = EXIT_USAGE) -> int:
    """One line on stderr: messages may quote a registry's words, `clean` keeps them one."""
    print(f"tagwatch: error: {clean(message, LOG_LINE_LIMIT)}", file=sys.stderr)
    return status


def _print_json(data: Any, *, cleaned: bool = False) -> None:
    """Print what `--json` prints: every string in it cleaned (labels, error messages and
    platform names come from registries), so a consumer gets plain one-line data; `cleaned`:
    `data` is already (`views` objects are). As the API answers it (`views.to_json`), written
    as bytes whatever the host's locale."""
    from tagwatch.views import to_json

    if not cleaned:
        from tagwatch.core.markup import clean_data

        data = clean_data(data, CELL_LIMIT)
    text = to_json(data)
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stream (a test's StringIO)
        sys.stdout.write(text.decode())
        return
    sys.stdout.flush()  # what was printed before comes first
    buffer.write(text)


# --- shared pieces ------------------------------------------------------------------------


def _config_path(args: argparse.Namespace) -> str:
    """`-c FILE`, else $TAGWATCH_CONFIG, else the default; a missing default (a first run)
    says how to give one and where the example is, rather than just "No such file"."""
    if args.config:
        return str(args.config)
    from tagwatch.config import DEFAULT_CONFIG, default_config_path
    from tagwatch.errors import ConfigError

    path = default_config_path()
    if os.path.exists(path):
        return path
    if path != DEFAULT_CONFIG:
        raise ConfigError(
            f"{path}: no such file (named by TAGWATCH_CONFIG): fix the variable or pass -c FILE"
        )
    from tagwatch.ops import source_path

    raise ConfigError(
        f"no configuration at {path} (the default): pass one with -c FILE or set "
        f"TAGWATCH_CONFIG; an example to start from: {source_path('config.example.toml')} "
        "(`tagwatch ops-files DIR` copies it out)"
    )


def _load(args: argparse.Namespace) -> Config:
    """The config as written (without what its [[source]] entries yield)."""
    from tagwatch.config import load_config

    return load_config(_config_path(args))


def _sources(config: Config, store: Store | None, live: bool) -> Expansion:
    """The config with its [[source]] targets; says on stderr which sources could not be
    read (the containers that are not pins are printed by `_print_notes`)."""
    from tagwatch.sources import read_sources

    expansion = read_sources(config, store, live=live)
    for note in expansion.notes:
        log.info("not checked: %s", note)
    for status in expansion.statuses:
        if status.error:
            recorded = (
                f"; its reading of {status.recorded:%Y-%m-%dT%H:%M:%SZ} stands in"
                if status.recorded
                else ""
            )
            print(f"tagwatch: {status.source.where}: {status.error}{recorded}", file=sys.stderr)
    return expansion


def _print_notes(expansion: Expansion, as_json: bool) -> None:
    for note in expansion.notes:
        print(f"not checked: {note}", file=sys.stderr if as_json else sys.stdout)


def _client(config: Config) -> RegistryClient:
    from tagwatch.registry.client import client_for

    return client_for(config)


def _store(config: Config) -> Store:
    from tagwatch.store import Store

    return Store(config.settings.database)


def _short(digest: str | None) -> str:
    if not digest:
        return "-"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}"


CELL_LIMIT = 300  # characters of one table cell or JSON string: a reference's 255 fit


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Aligned columns, one line per row whatever a cell holds: every cell is `clean`ed
    (a registry's error message, a label, a tag name cannot break a line or a column)."""
    if any(len(row) != len(header) for row in rows):
        raise ValueError("a table row has not one cell per column")
    cleaned: dict[str, str] = {}  # most cells repeat (a kind, a state, a time): clean each once

    def cell(text: str) -> str:
        line = cleaned.get(text)
        if line is None:
            line = cleaned[text] = clean(text, CELL_LIMIT)
        return line

    rows = [[cell(c) for c in row] for row in rows]
    columns = zip(*rows, strict=True) if rows else [()] * len(header)
    widths = [
        max(len(h), max(map(len, column), default=0))
        for h, column in zip(header, columns, strict=True)
    ]
    line = "  ".join(f"{{:<{w}}}" for w in widths).format
    return "\n".join([line(*header).rstrip(), *(line(*row).rstrip() for row in rows)])


def _print_outbox(waiting: Sequence[Undelivered]) -> None:
    """Per notification target: alerts waiting for delivery and the last delivery error
    (by the target's name: never its URL)."""
    from tagwatch.core.times import format_time

    by_name: dict[str, list[Undelivered]] = {}
    for item in waiting:
        by_name.setdefault(item.notify_name, []).append(item)
    rows = []
    for name, items in sorted(by_name.items()):
        tried = [i for i in items if i.last_attempt_at is not None]
        last = max(tried, key=lambda i: (i.last_attempt_at, i.event_id)) if tried else None
        error = "not tried yet"
        if last is not None:
            error = f"{format_time(last.last_attempt_at)}: {last.error or 'no error recorded'}"
        oldest = min((i.at for i in items if i.at), default=None)
        rows.append(
            [
                name,
                str(len(items)),
                format_time(oldest) or "-",
                str(max(i.attempts for i in items)),
                error,
            ]
        )
    print()
    print("alerts waiting for delivery (retried at every check):")
    print(_table(rows, ["NOTIFY", "WAITING", "OLDEST", "ATTEMPTS", "LAST ERROR"]))


def _print_outages(store: Store) -> None:
    from tagwatch.core.times import format_time

    outages = store.registry_outages()
    if outages:
        print()
    for host, outage in sorted(outages.items()):
        alert = (
            f"one error alert for its {outage.targets} watches and pins"
            if outage.alerted
            else "its error alert waits for error_after failed checks"
        )
        print(
            f"registry {host} is down since {format_time(outage.since)} ({alert}): "
            f"{clean(outage.message, CELL_LIMIT)}"
        )


def _note(obj: dict[str, Any], events: Sequence[str] = ()) -> str:
    parts = list(events)
    if obj.get("error"):
        parts.append(obj["error"])
    elif obj["kind"] == "pin" and obj.get("behind_since"):
        parts.append(f"behind since {obj['behind_since']}")
    return "; ".join(parts)


def _print_targets(objects: Sequence[dict[str, Any]], events: dict[int, list[str]]) -> None:
    rows = []
    for i, obj in enumerate(objects):
        rows.append(
            [
                f"{obj['image']}:{obj['tag']}",
                obj["kind"],
                obj["state"] or "unchecked",
                _short(obj["digest"]),
                obj["changed_at"] or "-",
                _note(obj, events.get(i, ())),
            ]
        )
    print(_table(rows, ["IMAGE:TAG", "KIND", "STATE", "DIGEST", "CHANGED", "NOTE"]))


# --- commands -----------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from tagwatch.check import run_cycle
    from tagwatch.config import check_secrets

    config = _load(args)
    check_secrets(config)
    store = _store(config)
    try:
        expansion = _sources(config, store, live=True)
        config = expansion.config
        notifier = None
        if config.notify:  # alerting (and apprise) loaded only where it is configured
            from tagwatch.notify import Notifier

            notifier = Notifier(config.notify, store, timezone=config.settings.timezone)
        with _client(config) as client:
            report = run_cycle(
                config,
                store,
                client,
                notifier,
                hold_alerts=args.no_notify,
                refresh_tags=args.refresh_tags,
            )
        from tagwatch.views import status_objects

        objects = status_objects(config, store)
    finally:
        store.close()
    _report(report, config, objects, args.json)
    _print_notes(expansion, args.json)
    if report.error:
        return _fail(report.error, EXIT_FAILED)
    return EXIT_FAILED if report.failed or expansion.failures else EXIT_OK


def _report(
    report: CycleReport, config: Config, objects: list[dict[str, Any]], as_json: bool
) -> None:
    """Print a check's outcome; `objects` are `views.status_objects`, in config order."""
    from tagwatch.core.markup import clean_data

    by_key: dict[str, TargetResult] = {r.target.key: r for r in report.results}
    events: dict[int, list[str]] = {}
    keys = [target.key for target in config.targets]
    for i, (obj, key) in enumerate(zip(objects, keys, strict=True)):
        result = by_key.get(key)
        if result is None:
            continue
        events[i] = [e.kind.value for e in result.events]
        # What is added to the (clean) status objects is cleaned here: the JSON is printed
        # as it is.
        if result.failed:
            obj["error"] = clean_data(getattr(result.observation, "message", None), CELL_LIMIT)
        obj["events"] = clean_data(
            [
                {
                    "event": e.kind.value,
                    "old_digest": e.old_digest,
                    "new_digest": e.new_digest,
                    "platforms_changed": list(e.platforms_changed),
                    **{k: v for k, v in e.details.items() if k != "source"},
                }
                for e in result.events
            ],
            CELL_LIMIT,
        )
    registry_events = clean_data(_registry_events(report), CELL_LIMIT)
    for obj in objects:
        mine = registry_events.get(obj["image"].split("/", 1)[0])
        if mine:
            obj["registry_events"] = mine
    if as_json:
        _print_json(objects, cleaned=True)
        return
    _print_targets(objects, events)
    for event in report.registry_events:
        count = event.details.get("targets")
        if event.kind.value == "error":
            print(
                f"{event.subject} is down: one error alert for its {count} watches and pins "
                "(not one each)"
            )
        else:
            print(f"{event.subject} answers again: one {event.kind.value} alert")
    failed = sum(1 for r in report.results if r.failed)
    moved = sum(1 for r in report.results if r.moved)
    count = sum(len(v) for v in events.values()) + len(report.registry_events)
    summary = (
        f"{len(report.results)} checked, {moved} moved, {failed} failed, "
        f"{count} events, {report.sent} alerts sent"
    )
    if report.send_failures:
        summary += f", {report.send_failures} alerts failed (will retry)"
    print(summary)


def _registry_events(report: CycleReport) -> dict[str, list[dict[str, Any]]]:
    """A registry's own events (down, answering again), by host, for `check --json`."""
    out: dict[str, list[dict[str, Any]]] = {}
    for event in report.registry_events:
        out.setdefault(event.image, []).append({"event": event.kind.value, **event.details})
    return out


def cmd_status(args: argparse.Namespace) -> int:
    from tagwatch.views import status_objects

    config = _load(args)
    if not os.path.exists(config.settings.database):
        objects: list[dict[str, Any]] = []
        from tagwatch.store import Store

        store = Store(":memory:")
    else:
        store = _store(config)
    try:
        from datetime import UTC, datetime

        # Engines and clusters as last read by `check`/`run`: status reads no network.
        expansion = _sources(config, store, live=False)
        waiting = store.undelivered(datetime.now(UTC))
        objects = status_objects(expansion.config, store, waiting)
        if args.json:
            _print_json(objects, cleaned=True)  # status_objects cleans what it reads
        else:
            _print_targets(objects, {})
            _print_outages(store)
            if waiting:
                _print_outbox(waiting)
    finally:
        store.close()
    _print_notes(expansion, args.json)
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from tagwatch.core.refs import parse_ref
    from tagwatch.views import history_objects

    ref = parse_ref(args.reference)
    tag = ref.tag or "latest"
    config = _load(args)
    if not os.path.exists(config.settings.database):
        return _fail(
            f"no history for {ref.name}:{tag}: database {config.settings.database} "
            "does not exist yet (run tagwatch check)",
            EXIT_FAILED,
        )
    store = _store(config)
    try:
        objects = history_objects(store, (ref.registry, ref.repository, tag))
        recorded = [] if objects else [k for k, v in store.tag_views().items() if v.digest]
    finally:
        store.close()
    if not objects:
        # Nothing under that name: a failed lookup (exit 1, as for a missing database), with
        # the names that are recorded for that repository, so a typo is one step from right.
        if args.json:
            print("[]")
        return _fail(_no_history(config, ref.registry, ref.repository, tag, recorded), EXIT_FAILED)
    if args.json:
        _print_json(objects, cleaned=True)  # history_objects cleans what it reads
        return EXIT_OK
    rows = [
        [
            o["digest"],
            o["first_seen"] or "-",
            o["last_seen"] or "-",
            ", ".join(sorted(o["platforms"])) or "-",
            _change_note(o),
        ]
        for o in objects
    ]
    print(f"{ref.name}:{tag}")
    print(_table(rows, ["DIGEST", "FIRST SEEN", "LAST SEEN", "PLATFORMS", "CHANGE"]))
    return EXIT_OK


def _change_note(obj: dict[str, Any]) -> str:
    """A history row's CHANGE: what changed, and each watched platform's image digests."""
    from tagwatch.core.drift import watched_platform_digests

    parts = [obj["summary"]] if obj.get("summary") else []
    for platform, change in watched_platform_digests(obj).items():
        old, new = _short(change.get("previous")), _short(change.get("digest"))
        parts.append(f"{platform} {old} -> {new}")
    return "; ".join(parts)


def _no_history(
    config: Config, registry: str, repository: str, tag: str, recorded: Sequence[TagKey]
) -> str:
    """Why `history` found nothing, and the recorded names the user may have meant: the same
    repository first (on any registry, or the same last path part: `python` finds
    docker.io/library/python and ghcr.io/acme/python), closest tags first."""
    import difflib

    name = f"{registry}/{repository}:{tag}"
    configured = any(t.tag_key == (registry, repository, tag) for t in config.targets)
    if configured:
        return (
            f"no history for {name} yet: it is configured, but no check has resolved it "
            "(tagwatch status says why)"
        )
    last = repository.rsplit("/", 1)[-1]

    def rank(key: TagKey) -> tuple[int, float]:
        same = (key[0], key[1]) == (registry, repository)
        near = same or key[1] == repository
        return (0 if same else 1 if near else 2), -difflib.SequenceMatcher(
            None, key[2], tag
        ).ratio()

    similar = sorted(
        (k for k in recorded if k[1] == repository or k[1].rsplit("/", 1)[-1] == last), key=rank
    )
    if not similar:
        return (
            f"no history for {name}: nothing is recorded under that name or repository "
            f"({len(recorded)} tags are recorded: tagwatch status lists them)"
        )
    shown = ", ".join(f"{r}/{p}:{t}" for r, p, t in similar[:6])
    more = f" and {len(similar) - 6} more" if len(similar) > 6 else ""
    return f"no history for {name}; recorded for that repository: {shown}{more}"


def cmd_resolve(args: argparse.Namespace) -> int:
    from tagwatch.config import Config, RegistryConfig, Settings, load_config
    from tagwatch.core.refs import parse_platform, parse_ref
    from tagwatch.errors import NotFound, RegistryError

    ref = parse_ref(args.reference)
    if ref.tag is None:
        return _fail(f"{args.reference}: resolve needs a tag (it resolves tags to digests)")
    platform = parse_platform(args.platform) if args.platform else None
    if args.config:
        config = load_config(args.config)
    else:
        registries = {}
        if args.insecure:
            registries[ref.registry] = RegistryConfig(host=ref.registry, insecure=True)
        config = Config(path="", settings=Settings(database=":memory:"), registries=registries)
    steps = logging.getLogger("tagwatch.steps")
    steps.info(
        "resolve: asking %s for %s:%s (a HEAD of the manifest; a GET when the registry sends "
        "no digest)",
        ref.registry,
        ref.name,
        ref.tag,
    )
    with _client(config) as client:
        try:
            seen = client.resolve(ref.without_digest())
        except NotFound as exc:
            return _fail(str(exc), EXIT_FAILED)
        except RegistryError as exc:
            return _fail(str(exc), EXIT_FAILED)
    if seen.platforms:
        steps.info(
            "resolve: %s is an index of %d platforms (%s)",
            seen.digest,
            len(seen.platforms),
            ", ".join(sorted(seen.platforms)),
        )
    else:
        steps.info("resolve: %s is a single image (%s)", seen.digest, seen.media_type or "?")
    if platform is not None:
        if not seen.platforms:
            return _fail(
                f"{ref.name}:{ref.tag} is a single-platform image ({seen.digest}), "
                "not an index: no per-platform digests",
                EXIT_FAILED,
            )
        digest = seen.platforms.get(platform)
        if digest is None:
            return _fail(
                f"{ref.name}:{ref.tag} has no {platform} image (platforms: "
                f"{', '.join(sorted(seen.platforms))})",
                EXIT_FAILED,
            )
        print(digest)
        return EXIT_OK
    if args.json:
        _print_json(
            {
                "image": ref.name,
                "tag": ref.tag,
                "digest": seen.digest,
                "media_type": seen.media_type,
                "platforms": dict(seen.platforms),
            }
        )
    else:
        print(seen.digest)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    import signal

    # A stop while still starting (imports, config, database) is a clean exit too; the
    # daemon installs its own handlers once it runs.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sys.exit(EXIT_OK))
    from tagwatch.daemon import Daemon, one_malloc_arena

    one_malloc_arena(os.environ)  # before any thread: see its docstring
    daemon = Daemon(_config_path(args))
    code = daemon.run()
    if daemon.stuck:
        # Everything is recorded and closed; only threads blocked in a registry read (up
        # to `timeout`) remain, and Python would wait for them at exit. Don't.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    return code


def cmd_audit(args: argparse.Namespace) -> int:
    from tagwatch.audit import FINDINGS, HEADER, audit, to_markdown, to_table
    from tagwatch.check import utcnow
    from tagwatch.config import check_secrets

    fail_on = {f.strip() for f in (args.fail_on or "").split(",") if f.strip()}
    unknown = fail_on - set(FINDINGS)
    if unknown:
        return _fail(
            f"--fail-on: unknown finding {', '.join(sorted(unknown))} "
            f"(one of {', '.join(FINDINGS)})"
        )
    config = _load(args)
    check_secrets(config)
    store = _store(config)
    try:
        expansion = _sources(config, store, live=True)
        config = expansion.config
        with _client(config) as client:
            rows = audit(config, store, client, utcnow())
    finally:
        store.close()
    if args.json:
        _print_json([row.as_dict() for row in rows])
    elif args.markdown:
        print(to_markdown(rows))
    else:
        print(_table(to_table(rows), HEADER))
    failing = [r for r in rows if fail_on & set(r.findings)]
    if failing:
        print(
            f"tagwatch: audit: {len(failing)} of {len(rows)} images have "
            f"{', '.join(sorted(fail_on))} findings",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def cmd_scan(args: argparse.Namespace) -> int:
    from tagwatch.core.scan import scan_paths, to_rows, to_snippet

    try:
        found = scan_paths(args.paths, include=args.include, exclude=args.exclude)
    except FileNotFoundError as exc:
        missing = exc.filename or (exc.args[0] if exc.args else "?")
        if not exc.filename:
            missing = next((p for p in args.paths if not os.path.exists(p)), missing)
        return _fail(f"{missing}: no such file or directory")
    if args.config_snippet:
        print(to_snippet(found), end="")
        return EXIT_OK
    rows = to_rows(found)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    table = []
    for row in rows:
        if row["problem"]:
            what = [row["text"] or "-", "?", "-", "-", row["problem"]]
        else:
            what = [
                row["image"],
                row["kind"],
                row["tag"] or "-",
                _short(row["digest"]),
                row["context"],
            ]
        table.append([f"{row['file']}:{row['line']}", *what])
    print(_table(table, ["WHERE", "IMAGE", "KIND", "TAG", "DIGEST", "CONTEXT"]))
    problems = sum(1 for row in rows if row["problem"])
    images = len({(r["image"], r["tag"], r["digest"]) for r in rows if not r["problem"]})
    print(f"{len(rows)} references, {images} distinct images, {problems} unresolved")
    return EXIT_OK


def cmd_bump(args: argparse.Namespace) -> int:
    from tagwatch import bump

    only_stale = args.only == "stale"
    config = _bump_config(args, only_stale)
    plans = bump.read_files(_bump_files(args, config))
    _bump_check(plans, config, only_stale)
    bump.prepare(plans, only_stale=only_stale)
    if args.write:
        bump.write(plans)
    _bump_report(args, plans, only_stale)
    outcomes = [o for plan in plans for o in plan.outcomes]
    behind = any(o.state == "behind" and (o.stale or not only_stale) for o in outcomes)
    failed = any(o.failed for o in outcomes) or any(plan.error for plan in plans)
    return EXIT_FAILED if failed or (args.check and behind) else EXIT_OK


def _bump_config(args: argparse.Namespace, only_stale: bool) -> Config | None:
    """The optional configuration, with its registry passwords read up front."""
    from tagwatch.config import load_config
    from tagwatch.errors import ConfigError

    if only_stale and not args.config:
        raise ConfigError(
            "bump: --only stale needs the configuration (-c FILE): its max_age and its "
            "database say which pins are stale"
        )
    if not args.config:
        return None
    config = _load(args) if only_stale else load_config(args.config)
    for registry in config.registries.values():
        if registry.password is not None:
            registry.password.read()
    return config


def _bump_files(args: argparse.Namespace, config: Config | None) -> list[tuple[str, Path]]:
    """(shown name, path) of every file to read: the PATHs given, else the [[source]] paths;
    a file reached twice is read once."""
    from tagwatch.core.scan import walk_paths
    from tagwatch.errors import ConfigError

    if args.paths:
        roots = [(list(args.paths), list(args.include), list(args.exclude))]
    else:
        sources = [s for s in (config.sources if config else ()) if getattr(s, "path", None)]
        if not sources:
            raise ConfigError(
                "bump: no PATH given, and no configuration with [[source]] paths (-c FILE)"
            )
        roots = [
            ([s.path], [*s.include, *args.include], [*s.exclude, *args.exclude]) for s in sources
        ]
    files: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for paths, include, exclude in roots:
        try:
            walked = walk_paths(paths, include=include, exclude=exclude)
        except FileNotFoundError:
            missing = next((p for p in paths if not os.path.exists(p)), paths[0])
            raise ConfigError(f"{missing}: no such file or directory") from None
        for shown, path in walked:
            if os.path.realpath(path) not in seen:
                seen.add(os.path.realpath(path))
                files.append((shown, path))
    return files


def _bump_check(plans: list[FilePlan], config: Config | None, only_stale: bool) -> None:
    """Ask the registries where each pin's tag is now (and, for --only stale, since when the
    pin is behind, from the database)."""
    from tagwatch import bump
    from tagwatch.config import Config, Settings
    from tagwatch.core.model import DAY, Kind

    store = None
    if config is not None and os.path.exists(config.settings.database):
        store = _store(config)
    try:
        client_config = config or Config(path="", settings=Settings(database=":memory:"))
        with _client(client_config) as client:
            bump.check(
                plans,
                client,
                history=store.history if store is not None else None,
                concurrency=client_config.settings.concurrency,
            )
        if only_stale:
            assert config is not None
            from tagwatch.check import utcnow

            ages = {t.key: t.max_age for t in config.targets if t.kind is Kind.PIN}
            bump.mark_stale(
                plans,
                now=utcnow(),
                views=store.target_views() if store is not None else {},
                history=store.history if store is not None else (lambda key: []),
                max_age=lambda ref: ages.get(f"{Kind.PIN}:{ref}", 7 * DAY),
            )
    finally:
        if store is not None:
            store.close()


def _bump_report(args: argparse.Namespace, plans: list[FilePlan], only_stale: bool) -> None:
    """The diff, the pin lines or JSON on stdout; notes on stderr; the summary line on
    stdout for people (--write, --check), on stderr when stdout is for machines."""
    from tagwatch import bump
    from tagwatch.core.bump import summary, unified_diff

    if args.json:
        rows = [o.as_dict(only_stale) for plan in plans for o in plan.outcomes]
        print(json.dumps(rows, indent=2))
    elif args.write or args.check:
        for line in bump.pin_lines(plans, wrote=args.write):
            print(line)
    else:
        for plan in plans:
            if plan.new_data is not None:
                print(unified_diff(plan.name, plan.data, plan.new_data), end="")
    sys.stdout.flush()  # the notes follow what they are about, also when both are one pipe
    for line in bump.notes(plans):
        print(f"tagwatch: bump: {line}", file=sys.stderr)
    counts, behind_files = bump.tally(plans, wrote=args.write)
    line = summary(
        counts, behind_files, wrote=args.write, stale=counts.get("stale", 0) if only_stale else None
    )
    machine = args.json or not (args.write or args.check)
    print(line, file=sys.stderr if machine else sys.stdout)
    sys.stdout.flush()


def cmd_validate(args: argparse.Namespace) -> int:
    from tagwatch.config import check_secrets
    from tagwatch.sources import read_sources

    config = _load(args)
    check_secrets(config)
    config = read_sources(config, live=False).config  # files only: engines are not asked
    if config.notify:
        from tagwatch.notify import check_url

        for target in config.notify:
            check_url(target)
    watches = sum(1 for t in config.targets if t.kind.value == "watch")
    pins = len(config.targets) - watches
    running = sum(1 for source in config.sources if source.kind != "files")
    print(
        f"{config.path}: OK: {watches} watches, {pins} pins, {len(config.notify)} notification "
        f"targets, {len(config.registries)} registries; database {config.settings.database}"
        + (f"; {running} engine/cluster sources (read by check and run)" if running else "")
    )
    return EXIT_OK


def cmd_notify_test(args: argparse.Namespace) -> int:
    from tagwatch.check import utcnow
    from tagwatch.notify import Notifier
    from tagwatch.store import Store

    config = _load(args)
    if not config.notify:
        return _fail(f"{config.path}: no [[notify]] targets configured")
    store = Store(config.settings.database)
    try:
        notifier = Notifier(config.notify, store)
        results = notifier.test(utcnow())
    finally:
        store.close()
    failed = 0
    for channel, error in results:
        if error is None:
            print(f"sent: {channel.where} ({channel.masked})")
        else:
            failed += 1
            print(f"FAILED: {channel.where} ({channel.masked}): {error}")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from tagwatch.config import load_config
    from tagwatch.errors import ConfigError
    from tagwatch.healthcheck import probe

    config = load_config(_config_path(args))
    if not config.metrics_listen:
        raise ConfigError(
            f'{config.path}: metrics.listen is off (""): healthcheck asks the daemon\'s '
            "/healthz on that address"
        )
    try:
        health = probe(config.metrics_listen, timeout=args.timeout)
    except ValueError as exc:
        raise ConfigError(f"{config.path}: metrics.listen: {exc}") from None
    if health.ok:
        print(health.message)
        return EXIT_OK
    print(f"tagwatch: {health.message}", file=sys.stderr)
    return EXIT_FAILED


# --- the parser ---------------------------------------------------------------------------

_BUMP_HELP = """\
Rewrite pinned references (tag@sha256:...) that are behind to their tag's current digest.

Finds every pin in the Dockerfiles/Containerfiles, compose files and Kubernetes manifests
under the paths (as `tagwatch scan` does), resolves each tag now, and for each pin that is
behind proposes the tag's current digest: a pin of the index gets the new index digest; a
pin of one platform's image gets the same platform's image in the new index (its platform
told by the tag's history in the config's database, else by the pinned image's config at
the registry; when it cannot be told, the pin is left alone with the reason).

Only the digest's characters change: comments, spacing, line endings, a missing final
newline, the file's mode and owner stay. A reference built from a variable (ARG, ENV,
${VAR}) is left alone with the reason. --write replaces each file atomically.

The config (-c) is optional: it gives registry credentials, the [[source]] paths when no
PATH is given, and (with --only stale) each pin's max_age and the database."""

_BUMP_EPILOG = """\
output:
  default   a unified diff per file on stdout (for git apply / patch -p1)
  --write   a line per pin bumped, then the summary, on stdout
  --check   a line per pin behind, then the summary, on stdout
  --json    one object per pin: file, line, reference, image, tag, old, new,
            platform, state (current|behind|vanished|skipped|error), reason,
            context, written (and stale, with --only stale)
  Pins left alone and errors are named on stderr, one line each; the summary
  (e.g. "3 pins behind in 2 files; 3 bumped") goes to stderr with the diff
  and --json.

exit status:
  0  every pin was checked (and, with --write, every planned file written);
     pins behind are findings, not failures - except with --check
  1  with --check: a pin is behind (with --only stale: a pin is stale);
     and always: a pin could not be checked (registry down, auth, bad answer)
     or a file could not be read or written
  2  usage or configuration error"""


def cmd_ops_files(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from tagwatch.ops import FILES, copy_to, source_path

    if args.directory is None:
        rows = [[name, what, str(source_path(name))] for name, what in FILES.items()]
        print(_table(rows, ["FILE", "WHAT", "INSTALLED AT"]))
        return EXIT_OK
    try:
        written = copy_to(Path(args.directory), force=args.force)
    except FileExistsError as exc:
        return _fail(f"{exc.args[0]} exists: not overwritten (--force to replace it)")
    except OSError as exc:
        return _fail(f"{args.directory}: {exc.strerror or exc}", EXIT_FAILED)
    for path in written:
        print(f"wrote {path}")
    # The unit runs /usr/bin/tagwatch: say so when this tagwatch lives elsewhere.
    here = shutil.which("tagwatch") or sys.argv[0]
    if os.path.realpath(here) != os.path.realpath("/usr/bin/tagwatch"):
        print(
            f"note: tagwatch is {here}, the unit runs /usr/bin/tagwatch: change its ExecStart= "
            "line (or add a drop-in, see the comment at the top of the unit)"
        )
    return EXIT_OK


def _seconds(text: str) -> float:
    from tagwatch.core.durations import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be longer than 0s")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tagwatch",
        description="Registry tag-drift monitor: follows image tags and pinned digests.",
    )
    parser.add_argument("--version", action="version", version=f"tagwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_text, config, arguments in _COMMANDS:
        # looked up now, not when the table was built: `cmd_check` for "check"
        func = globals()["cmd_" + name.replace("-", "_")]
        arguments(_command(sub, name, func, help_text, config))
    return parser


def _command(
    sub: Any,
    name: str,
    func: Callable[[argparse.Namespace], int],
    help_text: str,
    config: bool = True,
) -> argparse.ArgumentParser:
    """A subcommand with the options every command has: -c, -v, --log-format."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    if config:
        p.add_argument(
            "-c",
            "--config",
            metavar="FILE",
            help="configuration file (default: $TAGWATCH_CONFIG, then "
            "/etc/tagwatch/config.toml)",
        )
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v: info, -vv: debug)"
    )
    p.add_argument(
        "--log-format",
        choices=["auto", "text", "journal", "json"],
        default="auto",
        help="log lines as text with timestamps, journald lines (<N> priority, no "
        "timestamp), or JSON objects; auto: journal under systemd, else text",
    )
    p.set_defaults(func=func)
    return p


def _no_arguments(p: argparse.ArgumentParser) -> None:
    pass


def _json_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _check_arguments(p: argparse.ArgumentParser) -> None:
    _json_argument(p)
    p.add_argument(
        "--no-notify",
        action="store_true",
        help="record events but hold their alerts back (they are not sent later)",
    )
    p.add_argument(
        "--refresh-tags",
        action="store_true",
        help="read every tag list for newer versions now, not from the cache (tag_list_ttl)",
    )


def _history_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("reference", metavar="REFERENCE", help="image reference, e.g. python:3.12")
    _json_argument(p)


def _resolve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="optional configuration file: registry credentials and settings "
        "(not read unless given)",
    )
    p.add_argument("reference", metavar="REFERENCE", help="image reference, e.g. python:3.12")
    p.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="print that platform's image digest instead of the index digest",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain HTTP and unverified TLS for this registry",
    )
    p.add_argument("--json", action="store_true", help="print digest, media type and platforms")


def _audit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument(
        "--fail-on",
        metavar="FINDINGS",
        help="exit 1 when an image has one of these findings, e.g. "
        "stale,latest,unpinned (also: behind, vanished, error, newer, unchecked)",
    )


def _globs(p: argparse.ArgumentParser, include_help: str) -> None:
    p.add_argument(
        "--include", action="append", default=[], metavar="GLOB", help=include_help
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip files matching this glob (repeatable)",
    )


def _scan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to scan")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument(
        "--config-snippet",
        action="store_true",
        help="print [[watch]] and [[pin]] entries for what was found",
    )
    _globs(p, "only files matching this glob (repeatable; gitignore-style)")


def _bump_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="optional configuration file: registry credentials, [[source]] paths, max_age "
        "and database (not read unless given)",
    )
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = _BUMP_HELP
    p.epilog = _BUMP_EPILOG
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="files or directories (default: the config's [[source]] paths)",
    )
    mode = p.add_argument_group("what to do (default: print a unified diff)")
    mode.add_argument(
        "--write", action="store_true", help="rewrite the files in place (atomically)"
    )
    mode.add_argument(
        "--check",
        action="store_true",
        help="list the pins that are behind; exit 1 if there are any",
    )
    mode.add_argument(
        "--json", action="store_true", help="print a JSON array, one object per pin found"
    )
    p.add_argument(
        "--only",
        choices=["stale"],
        help="stale: only pins behind for at least their max_age (needs -c and its database)",
    )
    _globs(p, "only files matching this glob (repeatable; as for scan)")


def _ops_files_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", nargs="?", metavar="DIRECTORY", help="copy the files here")
    p.add_argument("--force", action="store_true", help="overwrite files that exist")


def _healthcheck_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=3.0,
        metavar="DURATION",
        help="give up after this long (default 3s)",
    )


#: (name, help, takes -c, its own arguments), in `tagwatch --help` order; the command's
#: function is `cmd_<name>`.
_COMMANDS: list[tuple[str, str, bool, Callable[[argparse.ArgumentParser], None]]] = [
    ("run", "the daemon: scheduled checks, metrics, alerts (SIGHUP reloads)", True, _no_arguments),
    ("check", "check every watch and pin once: resolve, record, alert", True, _check_arguments),
    ("status", "the last known state of every watch and pin", True, _json_argument),
    ("history", "every digest a tag has had, newest first", True, _history_arguments),
    (
        "resolve",
        "print the digest a reference resolves to now (no configuration needed)",
        False,
        _resolve_arguments,
    ),
    ("validate", "check the configuration and its secrets", True, _no_arguments),
    (
        "audit",
        "the image audit: tag policy, pin lag, moves, age, maintainer, newer versions",
        True,
        _audit_arguments,
    ),
    (
        "scan",
        "every image reference in Dockerfiles, compose files and Kubernetes manifests",
        False,
        _scan_arguments,
    ),
    (
        "bump",
        "rewrite pinned digests (tag@sha256:...) that are behind to their tag's current digest",
        False,
        _bump_arguments,
    ),
    ("notify-test", "send a test alert to every notification target", True, _no_arguments),
    (
        "ops-files",
        "list the systemd unit, alert rules, dashboard and example config shipped with "
        "tagwatch, or copy them to DIRECTORY",
        False,
        _ops_files_arguments,
    ),
    (
        "healthcheck",
        "exit 0 when the running daemon answers /healthz on [metrics] listen, else 1 and why",
        True,
        _healthcheck_arguments,
    ),
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _setup_logging(args.verbose, quiet_default=args.command != "run", log_format=args.log_format)
    from tagwatch.errors import ConfigError, ReferenceError_, StoreError, TagwatchError

    try:
        result: int = args.func(args)
        return result
    except (ConfigError, ReferenceError_) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except StoreError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except TagwatchError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - a bug: one line and a status, never a traceback
        from tagwatch.errors import describe_failure, raised_at

        log.debug("internal error raised at %s", raised_at(exc))
        return _fail(
            f"internal error: {describe_failure(exc)} (a bug in tagwatch; -vv logs where)",
            EXIT_FAILED,
        )
