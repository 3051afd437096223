"""Loading the TOML configuration into frozen values, with errors that name file and line.

`load_config(path)` reads and validates everything except secrets; `Secret.read()` reads a
password or apprise URL only when a command needs it, so `status` and `history` work on a
host where the secrets are not readable. `check_secrets(config)` reads them all up front so
that commands that do need them fail early with a configuration error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import tomli

from tagwatch.core.durations import parse_duration, parse_rate
from tagwatch.core.listen import parse_listen
from tagwatch.core.model import DAY, EventKind, Kind, Target
from tagwatch.core.refs import ImageRef, is_loopback, parse_platform, parse_ref
from tagwatch.core.schedule import parse_window
from tagwatch.errors import ConfigError, ReferenceError_

if TYPE_CHECKING:
    # time zones and cron (zoneinfo, APScheduler's parser) are loaded only for a config
    # that names a zone or a schedule: not before a `tagwatch check`'s first request
    from tagwatch.timing import Cron

T = TypeVar("T")

__all__ = [
    "DEFAULT_CONFIG",
    "Config",
    "EngineConfig",
    "KubernetesConfig",
    "NotifyConfig",
    "RegistryConfig",
    "Secret",
    "Settings",
    "SourceConfig",
    "check_secrets",
    "default_config_path",
    "load_config",
]

DEFAULT_CONFIG = "/etc/tagwatch/config.toml"


def default_config_path(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("TAGWATCH_CONFIG") or DEFAULT_CONFIG


@dataclass(frozen=True, slots=True)
class Secret:
    """Where a secret comes from. `describe()` is safe to print; `read()` is not."""

    where: str  # the config key, for messages: "registry[0].password_env"
    env: str | None = None
    file: str | None = None
    value: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        if self.env:
            return f"environment variable {self.env}"
        if self.file:
            return f"file {self.file}"
        return "the configuration"

    def read(self, environ: Mapping[str, str] | None = None) -> str:
        environ = os.environ if environ is None else environ
        if self.value is not None:
            return self.value
        if self.env:
            value = environ.get(self.env)
            if value is None:
                raise ConfigError(f"{self.where}: environment variable {self.env} is not set")
            if not value:
                raise ConfigError(f"{self.where}: environment variable {self.env} is empty")
            try:
                value.encode("utf-8")  # os.environ keeps undecodable bytes as surrogates
            except UnicodeEncodeError:
                raise ConfigError(
                    f"{self.where}: environment variable {self.env} is not UTF-8 text"
                ) from None
            return value
        assert self.file is not None
        try:
            raw = Path(self.file).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"{self.where}: cannot read {self.file}: {exc.strerror or exc}"
            ) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{self.where}: {self.file} is not UTF-8 text (byte {exc.start})"
            ) from None
        value = text.strip("\r\n")
        if not value:
            raise ConfigError(f"{self.where}: {self.file} is empty")
        return value


@dataclass(frozen=True, slots=True)
class Settings:
    database: str
    interval: float = 900.0
    jitter: float = 30.0
    concurrency: int = 8
    timeout: float = 10.0
    first_check_notify: bool = False
    error_after: int = 3
    describe_moves: bool = True  # on a move, read both images' configs to say what changed
    tag_list_ttl: float = 6 * 3600.0  # how long a repository's tag list (for `newer`) is reused
    timezone: str = "UTC"  # IANA name: quiet windows, digest schedules, cron schedules


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    host: str  # canonical, as in ImageRef.registry
    username: str | None = None
    password: Secret | None = None
    insecure: bool = False
    concurrency: int | None = None
    ca_file: str | None = None
    rate: float | None = None  # requests per second, at most
    endpoint: str | None = None  # "https://mirror.example:5000": where its API is served


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    where: str  # "notify[0]" or its name; safe to print
    url: Secret
    tags: tuple[str, ...] = ()
    events: frozenset[str] | None = None  # None: every event
    name: str | None = None
    format: str | None = None  # text | markdown | html | json; None: by the URL's scheme
    mode: str = "each"  # each | summary | digest
    schedule: tuple[Cron, ...] = ()  # digest: when it is sent (times of day, cron expressions)
    timezone: str = "UTC"  # IANA name its `schedule` and `quiet` are read in
    quiet: tuple[tuple[time, time], ...] = ()  # windows in which nothing is sent to it
    title: str | None = None  # string.Template overrides
    body: str | None = None


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """`[[source]] engine`: a Docker Engine API (Docker, or Podman's compatible service)."""

    address: str  # as given (or from DOCKER_HOST), shown in `source`: "unix:///run/docker.sock"
    socket: str | None = None  # unix:// path
    host: str | None = None  # tcp://host:port
    port: int | None = None
    tls: bool = False
    verify: bool = True  # TLS: verify the engine's certificate against ca_file
    ca_file: str | None = None
    cert_file: str | None = None  # client certificate and key (Docker's cert.pem, key.pem)
    key_file: str | None = None


@dataclass(frozen=True, slots=True)
class KubernetesConfig:
    """`[[source]] kubernetes`: the Pods of a cluster, through its API server."""

    kubeconfig: str | None  # None: in-cluster (service-account token and CA)
    context: str | None = None  # kubeconfig context; None: its current-context
    namespaces: tuple[str, ...] = ()  # () : every namespace


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """[[source]]: images the team uses become watches and pins, re-read every cycle
    (see tagwatch.sources): the references in files (`path`), or what runs — the containers
    of an engine (`engine`) or the Pods of a Kubernetes cluster (`kubernetes`)."""

    where: str  # "source[0]"
    path: str | None = None  # a directory or file; relative paths are relative to the config
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()
    max_age: float = 7 * DAY
    renotify: float = DAY
    newer: str | None = None
    newer_include: tuple[str, ...] = ()
    newer_exclude: tuple[str, ...] = ()
    engine: EngineConfig | None = None
    kubernetes: KubernetesConfig | None = None
    stopped: bool = False  # engine/kubernetes: also containers that are created or exited

    @property
    def kind(self) -> str:
        if self.engine is not None:
            return "engine"
        if self.kubernetes is not None:
            return "kubernetes"
        return "files"

    @property
    def label(self) -> str:
        """What the source is, for logs and metrics: `engine unix:///var/run/docker.sock`."""
        if self.engine is not None:
            return f"engine {self.engine.address}"
        if self.kubernetes is not None:
            k = self.kubernetes
            text = f"kubernetes {k.kubeconfig or 'in-cluster'}"
            return f"{text} (context {k.context})" if k.context else text
        return f"files {self.path}"


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    settings: Settings
    metrics_listen: str = "127.0.0.1:9479"
    registries: Mapping[str, RegistryConfig] = field(default_factory=dict)
    targets: tuple[Target, ...] = ()
    notify: tuple[NotifyConfig, ...] = ()
    sources: tuple[SourceConfig, ...] = ()

    def registry(self, host: str) -> RegistryConfig | None:
        return self.registries.get(host)


# --- locating keys in the file, for messages that name the line ---------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


class _Locator:
    """Finds the line of `table[index].key` in the TOML text (best effort)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line(self, table: str | None, index: int | None = None, key: str | None = None) -> int:
        seen = -1
        current: tuple[str, int] | None = ("", 0) if table is None else None
        found_table = 0
        for number, raw in enumerate(self.lines, start=1):
            header = _HEADER.match(raw)
            if header:
                name = header.group(2).strip().strip("\"'")
                if table is None and key is not None and name.split(".")[0] == key:
                    return number  # a top-level key written as a [table] or [[table]]
                if name == table:
                    seen += 1
                    if index is None or seen == index:
                        current = (name, number)
                        found_table = number
                        if key is None:
                            return number
                        continue
                current = None
                continue
            if current is not None and key is not None:
                match = _KEY.match(raw)
                if match and match.group(1) == key:
                    return number
        return found_table


class _Reader:
    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.locator = _Locator(text)

    def fail(
        self, message: str, table: str | None, index: int | None, key: str | None
    ) -> ConfigError:
        where = table or ""
        if index is not None:
            where += f"[{index}]"
        if key:
            where = f"{where}.{key}" if where else key
        line = self.locator.line(table, index, key)
        prefix = f"{self.path}:{line}: " if line else f"{self.path}: "
        return ConfigError(f"{prefix}{where}: {message}" if where else f"{prefix}{message}")


#: Every key the loader accepts, per table ("" is the top level), in the order the readers
#: read them (the order error messages list them in). Unknown keys are found from this before
#: anything is read, so a typo is reported before the key it hides is reported missing.
#: tests/test_readme.py holds the README and config.example.toml to this list.
KEYS: Mapping[str, tuple[str, ...]] = {
    "": ("tagwatch", "metrics", "registry", "watch", "pin", "source", "notify"),
    "tagwatch": (
        "database",
        "interval",
        "jitter",
        "concurrency",
        "timeout",
        "first_check_notify",
        "error_after",
        "describe_moves",
        "tag_list_ttl",
        "timezone",
    ),
    "metrics": ("listen",),
    "registry": (
        "host",
        "username",
        "password_env",
        "password_file",
        "ca_file",
        "insecure",
        "concurrency",
        "rate",
        "endpoint",
    ),
    "watch": (
        "image",
        "platforms",
        "notify",
        "mutable",
        "interval",
        "schedule",
        "grace",
        "quiet",
        "newer",
        "newer_include",
        "newer_exclude",
    ),
    "pin": (
        "image",
        "platforms",
        "notify",
        "max_age",
        "renotify",
        "source",
        "mutable",
        "interval",
        "schedule",
        "grace",
        "quiet",
        "newer",
        "newer_include",
        "newer_exclude",
    ),
    "source": (
        "path",
        "engine",
        "kubernetes",
        "include",
        "exclude",
        "cert_path",
        "tls_verify",
        "insecure",
        "context",
        "namespaces",
        "stopped",
        "notify",
        "max_age",
        "renotify",
        "newer",
        "newer_include",
        "newer_exclude",
    ),
    "notify": (
        "name",
        "url",
        "url_env",
        "url_file",
        "events",
        "tags",
        "format",
        "mode",
        "timezone",
        "schedule",
        "quiet",
        "title",
        "body",
    ),
}

#: Keys whose value is a secret: never quoted in a message, whatever its type.
SECRET_KEYS: Mapping[str, frozenset[str]] = {"notify": frozenset({"url"})}

_ARRAYS = ("registry", "watch", "pin", "source", "notify")  # [[...]] tables


def _typos(a: str, b: str) -> int:
    """Edits between two words: insertions, deletions, substitutions and swaps of two
    neighbouring letters (optimal string alignment distance)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def _nearest(word: str, choices: Sequence[str]) -> str | None:
    """The choice `word` is most likely a typo of (`imgae`, `ulr`, `opz`: one or two slips of
    the keyboard, or a close spelling); None when nothing is close enough to suggest."""
    allowed = 1 if len(word) <= 4 else 2
    near = sorted((_typos(word, c), c) for c in choices)
    if near and near[0][0] <= allowed:
        return near[0][1]
    import difflib  # only on the way to an error message

    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.8)
    return match[0] if match else None


def _section(table: str) -> str:
    return f"[[{table}]]" if table in _ARRAYS else f"[{table}]"


def _unknown_key(key: str, table: str | None) -> str:
    known = KEYS[table or ""]
    nearest = _nearest(key, known)
    if nearest is not None:
        return f"unknown key '{key}' (did you mean '{nearest}'?)"
    elsewhere = [_section(t) for t, keys in KEYS.items() if t and t != table and key in keys]
    if elsewhere and table:
        where = " and ".join(elsewhere)
        return (
            f"unknown key '{key}': a key of {where}, not of {_section(table)} "
            f"(known keys: {', '.join(known)})"
        )
    return f"unknown key '{key}' (known keys: {', '.join(known)})"


def _check_keys(reader: _Reader, doc: Mapping[str, Any]) -> None:
    """Every key of every table is one the loader knows: checked before any value is read."""

    def check(data: Any, table: str | None, index: int | None = None) -> None:
        if not isinstance(data, dict):
            return  # the table's reader says what is wrong with it
        known = KEYS[table or ""]
        for key in data:
            if key not in known:
                raise reader.fail(_unknown_key(key, table), table, index, key)

    check(doc, None)
    for section in ("tagwatch", "metrics"):
        check(doc.get(section), section)
    for section in _ARRAYS:
        items = doc.get(section)
        if isinstance(items, list):
            for i, item in enumerate(items):
                check(item, section, i)


class _Table:
    """One TOML table with typed getters over the keys `KEYS` declares for it."""

    def __init__(
        self, reader: _Reader, data: Any, table: str | None, index: int | None = None
    ) -> None:
        self.reader, self.table, self.index = reader, table, index
        if not isinstance(data, dict):
            raise reader.fail("must be a table", table, index, None)
        self.data: dict[str, Any] = data
        self.keys = KEYS[table or ""]
        self.secret = SECRET_KEYS.get(table or "", frozenset())
        self.known: list[str] = []

    def _not(self, key: str, value: Any) -> str:
        """The end of a message about a wrong value of `key`: never a secret's value."""
        if key in self.secret:
            return " (the value given is not shown: it may hold a secret)"
        return f", not {_shown(value)}"

    def fail(self, key: str | None, message: str) -> ConfigError:
        return self.reader.fail(message, self.table, self.index, key)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        assert key in self.keys, f"config key {self.table}.{key} is read but not in KEYS"
        self.known.append(key)
        if key not in self.data:
            return default
        value = self.data[key]
        # bool is an int in Python; refuse `concurrency = true`.
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            raise self.fail(key, f"must be a number{self._not(key, value)}")
        if not isinstance(value, kind):
            shape = self._shape_error(key, value, kind)
            if shape is not None:
                raise shape
            names = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            expected = {
                "str": "a string",
                "bool": "true or false",
                "int": "a whole number",
                "list": "a list",
            }.get(names, names)
            raise self.fail(key, f"must be {expected}{self._not(key, value)}")
        return value

    def _shape_error(
        self, key: str, value: Any, kind: type | tuple[type, ...]
    ) -> ConfigError | None:
        """`[watch]` written for `[[watch]]` (or `[[tagwatch]]` for `[tagwatch]`): one line
        naming the header's line, not a dump of the table."""
        if self.table is not None:
            return None
        locator, path = self.reader.locator, self.reader.path
        line = locator.line(key) or locator.line(None, None, key)
        prefix = f"{path}:{line}: " if line else f"{path}: "
        if kind is list and isinstance(value, dict):
            return ConfigError(
                f"{prefix}[{key}] is a single table: write [[{key}]] (double brackets), "
                f"one [[{key}]] per entry"
            )
        if kind is dict and isinstance(value, list):
            return ConfigError(
                f"{prefix}[[{key}]] is a list of tables: write [{key}] (single brackets), once"
            )
        return None

    def string(self, key: str, default: str | None = None, *, empty_ok: bool = False) -> Any:
        value = self.get(key, str, default)
        if value is not None and not value.strip() and not empty_ok:
            raise self.fail(key, "must not be empty")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.get(key, list, [])
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise self.fail(key, f"must be a list of non-empty strings{self._not(key, value)}")
        return tuple(value)

    def duration(self, key: str, default: float) -> float:
        value = self.get(key, (str, int), None)
        if value is None:
            return default
        if isinstance(value, int):
            raise self.fail(key, f'bad duration {value!r}: write it with a unit, e.g. "{value}s"')
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def integer(self, key: str, default: int | None, minimum: int = 1) -> Any:
        value = self.get(key, int, default)
        if value is not None and value < minimum:
            raise self.fail(key, f"must be at least {minimum}, not {value}")
        return value

    def finish(self) -> None:
        """Every key given was read (KEYS and the readers agree)."""
        for key in self.data:
            if key not in self.known:
                raise self.fail(key, _unknown_key(key, self.table))


def _shown(value: Any) -> str:
    """A wrong value, for a one-line message: tables are named, not dumped."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return "a list of tables"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _expand(table: _Table, key: str, value: str | None, env: Mapping[str, str]) -> str | None:
    """Expand ${VAR} in paths, e.g. "${CREDENTIALS_DIRECTORY}/ghcr" under systemd."""
    if value is None:
        return None

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise table.fail(key, f"environment variable {name} is not set (in {value!r})")
        return env[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, value)


def _secret(
    table: _Table, where: str, prefix: str, env: Mapping[str, str], literal_key: str | None = None
) -> Secret | None:
    literal = table.string(literal_key) if literal_key else None
    from_env = table.string(f"{prefix}_env")
    from_file = _expand(table, f"{prefix}_file", table.string(f"{prefix}_file"), env)
    given = [
        k
        for k, v in (
            (literal_key, literal),
            (f"{prefix}_env", from_env),
            (f"{prefix}_file", from_file),
        )
        if v is not None
    ]
    if len(given) > 1:
        raise table.fail(given[1], f"give only one of {', '.join(str(g) for g in given)}")
    if not given:
        return None
    line = table.reader.locator.line(table.table, table.index, given[0])
    return Secret(
        where=f"{table.reader.path}:{line}: {where}.{given[0]}",
        env=from_env,
        file=from_file,
        value=literal,
    )


def _ref(table: _Table, key: str) -> ImageRef:
    text = table.string(key)
    if text is None:
        raise table.fail(key, "is required")
    try:
        return parse_ref(text)
    except ReferenceError_ as exc:
        raise table.fail(key, str(exc)) from None


def _newer_policy(table: _Table) -> str | None:
    value: str | None = table.string("newer")
    if value is not None and value not in ("patch", "minor", "major"):
        raise table.fail("newer", f"unknown policy {value!r} (patch, minor or major)")
    return value


def _newer(table: _Table) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """`newer` and its filters `newer_include`/`newer_exclude`: a regular expression or a
    list of them, compiled here so that a bad one is a configuration error naming its key."""
    policy = _newer_policy(table)
    filters = []
    for key in ("newer_include", "newer_exclude"):
        value = table.get(key, (str, list), None)
        patterns = [value] if isinstance(value, str) else list(value or [])
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern:
                raise table.fail(key, "must be a regular expression or a list of them")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise table.fail(key, f"bad regular expression {pattern!r}: {exc}") from None
        if patterns and policy is None:
            raise table.fail(key, 'filters newer versions: set newer = "patch", "minor" or "major"')
        filters.append(tuple(patterns))
    return policy, filters[0], filters[1]


def _each(table: _Table, key: str, parse: Callable[[str], T]) -> tuple[T, ...]:
    """Parse every string of a list key; the first bad one fails naming the key."""
    out = []
    for text in table.strings(key):
        try:
            out.append(parse(text))
        except ValueError as exc:
            raise table.fail(key, str(exc)) from None
    return tuple(out)


def _mode(table: _Table) -> str:
    mode: str = table.string("mode") or "each"
    if mode not in ("each", "summary", "digest"):
        raise table.fail("mode", f"unknown mode {mode!r} (each, summary or digest)")
    if mode == "digest" and not table.data.get("schedule"):
        raise table.fail(
            "schedule", 'a digest needs a schedule, e.g. schedule = ["09:00"] or "0 9 * * MON-FRI"'
        )
    return mode


def _timezone(table: _Table, default: str) -> str:
    """`timezone = "Europe/Berlin"`: an IANA name, checked against the zone database."""
    name: str | None = table.string("timezone")
    if name is None:
        return default
    from tagwatch.timing import zone

    try:
        zone(name)
    except ValueError as exc:
        raise table.fail("timezone", str(exc)) from None
    return name


def _schedule(table: _Table, timezone: str) -> tuple[Cron, ...]:
    """`schedule`: a cron expression or a time of day (`"0 9 * * MON-FRI"`, `"09:00"`), or a
    list of them, read in `timezone`."""
    value = table.get("schedule", (str, list), None)
    texts = [value] if isinstance(value, str) else list(value or [])
    if not texts:
        return ()
    from tagwatch.timing import Cron

    out = []
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise table.fail("schedule", "must be a cron expression, a time (HH:MM) or a list")
        try:
            out.append(Cron.parse(text, timezone))
        except ValueError as exc:
            raise table.fail("schedule", str(exc)) from None
    return tuple(out)


def _body_format(table: _Table) -> str | None:
    value: str | None = table.string("format")
    if value is not None and value not in ("text", "markdown", "html", "json"):
        raise table.fail("format", f"unknown format {value!r} (text, markdown, html or json)")
    return value


def _endpoint(table: _Table, insecure: bool) -> str | None:
    """`endpoint = "https://mirror.internal"`: the registry's API is served there (a mirror
    or pull-through cache). Plain http only for loopback or with insecure = true."""
    value: str | None = table.string("endpoint")
    if value is None:
        return None
    match = re.fullmatch(r"(https?)://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?/?", value)
    if not match:
        raise table.fail("endpoint", f"bad endpoint {value!r}: use https://host[:port]")
    if match.group(1) == "http" and not insecure and not is_loopback(match.group(2)):
        raise table.fail(
            "endpoint", f"{value} is plain http: allowed only for loopback or insecure = true"
        )
    return value.rstrip("/")


def _rate(table: _Table) -> float | None:
    """`rate = "10/s"`: the most requests per second tagwatch sends to the registry."""
    text = table.string("rate")
    if text is None:
        return None
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise table.fail("rate", str(exc)) from None


def _own_interval(table: _Table) -> float | None:
    """A watch's or pin's own `interval`, overriding [tagwatch] interval in the daemon."""
    value = table.duration("interval", -1.0)  # registers the key even when absent
    if value == -1.0:
        return None
    if value <= 0:
        raise table.fail("interval", "must be longer than 0s")
    return value


def _own_schedule(table: _Table, timezone: str) -> str | None:
    """A watch's or pin's `schedule`: one cron expression the daemon checks it at, instead
    of an interval (`"0 9 * * MON-FRI"`, in [tagwatch] timezone)."""
    value = table.get("schedule", str, None)
    if value is None:
        return None
    if "interval" in table.data:
        raise table.fail("schedule", "give interval or schedule, not both")
    from tagwatch.timing import Cron

    try:
        return Cron.parse(value, timezone).expression
    except ValueError as exc:
        raise table.fail("schedule", str(exc)) from None


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the configuration. Raises ConfigError with a one-line message."""
    env = os.environ if env is None else env
    shown = str(path)
    text = _read_text(path, shown)
    reader = _Reader(shown, text)
    doc = _parse_toml(text, shown)
    _check_keys(reader, doc)
    root = _Table(reader, doc, None)
    # One reader per section, in this order (it is the order `known keys` lists them in).
    settings = _read_settings(_Table(reader, root.get("tagwatch", dict, {}), "tagwatch"), env)
    listen = _read_metrics(_Table(reader, root.get("metrics", dict, {}), "metrics"))
    registries = _read_registries(reader, root.get("registry", list, []), env)
    targets = _read_targets(
        reader, root.get("watch", list, []), root.get("pin", list, []), settings.timezone
    )
    sources = [
        _read_source(_Table(reader, item, "source", i), env)
        for i, item in enumerate(root.get("source", list, []))
    ]
    notify = _read_notifies(reader, root.get("notify", list, []), env, settings.timezone)
    root.finish()
    _check_routes(reader, doc, notify)
    return Config(
        path=shown,
        settings=settings,
        metrics_listen=listen,
        registries=registries,
        targets=tuple(targets),
        notify=tuple(notify),
        sources=tuple(sources),
    )


def _check_routes(reader: _Reader, doc: Mapping[str, Any], notify: Sequence[NotifyConfig]) -> None:
    """Every routing tag (`notify` on a watch, pin or source) is carried by a [[notify]]
    target: a typo would otherwise route its alerts nowhere, silently."""
    carried = sorted({tag for target in notify for tag in target.tags})
    for section in ("watch", "pin", "source"):
        for i, item in enumerate(doc.get(section) or []):
            for tag in item.get("notify") or ():
                if tag in carried:
                    continue
                if not notify:
                    why = "there is no [[notify]] target"
                elif not carried:
                    why = "no [[notify]] target has tags"
                else:
                    nearest = _nearest(tag, carried)
                    hint = f"did you mean '{nearest}'? " if nearest else ""
                    why = f"{hint}tags carried: {', '.join(carried)}"
                raise reader.fail(
                    f"no [[notify]] target carries the routing tag '{tag}' ({why})",
                    section,
                    i,
                    "notify",
                )


def _read_text(path: str | os.PathLike[str], shown: str) -> str:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read configuration: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: not UTF-8 text (byte {exc.start})") from None


def _parse_toml(text: str, shown: str) -> dict[str, Any]:
    try:
        return tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if match:
            message = message[: match.start()].strip()
            raise ConfigError(f"{shown}:{match.group(1)}: TOML syntax: {message}") from None
        raise ConfigError(f"{shown}: TOML syntax: {message}") from None


def _read_settings(main: _Table, env: Mapping[str, str]) -> Settings:
    """[tagwatch]"""
    state_dir = env.get("STATE_DIRECTORY", "").split(":")[0]
    default_db = os.path.join(state_dir, "tagwatch.db") if state_dir else "tagwatch.db"
    settings = Settings(
        database=_expand(main, "database", main.string("database", default_db), env) or default_db,
        interval=main.duration("interval", 900.0),
        jitter=main.duration("jitter", 30.0),
        concurrency=main.integer("concurrency", 8),
        timeout=main.duration("timeout", 10.0),
        first_check_notify=main.get("first_check_notify", bool, False),
        error_after=main.integer("error_after", 3),
        describe_moves=main.get("describe_moves", bool, True),
        tag_list_ttl=main.duration("tag_list_ttl", 6 * 3600.0),
        timezone=_timezone(main, "UTC"),
    )
    if settings.interval <= 0:
        raise main.fail("interval", "must be longer than 0s")
    if settings.timeout <= 0:
        raise main.fail("timeout", "must be longer than 0s")
    main.finish()
    return settings


def _read_metrics(metrics: _Table) -> str:
    """[metrics]: the listen address ("" turns the endpoint off; port 0: any free port)."""
    listen: str = metrics.string("listen", "127.0.0.1:9479", empty_ok=True)
    if listen:
        try:
            parse_listen(listen)
        except ValueError as exc:
            raise metrics.fail("listen", f'{exc}; or "" to turn the endpoint off') from None
    metrics.finish()
    return listen


def _read_registries(
    reader: _Reader, items: list[Any], env: Mapping[str, str]
) -> dict[str, RegistryConfig]:
    """[[registry]], by canonical host; a host configured twice is an error."""
    registries: dict[str, RegistryConfig] = {}
    for i, item in enumerate(items):
        table = _Table(reader, item, "registry", i)
        registry = _read_registry(table, env, taken=registries)
        registries[registry.host] = registry
        table.finish()
    return registries


def _read_registry(
    table: _Table, env: Mapping[str, str], taken: Container[str] = ()
) -> RegistryConfig:
    host_text = table.string("host")
    if host_text is None:
        raise table.fail("host", 'is required (e.g. host = "ghcr.io")')
    try:
        host = parse_ref(f"{host_text.strip().rstrip('/')}/x").registry
    except ReferenceError_:
        raise table.fail("host", f"bad registry host {host_text!r}") from None
    if host in taken:
        raise table.fail("host", f"registry {host} is configured twice")
    username = table.string("username")
    password = _secret(table, f"registry[{table.index}]", "password", env)
    if (username is None) != (password is None):
        raise table.fail(
            "username" if username is None else "password_env",
            "username and password_env/password_file go together",
        )
    ca_file = _expand(table, "ca_file", table.string("ca_file"), env)
    insecure: bool = table.get("insecure", bool, False)
    return RegistryConfig(
        host=host,
        username=username,
        password=password,
        insecure=insecure,
        concurrency=table.integer("concurrency", None),
        ca_file=ca_file,
        rate=_rate(table),
        endpoint=_endpoint(table, insecure=insecure),
    )


def _read_targets(
    reader: _Reader, watches: list[Any], pins: list[Any], timezone: str = "UTC"
) -> list[Target]:
    """[[watch]] then [[pin]]; the same watch or pin listed twice is an error. A cron
    `schedule` is read in `timezone` ([tagwatch] timezone)."""
    targets: list[Target] = []
    seen: dict[str, int] = {}  # key -> index in its section
    for kind, items in ((Kind.WATCH, watches), (Kind.PIN, pins)):
        for i, item in enumerate(items):
            target = _plain_target(kind, item)
            if target is None or target.key in seen:  # the full reader says what is wrong
                table = _Table(reader, item, kind.value, i)
                target = _read_target(table, kind, timezone)
                if target.key in seen:
                    first = f"{target.kind.value}[{seen[target.key]}]"
                    raise table.fail("image", f"{target.display} is already listed as {first}")
                table.finish()
            seen[target.key] = i
            targets.append(target)
    return targets


def _plain_target(kind: Kind, item: Any) -> Target | None:
    """A [[watch]] or [[pin]] of `image` alone (most of a large configuration), read without
    the typed table; None for anything else, or anything wrong, which _read_target reads
    (and words the error of)."""
    if type(item) is not dict or len(item) != 1:
        return None
    text = item.get("image")
    if type(text) is not str:
        return None
    try:
        ref = parse_ref(text)
    except ReferenceError_:
        return None
    if (ref.digest is not None) is not (kind is Kind.PIN) or (kind is Kind.PIN and ref.tag is None):
        return None
    return Target(kind=kind, ref=ref if ref.tag is not None else ref.with_tag("latest"))


def _read_target(table: _Table, kind: Kind, timezone: str = "UTC") -> Target:
    ref = _ref(table, "image")
    if kind is Kind.WATCH and ref.digest is not None:
        raise table.fail(
            "image",
            f"a watch follows a tag; {ref} carries a digest: remove '@{ref.digest}' "
            "or make it a [[pin]]",
        )
    if kind is Kind.PIN and (ref.digest is None or ref.tag is None):
        missing = "digest" if ref.digest is None else "tag"
        raise table.fail(
            "image",
            f"a pin needs a tag and a digest, e.g. python:3.12-slim@sha256:…; "
            f"{table.data.get('image')!r} has no {missing}",
        )
    if ref.tag is None:
        ref = ref.with_tag("latest")
    if len(table.data) == 1:  # `image` alone, as most are: every other key at its default
        return Target(kind=kind, ref=ref)
    pin = kind is Kind.PIN
    newer, newer_include, newer_exclude = _newer(table)
    return Target(
        kind=kind,
        ref=ref,
        platforms=_each(table, "platforms", parse_platform),
        notify=table.strings("notify"),
        max_age=table.duration("max_age", 7 * DAY) if pin else 7 * DAY,
        renotify=table.duration("renotify", DAY) if pin else DAY,
        source=table.string("source") if pin else None,
        mutable=table.get("mutable", bool, False),
        interval=_own_interval(table),
        schedule=_own_schedule(table, timezone),
        grace=table.duration("grace", 0.0),
        quiet=_each(table, "quiet", parse_window),
        newer=newer,
        newer_include=newer_include,
        newer_exclude=newer_exclude,
    )


_SOURCE_KINDS = ("path", "engine", "kubernetes")
_ENGINE_KEYS = ("cert_path", "tls_verify", "insecure")
_KUBERNETES_KEYS = ("context", "namespaces")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")


def _read_source(table: _Table, env: Mapping[str, str]) -> SourceConfig:
    """[[source]]: exactly one of `path` (relative to the config file's directory; must
    exist), `engine` or `kubernetes`, and the keys of that kind."""
    shown = table.reader.path
    where = f"source[{table.index}]"
    given = [k for k in _SOURCE_KINDS if k in table.data]
    if len(given) != 1:
        raise table.fail(
            given[1] if given else None,
            "give one of path (files), engine (a Docker Engine API) or kubernetes"
            + (f", not {' and '.join(given)}" if given else ""),
        )
    kind = given[0]
    for key in table.data:
        own = {"engine": _ENGINE_KEYS, "kubernetes": _KUBERNETES_KEYS}
        for other, keys in own.items():
            if key in keys and kind != other:
                raise table.fail(key, f"applies to {other} sources only")
        if key in ("include", "exclude") and kind != "path":
            raise table.fail(key, "applies to path sources only")
        if key == "stopped" and kind == "path":
            raise table.fail(key, "applies to engine and kubernetes sources only")
    newer, newer_include, newer_exclude = _newer(table)
    common: dict[str, Any] = {
        "notify": table.strings("notify"),
        "max_age": table.duration("max_age", 7 * DAY),
        "renotify": table.duration("renotify", DAY),
        "newer": newer,
        "newer_include": newer_include,
        "newer_exclude": newer_exclude,
        "stopped": table.get("stopped", bool, False),
    }
    if kind == "path":
        given_path = _expand(table, "path", table.string("path"), env)
        assert given_path is not None
        full = Path(given_path)
        if not full.is_absolute():
            full = Path(shown).parent / given_path
        if not full.exists():
            raise table.fail("path", f"{full} does not exist")
        source = SourceConfig(
            where=where,
            path=str(full),
            include=table.strings("include"),
            exclude=table.strings("exclude"),
            **common,
        )
    elif kind == "engine":
        source = SourceConfig(where=where, engine=_engine(table, shown, env), **common)
    else:
        source = SourceConfig(where=where, kubernetes=_kubernetes(table, shown, env), **common)
    table.finish()
    return source


def _engine(table: _Table, shown: str, env: Mapping[str, str]) -> EngineConfig:
    """`engine = "unix:///var/run/docker.sock"`, `"tcp://host:2376"` (TLS with `cert_path`,
    a folder of ca.pem, cert.pem and key.pem as Docker's CLI takes them) or `"env"` (from
    DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_TLS and DOCKER_CERT_PATH, as Docker's CLI does)."""
    text, where, tls, verify, cert_path = _engine_setting(table, env)
    insecure = table.get("insecure", bool, False)

    def fail(message: str) -> ConfigError:
        return table.fail("engine", f"{where}: {message}" if where else message)

    if text.startswith("unix://"):
        socket = text[len("unix://") :]
        if not socket.startswith("/"):
            raise fail(f"bad engine address {text!r}: use unix:///absolute/path.sock")
        if tls:
            raise table.fail("cert_path", "TLS applies to tcp:// engines, not to a unix socket")
        return EngineConfig(address=text, socket=socket)
    match = re.fullmatch(r"tcp://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})/?", text)
    if match is None:
        scheme = text.partition("://")[0] if "://" in text else None
        hint = (
            "ssh:// is not supported: forward the engine's socket (ssh -L) and use unix:// "
            "or tcp://"
            if scheme == "ssh"
            else 'use unix:///path/to/docker.sock, tcp://host:port or "env"'
        )
        raise fail(f"bad engine address {text!r}: {hint}")
    host, port = match.group(1), int(match.group(2))
    if not 0 < port < 65536:
        raise fail(f"bad port in {text!r}")
    if not tls and not insecure and not is_loopback(host.strip("[]")):
        raise fail(
            f"{text} without TLS: the engine's API would travel in clear; give cert_path "
            "(ca.pem, cert.pem, key.pem), or insecure = true"
        )
    ca, cert, key = _engine_tls_files(table, shown, cert_path, verify) if tls else (None,) * 3
    return EngineConfig(
        address=text,
        host=host.strip("[]"),
        port=port,
        tls=tls,
        verify=verify,
        ca_file=ca,
        cert_file=cert,
        key_file=key,
    )


def _engine_setting(
    table: _Table, env: Mapping[str, str]
) -> tuple[str, str | None, bool, bool, str | None]:
    """The engine's address, where it came from (for messages; None: the config itself),
    whether TLS is on and verified, and the folder of its keys: from the table, or from
    Docker's environment variables for `engine = "env"`."""
    text = table.string("engine")
    assert text is not None
    cert_path = _expand(table, "cert_path", table.string("cert_path"), env)
    verify_key = table.get("tls_verify", bool, None)
    tls = cert_path is not None or verify_key is True
    verify = verify_key if verify_key is not None else True
    if text != "env":
        return text, None, tls, verify, cert_path
    text = env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    from_env_verify = bool(env.get("DOCKER_TLS_VERIFY"))
    if cert_path is None and (from_env_verify or env.get("DOCKER_TLS")):
        tls, verify = True, from_env_verify
        cert_path = env.get("DOCKER_CERT_PATH") or os.path.join(env.get("HOME", "~"), ".docker")
    return text, f"engine (DOCKER_HOST={text})", tls, verify, cert_path


def _engine_tls_files(
    table: _Table, shown: str, cert_path: str | None, verify: bool
) -> tuple[str | None, str | None, str | None]:
    """ca.pem, cert.pem and key.pem from `cert_path` (relative to the config file), each
    None when absent; a client certificate needs both halves, verification needs the CA."""
    if cert_path is None:
        if verify:
            raise table.fail("tls_verify", "needs cert_path (a folder with ca.pem)")
        return None, None, None
    folder = Path(cert_path)
    if not folder.is_absolute():
        folder = Path(shown).parent / folder
    files = {name: folder / name for name in ("ca.pem", "cert.pem", "key.pem")}
    if verify and not files["ca.pem"].is_file():
        raise table.fail("cert_path", f"{files['ca.pem']} does not exist (tls_verify)")
    has = [n for n in ("cert.pem", "key.pem") if files[n].is_file()]
    if len(has) == 1:
        missing = "key.pem" if has == ["cert.pem"] else "cert.pem"
        raise table.fail("cert_path", f"{folder / missing} does not exist")
    ca = str(files["ca.pem"]) if files["ca.pem"].is_file() else None
    if has:
        return ca, str(files["cert.pem"]), str(files["key.pem"])
    return ca, None, None


def _kubernetes(table: _Table, shown: str, env: Mapping[str, str]) -> KubernetesConfig:
    """`kubernetes = "in-cluster"` or the path of a kubeconfig file."""
    text = _expand(table, "kubernetes", table.string("kubernetes"), env)
    assert text is not None
    namespaces = table.strings("namespaces")
    for name in namespaces:
        if not _NAMESPACE.match(name):
            raise table.fail("namespaces", f"{name!r} is not a namespace name")
    context = table.string("context")
    if text == "in-cluster":
        if context is not None:
            raise table.fail("context", "applies to a kubeconfig, not to in-cluster access")
        return KubernetesConfig(kubeconfig=None, namespaces=namespaces)
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path(shown).parent / path
    if not path.is_file():
        raise table.fail(
            "kubernetes", f'{path} does not exist (a kubeconfig file, or "in-cluster")'
        )
    return KubernetesConfig(kubeconfig=str(path), context=context, namespaces=namespaces)


def _read_notifies(
    reader: _Reader, items: list[Any], env: Mapping[str, str], timezone: str = "UTC"
) -> list[NotifyConfig]:
    """[[notify]]; a name used twice is an error. `timezone` is [tagwatch] timezone, the
    default of each target's own."""
    notify: list[NotifyConfig] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        table = _Table(reader, item, "notify", i)
        notify.append(_read_notify(table, env, names, timezone))
        table.finish()
    return notify


_KNOWN_EVENTS = frozenset(e.value for e in EventKind if e is not EventKind.TEST)


def _read_notify(
    table: _Table, env: Mapping[str, str], names: set[str], timezone: str = "UTC"
) -> NotifyConfig:
    """One [[notify]]; its `name` joins `names`."""
    name = table.string("name")
    url = _secret(table, f"notify[{table.index}]", "url", env, literal_key="url")
    if url is None:
        raise table.fail("url", "is required (an apprise URL, or url_env / url_file)")
    events = table.strings("events")
    for e in events:
        if e not in _KNOWN_EVENTS:
            raise table.fail(
                "events", f"unknown event '{e}' (events: {', '.join(sorted(_KNOWN_EVENTS))})"
            )
    if name is not None:
        if name in names:
            raise table.fail("name", f"name '{name}' is used twice")
        names.add(name)
    zone_name = _timezone(table, timezone)
    notify = NotifyConfig(
        where=name or f"notify[{table.index}]",
        url=url,
        tags=table.strings("tags"),
        events=frozenset(events) if events else None,
        name=name,
        format=_body_format(table),
        mode=_mode(table),
        timezone=zone_name,
        schedule=_schedule(table, zone_name),
        quiet=_each(table, "quiet", parse_window),
        title=table.string("title"),
        body=table.string("body"),
    )
    if notify.format == "json" and notify.body is not None:
        raise table.fail("body", 'format = "json" sends the event\'s JSON object: no body template')
    return notify


def check_secrets(config: Config, env: Mapping[str, str] | None = None) -> None:
    """Read every secret once, so a missing one is a configuration error up front."""
    for registry in config.registries.values():
        if registry.password is not None:
            registry.password.read(env)
    for target in config.notify:
        target.url.read(env)
