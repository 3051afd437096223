"""README.md and config.example.toml agree with the code.

* every key the configuration loader accepts (`tagwatch.config.KEYS`) is in the README's
  configuration table, in its table's rows, and in config.example.toml, in its table;
* every event kind is in the events table, every metric the daemon exports in the metrics
  table, every subcommand in the Commands table;
* every output shown is made by `./dev docs` (scripts/docs.py): a bare fenced block sits
  between `<!-- docs:NAME -->` markers that a generator makes, every generator has its
  block, and no block holds a shell error, a traceback or a path of the machine it was made
  on.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tagwatch.cli import build_parser
from tagwatch.config import KEYS
from tagwatch.core.model import EventKind
from tagwatch.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
EXAMPLE = (ROOT / "config.example.toml").read_text()

sys.path.insert(0, str(ROOT / "scripts"))
import docs  # noqa: E402

ARRAYS = ("registry", "watch", "pin", "source", "notify")


def section(title: str, text: str = README) -> str:
    """The text of the README section `## title` (up to the next heading of that level)."""
    match = re.search(rf"^(#+) {re.escape(title)}\n", text, flags=re.M)
    assert match, f"README has no section {title!r}"
    level = len(match.group(1))
    rest = text[match.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.M)
    return rest[: end.start()] if end else rest


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]


def first_cell(row: str) -> str:
    return row.split(" | ")[0]


def ticked(text: str) -> set[str]:
    """Every `word` in backticks (a key, a name), the leading [table] header stripped."""
    words = set()
    for item in re.findall(r"`([^`]+)`", text):
        words.add(item.split()[-1] if item.startswith("[") else item)
    return words


# --- configuration keys --------------------------------------------------------------------

def readme_config_groups() -> dict[str, str]:
    """README configuration table rows by the table they belong to: a row naming `[name]` or
    `[[name]]` starts a group, the rows after it without a table name belong to it."""
    groups: dict[str, str] = {}
    current = None
    for row in table_rows(section("Configuration"))[1:]:
        header = re.match(r"\| `\[\[?([a-z]+)\]?\]", row)
        if header:
            current = header.group(1)
        assert current is not None, f"a configuration row before any table: {row}"
        groups[current] = groups.get(current, "") + first_cell(row) + "\n"
    return groups


@pytest.mark.parametrize("table", [t for t in KEYS if t])
def test_every_config_key_is_in_the_readme_configuration_table(table: str) -> None:
    groups = readme_config_groups()
    assert table in groups, f"the configuration table has no [{table}] row"
    missing = [key for key in KEYS[table] if key not in ticked(groups[table])]
    assert not missing, f"README configuration table, [{table}]: missing {missing}"


def example_groups() -> dict[str, str]:
    """config.example.toml's key lines by table, commented-out tables and keys included."""
    groups: dict[str, str] = {}
    current = ""
    for line in EXAMPLE.splitlines():
        bare = line.lstrip("# ").rstrip()
        header = re.fullmatch(r"\[\[?([a-z]+)\]?\](\s+#.*)?", bare)
        if header:
            current = header.group(1)
            continue
        key = re.match(r"([a-z_]+)\s*=", bare)
        if key:
            groups[current] = groups.get(current, "") + key.group(1) + "\n"
    return groups


@pytest.mark.parametrize("table", [t for t in KEYS if t])
def test_every_config_key_is_in_config_example_toml(table: str) -> None:
    keys = set(example_groups().get(table, "").split())
    missing = [key for key in KEYS[table] if key not in keys]
    assert not missing, f"config.example.toml, [{table}]: no line for {missing}"


def test_the_key_list_is_what_the_loader_accepts(tmp_path: Path) -> None:
    """KEYS is the loader's truth: a key it lists loads (with a usable value), one it does
    not is refused. Checked for one key per table, and an unknown one."""
    from tagwatch.config import load_config
    from tagwatch.errors import ConfigError

    path = tmp_path / "c.toml"
    path.write_text('[tagwatch]\ntag_list_ttl = "1h"\n[[watch]]\nimage = "python"\n'
                    'newer = "minor"\nnewer_exclude = ["-rc"]\n')
    load_config(path, env={})
    path.write_text('[tagwatch]\nnot_a_key = 1\n')
    with pytest.raises(ConfigError, match="unknown key 'not_a_key'"):
        load_config(path, env={})


# --- events, metrics, commands --------------------------------------------------------------

def test_every_event_is_in_the_events_table() -> None:
    rows = [r for r in table_rows(section("Alerts")) if r.startswith("| `")]
    listed = set()
    for row in rows:
        listed |= ticked(first_cell(row))
    missing = [e.value for e in EventKind if e is not EventKind.TEST and e.value not in listed]
    assert not missing, f"README events table: missing {missing}"


def test_every_exported_metric_is_in_the_metrics_table() -> None:
    exposition = Metrics().exposition().decode()
    exported = set(re.findall(r"^# TYPE (tagwatch_\w+) ", exposition, flags=re.M))
    assert "tagwatch_tag_newer_available" in exported and len(exported) > 20
    listed = set()
    for row in table_rows(section("Metrics")):
        listed |= ticked(first_cell(row))
    missing = sorted(exported - listed)
    assert not missing, f"README metrics table: missing {missing}"
    unknown = sorted(n for n in listed - exported if n.startswith("tagwatch_"))
    assert not unknown, f"README metrics table lists metrics tagwatch does not export: {unknown}"


def test_every_subcommand_is_under_commands() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    commands = set(sub.choices)  # type: ignore[attr-defined]
    assert {"check", "run", "status", "bump", "healthcheck"} <= commands
    listed = {first_cell(r).strip("| `").split()[0].rstrip("`")
              for r in table_rows(section("Commands"))}
    missing = sorted(commands - listed)
    assert not missing, f"README Commands table: missing {missing}"


# --- example outputs -----------------------------------------------------------------------

#: What never belongs in an example output: a leaked shell error or traceback, or a path of
#: the machine the example was made on.
LEAKS = [
    r"Traceback \(most recent call last\)",
    r"^bash: ",
    r"command not found",
    r"internal error",
    r"/work/",
    r"/tmp/",
    r"/home/",
    r"/root/",
    r"/Users/",
]


def loose_output_blocks(text: str) -> list[int]:
    """Lines where a fenced block without a language (an output) opens outside docs markers."""
    loose = []
    inside = fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        if fence:
            fence = not line.startswith("```")
        elif line.startswith("```"):
            fence = True
            if line == "```" and not inside:
                loose.append(number)
        elif re.fullmatch(r"<!-- docs:[a-z0-9-]+ -->", line):
            inside = True
        elif re.fullmatch(r"<!-- /docs:[a-z0-9-]+ -->", line):
            inside = False
    return loose


def test_every_output_block_is_made_by_dev_docs() -> None:
    """A fenced block without a language is an output: it must sit between docs markers."""
    assert loose_output_blocks("a\n```toml\nx = 1\n```\n\n```\nout\n```\n") == [6]
    assert loose_output_blocks("<!-- docs:x -->\n```\nout\n```\n<!-- /docs:x -->\n") == []
    loose = loose_output_blocks(README)
    assert not loose, (
        f"README.md lines {loose}: an output block without <!-- docs:NAME --> markers "
        "(outputs come from ./dev docs; inputs get a language: ```toml, ```sh, ```text)")


def test_every_marked_block_has_a_generator_and_every_generator_its_block() -> None:
    marked = [name for name, _ in docs.blocks(README)]
    assert len(marked) == len(set(marked)), f"a block is marked twice: {marked}"
    known = docs.generators()
    assert not [n for n in marked if n not in known and n not in docs.MANUAL]
    unused = [n for n in known if n not in marked]
    assert not unused, f"generators whose output the README does not show: {unused}"
    opened = re.findall(r"<!-- docs:([a-z0-9-]+) -->", README)
    assert sorted(opened) == sorted(marked), "a docs marker without its closing marker"


@pytest.mark.parametrize("name", [name for name, _ in docs.blocks(README)])
def test_no_example_output_holds_an_error_or_a_local_path(name: str) -> None:
    body = dict(docs.blocks(README))[name]
    assert body.strip(), f"block {name} is empty: run ./dev docs {name}"
    for pattern in LEAKS:
        found = re.search(pattern, body, flags=re.M)
        assert not found, f"README block {name} holds {found.group(0)!r}: run ./dev docs {name}"


def test_the_leak_check_would_catch_the_old_audit_example() -> None:
    """The audit example once showed a shell error with the path of the machine it was
    made on: the checks above must refuse such a block."""
    old = "bash: line 286: ../work/main/.venv/bin/python: No such file or directory\n"
    text = f"<!-- docs:audit -->\n```\n{old}```\n<!-- /docs:audit -->\n"
    [(name, body)] = docs.blocks(text)
    assert name == "audit"
    assert [p for p in LEAKS if re.search(p, body, flags=re.M)] == [r"^bash: ", r"/work/"]
