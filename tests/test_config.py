"""The configuration loader: every failure mode gives one line naming file, line and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagwatch.config import check_secrets, load_config
from tagwatch.core.model import DAY, Kind
from tagwatch.errors import ConfigError

DIGEST = "sha256:" + "a" * 64
ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        config = load_config(write(tmp_path, text), env=env or {})
        check_secrets(config, env or {})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_example_config_loads_with_every_key() -> None:
    config = load_config(ROOT / "config.example.toml", env={})
    assert config.settings.interval == 900
    assert {t.kind for t in config.targets} == {Kind.WATCH, Kind.PIN}
    assert config.notify


def test_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[[watch]]\nimage = "python:3.12"\n'), env={})
    s = config.settings
    assert (s.database, s.interval, s.jitter, s.concurrency, s.timeout) == (
        "tagwatch.db",
        900,
        30,
        8,
        10,
    )
    assert (s.first_check_notify, s.error_after) == (False, 3)
    assert config.metrics_listen == "127.0.0.1:9479"
    (watch,) = config.targets
    assert watch.ref.name == "docker.io/library/python" and watch.tag == "3.12"


def test_a_watch_or_pin_of_image_alone_reads_as_one_with_every_default_written_out(
    tmp_path: Path,
) -> None:
    """`image` alone takes a short way through the reader (most of a large config): it must
    give the very target the full reader gives when every other key is written at its
    default."""
    alone = load_config(
        write(
            tmp_path, f'[[watch]]\nimage = "python:3.12"\n[[pin]]\nimage = "python:3.12@{DIGEST}"\n'
        ),
        env={},
    )
    spelled = load_config(
        write(
            tmp_path,
            f"""
[[watch]]
image = "python:3.12"
platforms = []
notify = []
mutable = false
grace = "0s"
quiet = []
newer_include = []
newer_exclude = []
[[pin]]
image = "python:3.12@{DIGEST}"
max_age = "7d"
renotify = "1d"
mutable = false
""",
        ),
        env={},
    )
    assert alone.targets == spelled.targets
    assert [t.kind for t in alone.targets] == [Kind.WATCH, Kind.PIN]


def test_state_directory_sets_the_default_database(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), env={"STATE_DIRECTORY": "/var/lib/tagwatch"})
    assert config.settings.database == "/var/lib/tagwatch/tagwatch.db"


def test_pin_keys(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            f"""
[[pin]]
image = "python:3.12-slim@{DIGEST}"
max_age = "3d"
renotify = "12h"
source = "services/api/Dockerfile"
""",
        ),
        env={},
    )
    (pin,) = config.targets
    assert pin.pinned == DIGEST and pin.tag == "3.12-slim"
    assert (pin.max_age, pin.renotify, pin.source) == (3 * DAY, DAY / 2, "services/api/Dockerfile")


def test_secrets_from_env_and_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    config = load_config(
        write(
            tmp_path,
            f"""
[[registry]]
host = "ghcr.io"
username = "bot"
password_file = "{secret}"
[[registry]]
host = "index.docker.io"
username = "me"
password_env = "HUB_TOKEN"
""",
        ),
        env={},
    )
    assert config.registries["ghcr.io"].password.read({}) == "s3cret"
    assert config.registries["docker.io"].password.read({"HUB_TOKEN": "t0k"}) == "t0k"
    assert "s3cret" not in repr(config)


def test_credentials_directory_in_paths(tmp_path: Path) -> None:
    (tmp_path / "ghcr").write_text("from-systemd")
    config = load_config(
        write(
            tmp_path,
            """
[[registry]]
host = "ghcr.io"
username = "bot"
password_file = "${CREDENTIALS_DIRECTORY}/ghcr"
""",
        ),
        env={"CREDENTIALS_DIRECTORY": str(tmp_path)},
    )
    assert config.registries["ghcr.io"].password.read({}) == "from-systemd"


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            '[tagwatch]\nintervall = "5m"\n',
            ":2: tagwatch.intervall: unknown key 'intervall' (did you mean 'interval'?)",
        ),
        ('[tagwatch]\ninterval = "15x"\n', ":2: tagwatch.interval: bad duration '15x'"),
        (
            "[tagwatch]\ninterval = 15\n",
            ':2: tagwatch.interval: bad duration 15: write it with a unit, e.g. "15s"',
        ),
        ("[tagwatch]\nconcurrency = 0\n", ":2: tagwatch.concurrency: must be at least 1, not 0"),
        ("[tagwatch]\nconcurrency = true\n", ":2: tagwatch.concurrency: must be a number"),
        (
            '[tagwatch]\nfirst_check_notify = "yes"\n',
            ":2: tagwatch.first_check_notify: must be true or false, not 'yes'",
        ),
        ('[metrics]\nlisten = "9479"\n', ":2: metrics.listen: '9479' is not HOST:PORT"),
        (
            '\n\n[[watch]]\nimage = "Python:3.12"\n',
            ":4: watch[0].image: bad image reference 'Python:3.12'",
        ),
        (
            '[[watch]]\nimage = "python:3.12"\n[[watch]]\nimage = "example.com//x"\n',
            ":4: watch[1].image: bad image reference 'example.com//x'",
        ),
        (
            f'[[watch]]\nimage = "python:3.12@{DIGEST}"\n',
            ":2: watch[0].image: a watch follows a tag",
        ),
        (
            '[[pin]]\nimage = "python:3.12-slim"\n',
            ":2: pin[0].image: a pin needs a tag and a digest, e.g. python:3.12-slim@sha256:…; "
            "'python:3.12-slim' has no digest",
        ),
        (
            '[[pin]]\nimage = "python@sha256:' + "a" * 64 + '"\n',
            ":2: pin[0].image: a pin needs a tag and a digest",
        ),
        ('[[pin]]\nimage = "python:3@sha256:abc"\n', ":2: pin[0].image: bad image reference"),
        ('[[watch]]\nimage = "python"\nplatforms = ["linux"]\n', ":3: watch[0].platforms:"),
        (
            '[[watch]]\nimage = "python"\ncolour = "red"\n',
            ":3: watch[0].colour: unknown key 'colour'",
        ),
        ("[[watch]]\nplatforms = []\n", "watch[0].image: is required"),
        (
            '[[watch]]\nimage = "python:3"\n[[watch]]\nimage = "docker.io/library/python:3"\n',
            ":4: watch[1].image: docker.io/library/python:3 is already listed as watch[0]",
        ),
        ('[[notify]]\ntags = ["ops"]\n', "notify[0].url: is required"),
        (
            '[[notify]]\nurl = "json://x"\nevents = ["moved", "exploded"]\n',
            ":3: notify[0].events: unknown event 'exploded'",
        ),
        (
            '[[registry]]\nhost = "ghcr.io"\nusername = "bot"\n',
            "registry[0].password_env: username and password_env/password_file go together",
        ),
        (
            '[[registry]]\nhost = "ghcr.io"\nusername = "bot"\npassword_env = "A"\n'
            'password_file = "/x"\n',
            ":5: registry[0].password_file: give only one of",
        ),
        (
            '[[registry]]\nhost = "ghcr.io"\n[[registry]]\nhost = "ghcr.io"\n',
            ":4: registry[1].host: registry ghcr.io is configured twice",
        ),
        (
            '[[registry]]\nhost = "ghcr.io"\nusername = "bot"\npassword_env = "NOPE"\n',
            ":4: registry[0].password_env: environment variable NOPE is not set",
        ),
        (
            '[[registry]]\nhost = "ghcr.io"\nusername = "bot"\n'
            'password_file = "/nonexistent/token"\n',
            ":4: registry[0].password_file: cannot read /nonexistent/token: No such file",
        ),
        ('[[notify]]\nurl_env = "SLACK"\n', ":2: notify[0].url_env: environment variable SLACK"),
        ('[tagwatch\ninterval = "5m"\n', ":1: TOML syntax:"),
        (
            '[[registry]]\nhost = "ghcr.io"\nrate = "fast"\n',
            ":3: registry[0].rate: bad rate 'fast'",
        ),
        (
            '[[watch]]\nimage = "python"\nquiet = ["22-7"]\n',
            ":3: watch[0].quiet: bad window '22-7'",
        ),
        ('[[watch]]\nimage = "python"\ngrace = "soon"\n', ":3: watch[0].grace: bad duration"),
        ('[[notify]]\nurl = "json://x"\nmode = "daily"\n', ":3: notify[0].mode: unknown mode"),
        (
            '[[notify]]\nurl = "json://x"\nmode = "digest"\n',
            "notify[0].schedule: a digest needs a schedule",
        ),
        (
            '[[notify]]\nurl = "json://x"\nmode = "digest"\nschedule = ["9am"]\n',
            ":4: notify[0].schedule: bad time '9am'",
        ),
        ('[[notify]]\nurl = "json://x"\nformat = "rtf"\n', ":3: notify[0].format: unknown format"),
        (
            '[[watch]]\nimage = "python"\ninterval = "0s"\n',
            ":3: watch[0].interval: must be longer than 0s",
        ),
        ('[[watch]]\nimage = "python"\n[surprise]\nx = 1\n', "surprise: unknown key 'surprise'"),
        (
            '[[watch]]\nimage = "python:3.12"\nnewer = "minor"\nnewer_include = "(-slim"\n',
            ":4: watch[0].newer_include: bad regular expression '(-slim': missing ), "
            "unterminated subpattern at position 0",
        ),
        (
            '[[pin]]\nimage = "python:3.12@' + DIGEST + '"\nnewer = "patch"\n'
            'newer_exclude = ["-rc", "[a-"]\n',
            ":4: pin[0].newer_exclude: bad regular expression '[a-': unterminated character set",
        ),
        (
            '[[watch]]\nimage = "python:3.12"\nnewer_exclude = "-rc"\n',
            ':3: watch[0].newer_exclude: filters newer versions: set newer = "patch", "minor" or '
            '"major"',
        ),
        (
            '[[watch]]\nimage = "python:3.12"\nnewer = "minor"\nnewer_include = [""]\n',
            ":4: watch[0].newer_include: must be a regular expression or a list of them",
        ),
        (
            '[tagwatch]\ntag_list_ttl = "soon"\n',
            ":2: tagwatch.tag_list_ttl: bad duration",
        ),
    ],
)
def test_errors_name_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    message = error_of(tmp_path, text)
    assert message.startswith(str(tmp_path / "config.toml"))
    assert expected in message


def test_secret_values_never_appear_in_errors(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[[notify]]\nurl = "json://user:hunter2@x"\nevents = [1]\n')
    assert "hunter2" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.toml: cannot read configuration: No such file"):
        load_config(tmp_path / "nope.toml")


# --- fuzzing: any file gives a Config or a one-line ConfigError -----------------------------

_toml_values = st.recursive(
    st.none().map(lambda _: '""')
    | st.integers(-5, 100).map(str)
    | st.booleans().map(lambda b: "true" if b else "false")
    | st.text(max_size=12).map(lambda t: json.dumps(t)),
    lambda inner: st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
    max_leaves=4,
)
_keys = st.sampled_from(
    [
        "image",
        "interval",
        "jitter",
        "max_age",
        "renotify",
        "platforms",
        "notify",
        "url",
        "url_env",
        "tags",
        "events",
        "host",
        "username",
        "password_env",
        "concurrency",
        "timeout",
        "database",
        "rate",
        "listen",
        "source",
        "mutable",
        "error_after",
        "zzz",
    ]
)
_tables = st.sampled_from(
    ["[tagwatch]", "[metrics]", "[[watch]]", "[[pin]]", "[[notify]]", "[[registry]]", "[nonsense]"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(_tables, st.lists(st.tuples(_keys, _toml_values), max_size=4)), max_size=4)
    | st.text(max_size=200).map(lambda t: [("", [("", t)])])
)
def test_any_file_gives_a_config_or_one_clean_line(
    tmp_path_factory: pytest.TempPathFactory, tables: list[tuple[str, list[tuple[str, str]]]]
) -> None:
    lines = []
    for header, pairs in tables:
        lines.append(header)
        lines.extend(f"{k} = {v}" if k else v for k, v in pairs)
    path = tmp_path_factory.mktemp("fuzz") / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path, env={})
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(str(path)) and "\n" not in message.strip()


@pytest.mark.parametrize(
    ("endpoint", "insecure", "error"),
    [
        ("https://mirror.example:5000", False, None),
        ("http://127.0.0.1:5000", False, None),
        ("http://mirror.example", True, None),
        ("http://mirror.example", False, "plain http: allowed only for loopback"),
        ("mirror.example", False, "bad endpoint"),
    ],
)
def test_registry_endpoint(
    tmp_path: Path, endpoint: str, insecure: bool, error: str | None
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[[registry]]\nhost = "docker.io"\nendpoint = "{endpoint}"\n'
        f"insecure = {'true' if insecure else 'false'}\n"
    )
    if error is None:
        assert load_config(path).registries["docker.io"].endpoint == endpoint
    else:
        with pytest.raises(ConfigError, match=error):
            load_config(path)


def test_newer_filters_on_watches_pins_and_sources(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    config = load_config(
        write(
            tmp_path,
            '[tagwatch]\ntag_list_ttl = "1h"\n'
            '[[watch]]\nimage = "python:3.12"\nnewer = "minor"\nnewer_include = "-slim$"\n'
            '[[pin]]\nimage = "node:20.11.1-alpine3.20@' + DIGEST + '"\nnewer = "major"\n'
            'newer_include = ["-alpine3\\\\.\\\\d+$"]\nnewer_exclude = ["-rc", "^2[4-9]"]\n'
            '[[source]]\npath = "repo"\nnewer = "patch"\nnewer_exclude = "-beta"\n',
        ),
        env={},
    )
    watch, pin = config.targets
    assert config.settings.tag_list_ttl == 3600
    assert (watch.newer, watch.newer_include, watch.newer_exclude) == ("minor", ("-slim$",), ())
    assert pin.newer_include == (r"-alpine3\.\d+$",) and pin.newer_exclude == ("-rc", "^2[4-9]")
    [source] = config.sources
    assert (source.newer, source.newer_include, source.newer_exclude) == ("patch", (), ("-beta",))
    assert load_config(write(tmp_path, ""), env={}).settings.tag_list_ttl == 6 * 3600
