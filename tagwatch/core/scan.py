"""Finding image references in Dockerfiles, Compose files and Kubernetes manifests. Pure:
no network; it reads only the files it is given (or walks the directories it is given).

Every reference found is parsed with `parse_ref`; what cannot be resolved or parsed is
reported, not guessed:

* Dockerfiles (`Dockerfile`, `Containerfile`, `*.Dockerfile`, `*.dockerfile`, `Dockerfile.*`,
  `Containerfile.*`): `FROM`, `COPY --from=` and `RUN --mount=...,from=`, with `ARG`/`ENV`
  substitution as BuildKit does it. Stage names and indexes are not images, `scratch` is
  skipped. A variable with no value (`ARG NAME` without default, never declared, or set by
  the builder such as `TARGETARCH`) leaves the reference unresolved; `${NAME:-default}` and
  `${NAME-default}` use the default, `${NAME:+x}` gives "" for an unset variable.
* Compose files (`compose.yaml`, `docker-compose.yml`, `compose.*.yaml`, ...):
  `services.<name>.image`, with `<<` merge keys; `${VAR:-default}` uses the default, a
  variable without one leaves the reference unresolved (the environment and `.env` are not
  read); `$$` is a literal `$`.
* Kubernetes manifests (any other `*.yaml`/`*.yml` whose documents have `apiVersion` and
  `kind`): the pod spec's `containers`, `initContainers` and `ephemeralContainers` of Pod,
  PodTemplate, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job and
  CronJob, of `List` items, and of other kinds shaped like them (`spec.template.spec`,
  `spec.jobTemplate.spec.template.spec`, as Argo Rollouts or Knative Services are).

Line numbers are 1-based: the line of the reference in a Dockerfile, of the `image:` key in
YAML (with a merge key, the line of the key in the merged mapping).
"""

from __future__ import annotations

import csv
import fnmatch
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tagwatch.core.refs import ImageRef, parse_ref
from tagwatch.errors import ReferenceError_

__all__ = [
    "MAX_FILE_SIZE",
    "SKIP_DIRS",
    "Found",
    "file_kind",
    "scan_compose",
    "scan_dockerfile",
    "scan_file",
    "scan_kubernetes",
    "scan_paths",
    "to_rows",
    "to_snippet",
    "walk_paths",
]

MAX_FILE_SIZE = 1024 * 1024  # larger files are skipped
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", ".venv", "vendor"})
_BINARY_PROBE = 8192


@dataclass(frozen=True, slots=True)
class Found:
    """One image reference found in a file."""

    file: str  # path as given, or relative to the directory that was walked
    line: int  # 1-based line of the reference (of the `image:` key in YAML)
    text: str  # the reference as written, after substitution when that succeeded
    ref: ImageRef | None  # None when unresolvable or invalid
    problem: str | None  # why ref is None
    context: str  # "FROM", "COPY --from", "RUN --mount", "compose service web", ...
    platform: str | None = None  # FROM --platform=... when it has a fixed value
    # Where the reference is written in the scanned text, [start, end) character offsets: the
    # Dockerfile word that holds it (`--from=...` or `--mount=...` whole), or the YAML scalar
    # (quotes included). None when a line continuation splits it. Not part of the output.
    span: tuple[int, int] | None = field(default=None, compare=False)


# --- variable substitution ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Unknown:
    """A variable that is set, but to a value this scan cannot know."""

    why: str = ""  # "set by the builder", "needs ${REGISTRY}"


_Value = str | _Unknown | None  # None: not set
_Lookup = Callable[[str], _Value]

_DOCKER_NAME = re.compile(r"[A-Za-z0-9_]+")
_COMPOSE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_DEPTH = 16
_MAX_EXPANSION = 8192  # characters substituted into one word; image references are shorter


class _Overflow(Exception):
    """Substitution nested too deeply, or growing too large (`ARG B=$A$A`, `ARG C=$B$B`...)."""


class _Expander:
    """Shell-like word expansion as BuildKit (Dockerfile mode: escape character, quotes) or
    Compose (`$$` is a literal `$`) does it. Collects problems instead of raising."""

    def __init__(
        self,
        lookup: _Lookup,
        *,
        escape: str | None,
        compose: bool = False,
        hint: Callable[[str], str] | None = None,
    ) -> None:
        self.lookup = lookup
        self.hint = hint or (lambda _name: "")
        self.escape = escape
        self.compose = compose
        self.name_re = _COMPOSE_NAME if compose else _DOCKER_NAME
        self.problems: list[str] = []
        self.unresolved: list[str] = []
        self.budget = _MAX_EXPANSION

    def expand(self, text: str) -> str:
        self.budget = _MAX_EXPANSION
        try:
            value, _ = self._scan(text, 0, 0, stop=False)
        except _Overflow as exc:
            self._problem(str(exc))
            return ""
        return value

    def _problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)

    def _unresolved(self, name: str, why: str = "") -> None:
        if name not in self.unresolved:
            self.unresolved.append(name)
        self._problem(f"unresolved variable ${{{name}}}" + (f" ({why})" if why else ""))

    def _scan(self, s: str, i: int, depth: int, *, stop: bool) -> tuple[str, int]:
        """Expand s from i; with stop, up to the unquoted `}` that ends a `${...}` word."""
        if depth > _MAX_DEPTH:
            raise _Overflow("variable substitution nested too deeply")
        out: list[str] = []
        quote: str | None = None
        n = len(s)
        while i < n:
            c = s[i]
            if self.escape is not None and c == self.escape and quote != "'":
                if i + 1 >= n or quote == '"' and s[i + 1] not in ('"', "$", self.escape):
                    out.append(c)
                    i += 1
                else:
                    out.append(s[i + 1])
                    i += 2
                continue
            if stop and quote is None and c == "}":
                return "".join(out), i
            if not self.compose and c in "'\"":
                if quote is None:
                    quote = c
                    i += 1
                    continue
                if quote == c:
                    quote = None
                    i += 1
                    continue
            if c == "$" and quote != "'":
                if self.compose and s.startswith("$$", i):
                    out.append("$")
                    i += 2
                    continue
                value, i = self._dollar(s, i, depth)
                self.budget -= len(value)
                if self.budget < 0:
                    raise _Overflow("variable substitution too long")
                out.append(value)
                continue
            out.append(c)
            i += 1
        return "".join(out), i

    def _dollar(self, s: str, i: int, depth: int) -> tuple[str, int]:
        """Expand the `$...` at s[i]; returns the value and the index after it."""
        n = len(s)
        j = i + 1
        if j >= n:
            return "$", j
        if s[j] != "{":
            match = self.name_re.match(s, j)
            if not match:
                return "$", j
            return self._plain(match.group()), match.end()
        match = self.name_re.match(s, j + 1)
        close = s.find("}", j)
        if not match:
            self._problem(f"bad substitution {s[i : close + 1] if close >= 0 else s[i:]!r}")
            return "", (close + 1 if close >= 0 else n)
        name, k = match.group(), match.end()
        if k < n and s[k] == "}":
            return self._plain(name), k + 1
        for op in (":-", ":+", ":?", "##", "%%", "//", "-", "+", "?", "#", "%", "/"):
            if s.startswith(op, k):
                break
        else:
            self._problem(f"bad substitution {s[i : close + 1] if close >= 0 else s[i:]!r}")
            return "", (close + 1 if close >= 0 else n)
        # The word after the operator: expanded apart, its problems count only if it is used.
        outer = self.problems, self.unresolved
        self.problems, self.unresolved = [], []
        word, end = self._scan(s, k + len(op), depth + 1, stop=True)
        inner = self.problems, self.unresolved
        self.problems, self.unresolved = outer
        if end >= n:
            self._problem(f"bad substitution {s[i:]!r}: no closing '}}'")
            return "", n

        def use_word() -> str:
            for p in inner[0]:
                self._problem(p)
            for u in inner[1]:
                if u not in self.unresolved:
                    self.unresolved.append(u)
            return word

        value = self.lookup(name)
        after = end + 1
        if isinstance(value, _Unknown):
            self._unresolved(name, value.why)
            return "", after
        if op in (":-", "-"):
            unset = value is None or (op == ":-" and value == "")
            return (use_word() if unset else str(value)), after
        if op in (":+", "+"):
            is_set = value is not None and (op == "+" or value != "")
            return (use_word() if is_set else ""), after
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                self._unresolved(name, self.hint(name))
                return "", after
            return value, after
        if value is None:
            self._unresolved(name, self.hint(name))
            return "", after
        if op in ("#", "##", "%", "%%"):
            pattern = use_word()
            return _strip_pattern(value, pattern, op), after
        self._problem(f"unsupported substitution ${{{name}{op}...}}")
        return "", after

    def _plain(self, name: str) -> str:
        value = self.lookup(name)
        if isinstance(value, _Unknown):
            self._unresolved(name, value.why)
            return ""
        if value is None:
            self._unresolved(name, self.hint(name))
            return ""
        return value


def _strip_pattern(value: str, pattern: str, op: str) -> str:
    """`${v#p}` and friends: remove the shortest/longest prefix/suffix matching a glob."""
    n = len(value)
    glob = re.compile(fnmatch.translate(pattern), re.S)
    if op in ("#", "##"):
        cuts = range(n + 1) if op == "#" else range(n, -1, -1)
        for k in cuts:
            if glob.match(value[:k]):
                return value[k:]
        return value
    cuts = range(n, -1, -1) if op == "%" else range(n + 1)
    for k in cuts:
        if glob.match(value[k:]):
            return value[:k]
    return value


def _problem_text(expander: _Expander) -> str:
    return "; ".join(expander.problems)


def _parsed(
    file: str,
    line: int,
    text: str,
    context: str,
    platform: str | None = None,
    span: tuple[int, int] | None = None,
) -> Found:
    try:
        ref = parse_ref(text)
    except ReferenceError_ as exc:
        return Found(file, line, text, None, str(exc), context, platform, span)
    return Found(file, line, text, ref, None, context, platform, span)


# --- Dockerfiles -------------------------------------------------------------------------

_DIRECTIVE = re.compile(r"#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=(.*)")
_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_HEREDOC = re.compile(r"(\d*)<<(-?)([^<]+)\Z")
_BUILDER_ARGS = frozenset(
    {
        "BUILDPLATFORM",
        "BUILDOS",
        "BUILDARCH",
        "BUILDVARIANT",
        "TARGETPLATFORM",
        "TARGETOS",
        "TARGETARCH",
        "TARGETVARIANT",
    }
)
_SET_BY_BUILDER = _Unknown("set by the builder")
_INSTRUCTIONS = frozenset(
    {
        "add",
        "arg",
        "cmd",
        "copy",
        "entrypoint",
        "env",
        "expose",
        "from",
        "healthcheck",
        "label",
        "maintainer",
        "onbuild",
        "run",
        "shell",
        "stopsignal",
        "user",
        "volume",
        "workdir",
    }
)


@dataclass(slots=True)
class _Instruction:
    keyword: str  # lower case
    args: str  # the logical line after the keyword, continuations joined
    offset: int  # where args starts in the logical line
    # (offset in the logical line, 1-based line, offset in the text, length) per piece
    segments: list[tuple[int, int, int, int]]

    def line_at(self, offset: int) -> int:
        line = self.segments[0][1]
        for start, number, _, _ in self.segments:
            if start > offset:
                break
            line = number
        return line

    def span(self, offset: int, length: int) -> tuple[int, int] | None:
        """Where logical characters [offset, offset + length) are in the text, when they
        are on one physical line; None when a line continuation runs through them."""
        for start, _, at, size in self.segments:
            if start <= offset and offset + length <= start + size:
                return at + offset - start, at + offset - start + length
        return None


def _words(s: str, escape: str) -> list[tuple[str, int]]:
    """Split on white space outside quotes; (raw word, offset) pairs."""
    words: list[tuple[str, int]] = []
    i, n = 0, len(s)
    while i < n:
        while i < n and s[i].isspace():
            i += 1
        if i >= n:
            break
        start, quote = i, None
        while i < n:
            c = s[i]
            if quote is None and c.isspace():
                break
            if c == escape and quote != "'" and i + 1 < n:
                i += 2
                continue
            if c in "'\"":
                if quote is None:
                    quote = c
                elif quote == c:
                    quote = None
            i += 1
        words.append((s[start:i], start))
    return words


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _instructions(text: str) -> tuple[str, list[_Instruction]]:
    """The escape character and the logical lines of a Dockerfile (directives, comments
    and heredoc bodies dropped)."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    starts = [0]  # where each line starts in the text
    for line in text.split("\n")[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
        starts[0] += 1
    escape = "\\"
    i, n = 0, len(lines)
    seen: set[str] = set()
    while i < n:
        match = _DIRECTIVE.match(lines[i])
        if not match or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            break
        key, value = match.group(1).lower(), match.group(2).strip()
        if key in seen or not value:
            break
        seen.add(key)
        if key == "escape" and value in ("\\", "`"):
            escape = value
        i += 1
    continuation = re.compile(re.escape(escape) + r"[ \t]*\Z")
    instructions: list[_Instruction] = []
    while i < n:
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        parts: list[str] = []
        length = 0
        segments: list[tuple[int, int, int, int]] = []
        current = lines[i].lstrip()
        column = len(lines[i]) - len(current)
        while True:
            more = continuation.search(current)
            content = current[: more.start()] if more else current
            segments.append((length, i + 1, starts[i] + column, len(content)))
            parts.append(content)
            length += len(content)
            i += 1
            if not more:
                break
            while i < n and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                i += 1
            if i >= n:
                break
            current, column = lines[i], 0
        logical = "".join(parts)
        keyword = logical.split(None, 1)[0] if logical.strip() else ""
        offset = len(keyword)
        instruction = _Instruction(keyword.lower(), logical[offset:], offset, segments)
        if instruction.keyword in ("run", "copy", "add"):
            for word, _ in _words(instruction.args, escape):
                heredoc = _HEREDOC.match(word)
                if not heredoc:
                    continue
                name = _unquote(heredoc.group(3))
                if not name:
                    continue
                while i < n:
                    body = lines[i].lstrip("\t") if heredoc.group(2) else lines[i]
                    i += 1
                    if body == name:
                        break
        instructions.append(instruction)
    return escape, instructions


@dataclass(slots=True)
class _Stage:
    name: str | None
    env: dict[str, _Value] = field(default_factory=dict)


class _DockerfileScan:
    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.text = text
        self.escape = "\\"
        self.found: list[Found] = []
        self.global_args: dict[str, _Value] = {}
        self.stages: list[_Stage] = []
        self.args: dict[str, _Value] = {}  # the current stage's ARGs
        self.env: dict[str, _Value] = {}  # the current stage's ENV

    # variables

    def global_lookup(self, name: str) -> _Value:
        if name in self.global_args:
            return self.global_args[name]
        return _SET_BY_BUILDER if name in _BUILDER_ARGS else None

    def stage_lookup(self, name: str) -> _Value:
        if name in self.env:
            return self.env[name]
        return self.args.get(name)

    def stage_hint(self, name: str) -> str:
        if name in self.global_args or name in _BUILDER_ARGS:
            return "not declared with ARG in this stage"
        return ""

    def expander(self, lookup: _Lookup) -> _Expander:
        hint = self.stage_hint if lookup == self.stage_lookup else None
        return _Expander(lookup, escape=self.escape, hint=hint)

    def value(self, raw: str, lookup: _Lookup) -> _Value:
        """An ARG/ENV value: unknown when it depends on an unresolved variable."""
        expander = self.expander(lookup)
        value = expander.expand(raw)
        if expander.problems:
            if expander.unresolved:
                return _Unknown("needs " + ", ".join(f"${{{u}}}" for u in expander.unresolved))
            return _Unknown(_problem_text(expander))
        return value

    # instructions

    def run(self) -> list[Found]:
        self.escape, instructions = _instructions(self.text)
        stage_names: set[str] = set()
        for ins in instructions:
            name = self.stage_name(ins) if ins.keyword == "from" else None
            if name is not None:
                stage_names.add(name)
        for ins in instructions:
            words = _words(ins.args, self.escape)
            if ins.keyword == "from":
                self.from_(ins, words)
            elif ins.keyword == "arg":
                self.arg(words)
            elif ins.keyword == "env":
                self.env_(ins, words)
            elif not self.stages:
                continue  # only ARG may come before the first FROM
            elif ins.keyword == "copy":
                self.copy(ins, words, stage_names)
            elif ins.keyword == "run":
                self.run_mounts(ins, words, stage_names)
        return self.found

    def stage_name(self, ins: _Instruction) -> str | None:
        words = [w for w, _ in _words(ins.args, self.escape) if not w.startswith("--")]
        if len(words) >= 3 and words[1].lower() == "as":
            return words[2].lower()
        return None

    def from_(self, ins: _Instruction, words: list[tuple[str, int]]) -> None:
        platform: str | None = None
        rest = list(words)
        while rest and rest[0][0].startswith("--"):
            flag, _ = rest.pop(0)
            key, sep, raw = flag[2:].partition("=")
            if key.lower() == "platform" and sep:
                expander = self.expander(self.global_lookup)
                value = expander.expand(raw)
                platform = value if value and not expander.problems else None
        name = rest[2][0].lower() if len(rest) >= 3 and rest[1][0].lower() == "as" else None
        earlier = {s.name: s for s in self.stages if s.name is not None}
        stage = _Stage(name)
        self.args, self.env = {}, stage.env
        if not rest:
            line = ins.line_at(ins.offset)
            self.found.append(
                Found(self.file, line, "", None, "FROM without an image", "FROM", platform)
            )
            self.stages.append(stage)
            return
        raw, offset = rest[0]
        line = ins.line_at(ins.offset + offset)
        span = ins.span(ins.offset + offset, len(raw))
        expander = self.expander(self.global_lookup)
        image = expander.expand(raw)
        self.stages.append(stage)
        if expander.problems:
            problem = _problem_text(expander)
            self.found.append(Found(self.file, line, raw, None, problem, "FROM", platform, span))
            return
        parent = earlier.get(image.lower())
        if parent is not None:
            stage.env.update(parent.env)
            return
        if image.lower() == "scratch":
            return
        self.found.append(_parsed(self.file, line, image, "FROM", platform, span))

    def arg(self, words: list[tuple[str, int]]) -> None:
        in_stage = bool(self.stages)
        lookup = self.stage_lookup if in_stage else self.global_lookup
        for word, _ in words:
            name, sep, raw = word.partition("=")
            name = _unquote(name)
            if not self.name_ok(name):
                continue
            value: _Value
            if sep:
                value = self.value(raw, lookup)
            elif in_stage:
                value = self.global_lookup(name)
            else:
                value = _SET_BY_BUILDER if name in _BUILDER_ARGS else None
            if in_stage:
                self.args[name] = value
            else:
                self.global_args[name] = value

    def env_(self, ins: _Instruction, words: list[tuple[str, int]]) -> None:
        if not self.stages or not words:
            return
        if "=" not in words[0][0]:  # legacy `ENV NAME value with spaces`
            name = words[0][0]
            if self.name_ok(name) and len(words) > 1:
                raw = ins.args[words[1][1] :].strip()
                self.env[name] = self.value(raw, self.stage_lookup)
            return
        for word, _ in words:
            name, sep, raw = word.partition("=")
            if sep and self.name_ok(name):
                self.env[name] = self.value(raw, self.stage_lookup)

    @staticmethod
    def name_ok(name: str) -> bool:
        return bool(name) and _DOCKER_NAME.fullmatch(name) is not None

    def copy(self, ins: _Instruction, words: list[tuple[str, int]], stage_names: set[str]) -> None:
        for flag, offset in words:
            if not flag.startswith("--"):
                break
            key, sep, raw = flag[2:].partition("=")
            if key.lower() == "from" and sep:
                where = ins.span(ins.offset + offset, len(flag))
                self.source(ins, ins.offset + offset, raw, "COPY --from", stage_names, where)

    def run_mounts(
        self, ins: _Instruction, words: list[tuple[str, int]], stage_names: set[str]
    ) -> None:
        for flag, offset in words:
            if not flag.startswith("--"):
                break
            key, sep, raw = flag[2:].partition("=")
            if key.lower() != "mount" or not sep:
                continue
            try:
                fields = next(csv.reader([_unquote(raw)]), [])
            except csv.Error:
                fields = _unquote(raw).split(",")
            for item in fields:
                name, sep, value = item.strip().partition("=")
                if sep and name.strip().lower() == "from":
                    where = ins.span(ins.offset + offset, len(flag))
                    self.source(ins, ins.offset + offset, value, "RUN --mount", stage_names, where)

    def source(
        self,
        ins: _Instruction,
        offset: int,
        raw: str,
        context: str,
        stage_names: set[str],
        span: tuple[int, int] | None,
    ) -> None:
        """A `--from` value: a stage name or index, or an image."""
        line = ins.line_at(offset)
        expander = self.expander(self.stage_lookup)
        value = expander.expand(raw)
        if expander.problems:
            problem = _problem_text(expander)
            self.found.append(Found(self.file, line, raw, None, problem, context, None, span))
            return
        if (value.isascii() and value.isdigit()) or value.lower() in stage_names:
            return
        self.found.append(_parsed(self.file, line, value, context, None, span))


def scan_dockerfile(text: str, file: str = "Dockerfile") -> list[Found]:
    """References in `FROM`, `COPY --from=` and `RUN --mount=...,from=`, in line order."""
    return _DockerfileScan(text, file).run()


def _looks_like_dockerfile(text: str) -> bool:
    """Every instruction is a Dockerfile instruction, and the first ones are ARG/FROM."""
    keywords = [ins.keyword for ins in _instructions(text)[1]]
    if "from" not in keywords or not all(k in _INSTRUCTIONS for k in keywords):
        return False
    first = next(k for k in keywords if k != "arg")
    return first == "from"


# --- YAML --------------------------------------------------------------------------------

_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"


def _items(node: Node | None, seen: set[int] | None = None) -> list[tuple[Node, Node]]:
    """A mapping's (key, value) pairs, explicit keys first (the last of duplicates first),
    then `<<` merges in order. Each mapping is merged once: aliases may loop."""
    if not isinstance(node, MappingNode):
        return []
    seen = set() if seen is None else seen
    seen.add(id(node))
    explicit: list[tuple[Node, Node]] = []
    merged: list[tuple[Node, Node]] = []
    for key, value in node.value:
        if isinstance(key, ScalarNode) and key.tag == _MERGE_TAG:
            sources = value.value if isinstance(value, SequenceNode) else [value]
            for source in sources:
                if id(source) not in seen:
                    merged.extend(_items(source, seen))
        else:
            explicit.append((key, value))
    return list(reversed(explicit)) + merged


def _pair(node: Node | None, key: str) -> tuple[Node, Node] | None:
    if node is None:
        return None
    for k, v in _items(node):
        if isinstance(k, ScalarNode) and k.value == key:
            return k, v
    return None


def _get(node: Node | None, *path: str) -> Node | None:
    for key in path:
        pair = _pair(node, key)
        if pair is None:
            return None
        node = pair[1]
    return node


def _scalar(node: Node | None) -> str | None:
    if isinstance(node, ScalarNode) and node.tag != _NULL_TAG:
        return str(node.value)
    return None


def _compose_nodes(text: str, file: str, context: str) -> tuple[list[Node], Found | None]:
    """The documents of a YAML stream, and a Found for the error that ended it early."""
    documents: list[Node] = []
    try:
        for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
            if document is not None:
                documents.append(document)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        message = exc.problem or exc.context or str(exc)
        first = message.strip().splitlines()[0] if message.strip() else "syntax error"
        return documents, Found(file, line, "", None, f"YAML: {first}", context)
    except yaml.YAMLError as exc:
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else 1
        first = (str(exc).strip().splitlines() or ["error"])[0]
        return documents, Found(file, line, "", None, f"YAML: {first}", context)
    except RecursionError:
        return documents, Found(file, 1, "", None, "YAML: nested too deeply", context)
    return documents, None


def _image_found(file: str, key: Node, value: Node, context: str, compose: bool) -> Found | None:
    line = key.start_mark.line + 1
    if isinstance(value, ScalarNode) and value.tag == _NULL_TAG:
        return None
    if not isinstance(value, ScalarNode):
        return Found(file, line, "", None, "image is not a string", context)
    raw = str(value.value)
    span = (value.start_mark.index, value.end_mark.index)
    if not compose:
        found = _parsed(file, line, raw, context, None, span)
        names = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", raw)
        if found.ref is None and names:
            problem = "; ".join(f"unresolved variable ${{{n}}}" for n in dict.fromkeys(names))
            return Found(file, line, raw, None, problem, context, None, span)
        return found
    expander = _Expander(lambda _name: None, escape=None, compose=True)
    text = expander.expand(raw)
    if expander.problems:
        return Found(file, line, raw, None, _problem_text(expander), context, None, span)
    return _parsed(file, line, text, context, None, span)


def _compose_document(document: Node, file: str) -> list[Found]:
    found: list[Found] = []
    services = _get(document, "services")
    if not isinstance(services, MappingNode):
        return found
    seen: set[str] = set()
    for key, service in _items(services):
        name = _scalar(key)
        if name is None or name in seen:
            continue
        seen.add(name)
        pair = _pair(service, "image")
        if pair is None:
            continue
        context = f"compose service {name}"
        if _pair(service, "build") is not None:
            context += " (build)"
        item = _image_found(file, pair[0], pair[1], context, True)
        if item is not None:
            found.append(item)
    return found


def _by_line(found: list[Found]) -> list[Found]:
    return sorted(found, key=lambda f: f.line)


def scan_compose(text: str, file: str) -> list[Found]:
    """`services.<name>.image` of a Compose file."""
    documents, error = _compose_nodes(text, file, "compose file")
    found = [f for document in documents for f in _compose_document(document, file)]
    return _by_line(found + ([error] if error else []))


_POD_SPECS = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_POD_SPEC_SHAPES = (
    ("spec", "template", "spec"),
    ("spec", "jobTemplate", "spec", "template", "spec"),
)
_CONTAINER_LISTS = (
    ("initContainers", "initContainer"),
    ("containers", "container"),
    ("ephemeralContainers", "ephemeralContainer"),
)
_IGNORED_KINDS = frozenset({"ConfigMap", "Secret", "CustomResourceDefinition"})


def _kubernetes_object(node: Node, file: str, found: list[Found], depth: int = 0) -> None:
    kind = _scalar(_get(node, "kind"))
    if kind is None or _get(node, "apiVersion") is None:
        return
    items = _get(node, "items")
    if kind.endswith("List") and isinstance(items, SequenceNode):
        if depth < 2:
            for item in items.value:
                _kubernetes_object(item, file, found, depth + 1)
        return
    if kind in _IGNORED_KINDS:
        return
    metadata = _get(node, "metadata")
    name = _scalar(_get(metadata, "name")) or _scalar(_get(metadata, "generateName"))
    label = f"{kind}/{name}" if name else kind
    if kind in _POD_SPECS:
        spec = _get(node, *_POD_SPECS[kind])
    else:
        shapes = (_get(node, *path) for path in _POD_SPEC_SHAPES)
        spec = next((s for s in shapes if isinstance(_get(s, "containers"), SequenceNode)), None)
    for field_name, role in _CONTAINER_LISTS:
        containers = _get(spec, field_name)
        if not isinstance(containers, SequenceNode):
            continue
        for index, container in enumerate(containers.value):
            pair = _pair(container, "image")
            if pair is None:
                continue
            cname = _scalar(_get(container, "name")) or f"#{index}"
            item = _image_found(file, pair[0], pair[1], f"{label} {role} {cname}", False)
            if item is not None:
                found.append(item)


def scan_kubernetes(text: str, file: str) -> list[Found]:
    """Container images of the Kubernetes objects in a (multi-document) YAML file."""
    documents, error = _compose_nodes(text, file, "Kubernetes manifest")
    found: list[Found] = []
    for document in documents:
        _kubernetes_object(document, file, found)
    return _by_line(found + ([error] if error else []))


_LOOKS_API_VERSION = re.compile(r"^[ \t]*(?:- )?apiVersion[ \t]*:", re.M)
_LOOKS_KIND = re.compile(r"^[ \t]*(?:- )?kind[ \t]*:", re.M)
_LOOKS_COMPOSE = re.compile(r"^services[ \t]*:", re.M)


def _scan_yaml(text: str, file: str) -> list[Found]:
    """Any other YAML: Kubernetes documents, or a Compose-shaped file under another name.
    Invalid YAML is reported only when the text looks like one of those."""
    documents, error = _compose_nodes(text, file, "YAML")
    found: list[Found] = []
    for document in documents:
        if _get(document, "apiVersion") is not None and _get(document, "kind") is not None:
            _kubernetes_object(document, file, found)
        elif isinstance(_get(document, "services"), MappingNode) and _is_compose(document):
            found.extend(_compose_document(document, file))
    looks_kubernetes = _LOOKS_API_VERSION.search(text) and _LOOKS_KIND.search(text)
    if error is not None and (looks_kubernetes or _LOOKS_COMPOSE.search(text)):
        found.append(error)
    return _by_line(found)


def _is_compose(document: Node) -> bool:
    """Top-level `services` whose entries are mappings with `image` or `build`."""
    services = _get(document, "services")
    entries = [value for _, value in _items(services)] if services is not None else []
    return bool(entries) and all(
        isinstance(v, MappingNode) and (_pair(v, "image") or _pair(v, "build")) for v in entries
    )


# --- files -------------------------------------------------------------------------------

_COMPOSE_NAMES = frozenset(
    {"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"}
)
_COMPOSE_GLOBS = (
    "docker-compose.*.yml",
    "docker-compose.*.yaml",
    "compose.*.yaml",
    "compose.*.yml",
)


def file_kind(name: str) -> str | None:
    """By file name: "dockerfile", "compose", "yaml" (Kubernetes, by content) or None."""
    if name.endswith(".dockerignore"):
        return None
    if (
        name in ("Dockerfile", "Containerfile")
        or name.endswith((".Dockerfile", ".dockerfile"))
        or name.startswith(("Dockerfile.", "Containerfile."))
    ):
        return "dockerfile"
    if name in _COMPOSE_NAMES or any(fnmatch.fnmatchcase(name, g) for g in _COMPOSE_GLOBS):
        return "compose"
    if name.lower().endswith((".yaml", ".yml")):
        return "yaml"
    return None


def _read(path: Path) -> str | None:
    """The text of a file, or None for one too large or binary."""
    if path.stat().st_size > MAX_FILE_SIZE:
        return None
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_SIZE + 1)
    if len(data) > MAX_FILE_SIZE or b"\0" in data[:_BINARY_PROBE]:
        return None
    return data.decode("utf-8-sig", errors="replace")


def _scan_text(name: str, text: str, file: str) -> list[Found]:
    kind = file_kind(name)
    if kind == "dockerfile":
        return scan_dockerfile(text, file)
    if kind == "compose":
        return scan_compose(text, file)
    if kind == "yaml":
        return _scan_yaml(text, file)
    if _looks_like_dockerfile(text):
        return scan_dockerfile(text, file)
    return []


def scan_file(path: Path, text: str | None = None) -> list[Found]:
    """Scan one file, by its name (Dockerfile, Compose) or content (Kubernetes YAML; a
    Dockerfile under another name). Reads the file when text is None; a file over 1 MiB or
    binary gives []. OSError propagates."""
    path = Path(path)
    if text is None:
        text = _read(path)
        if text is None:
            return []
    return _scan_text(path.name, text, str(path))


# --- walking -----------------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regex: `*` and `?` stay inside one path component, `**` spans any."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern.startswith("[!", i) else i + 1)
            if end < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    try:
        return re.compile("".join(out))
    except re.error:
        return re.compile(re.escape(pattern))


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    anchored: bool  # has a '/': matched against the path from the root
    dir_only: bool  # ended with '/'

    @classmethod
    def parse(cls, text: str) -> _Pattern:
        dir_only = text.endswith("/")
        body = text.strip("/")
        if body.startswith("./"):
            body = body[2:]
        return cls(_glob_regex(body), "/" in body, dir_only)

    def matches(self, rel: str, is_dir: bool) -> bool:
        """gitignore-like: a path matches when it or one of its parent directories does."""
        parts = rel.split("/")
        for k in range(1, len(parts) + 1):
            if self.dir_only and k == len(parts) and not is_dir:
                break
            candidate = "/".join(parts[:k]) if self.anchored else parts[k - 1]
            if self.regex.fullmatch(candidate):
                return True
        return False


def _selected(rel: str, is_dir: bool, include: list[_Pattern], exclude: list[_Pattern]) -> bool:
    if any(p.matches(rel, is_dir) for p in exclude):
        return False
    return is_dir or not include or any(p.matches(rel, is_dir) for p in include)


def _walk(root: Path, include: list[_Pattern], exclude: list[_Pattern]) -> list[tuple[str, Path]]:
    """(path relative to root, path) of candidate files under root, sorted."""
    files: list[tuple[str, Path]] = []
    for directory, dirnames, filenames in os.walk(root):
        base = Path(directory)
        rel_dir = base.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [
            d
            for d in dirnames
            if d not in SKIP_DIRS and _selected(prefix + d, True, include, exclude)
        ]
        for filename in filenames:
            path = base / filename
            rel = prefix + filename
            if file_kind(filename) is None or path.is_symlink() or not path.is_file():
                continue
            if _selected(rel, False, include, exclude):
                files.append((rel, path))
    return sorted(files, key=lambda item: item[0])


def _scan_one(path: Path, shown: str) -> list[Found]:
    try:
        text = _read(path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return [Found(shown, 1, "", None, f"cannot read file: {reason}", "file")]
    if text is None:
        return []
    return _scan_text(path.name, text, shown)


def scan_paths(
    paths: Sequence[str | Path], *, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[Found]:
    """Scan files and directories. A directory is walked (not into `.git`, `node_modules`,
    `.venv`, `vendor`, nor through symbolic links) for files named like Dockerfiles,
    Compose files or YAML, and its files are reported relative to it; a file is reported
    as given, and also scanned when only its content says it is a Dockerfile.

    `include`/`exclude` are globs matched against the path relative to the directory (as
    given for a file): `*` and `?` within one component, `**` across components, a pattern
    without '/' matches a file or directory name at any depth, one with '/' the path from
    the root, and a match on a directory covers everything under it. With `include`, only
    matching files are scanned; `exclude` wins. Files over 1 MiB and binary files are
    skipped. Output: per path in the order given, files sorted, then by line.
    FileNotFoundError for a path that does not exist."""
    found: list[Found] = []
    for shown, target in walk_paths(paths, include=include, exclude=exclude):
        found.extend(_scan_one(target, shown))
    return found


def walk_paths(
    paths: Sequence[str | Path], *, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[tuple[str, Path]]:
    """The files `scan_paths` scans, as (name it reports, path to open), in its order; each
    file once however many paths reach it. FileNotFoundError for a path that does not exist."""
    includes = [_Pattern.parse(p) for p in include if p.strip("/")]
    excludes = [_Pattern.parse(p) for p in exclude if p.strip("/")]
    files: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            targets = _walk(path, includes, excludes)
        elif path.is_file():
            shown = str(given)
            rel = Path(shown).as_posix().removeprefix("./")
            if not _selected(rel, False, includes, excludes):
                continue
            targets = [(shown, path)]
        elif path.exists():
            continue  # a device, FIFO or socket
        else:
            raise FileNotFoundError(f"no such file or directory: {given}")
        for shown, target in targets:
            key = os.path.realpath(target)
            if key in seen:
                continue
            seen.add(key)
            files.append((shown, target))
    return files


# --- output ------------------------------------------------------------------------------


def _toml_string(text: str) -> str:
    out = ['"']
    for c in text:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _comment(text: str) -> str:
    """Text safe inside a TOML comment (no control characters but tab)."""
    return re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)


def _source(found: Found) -> str:
    return f"{found.file}:{found.line}"


def to_snippet(found: Sequence[Found]) -> str:
    """TOML for the configuration: a `[[watch]]` per distinct tag reference, a `[[pin]]`
    (with `source = "file:line"`, the first place it is found) per reference with a digest,
    each under a comment listing every place it was found. References with a digest but no
    tag, and the problems, are listed in comments (a pin needs a tag)."""
    places: dict[str, list[Found]] = {}
    refs: dict[str, ImageRef] = {}
    problems: list[Found] = []
    for item in found:
        if item.ref is None:
            problems.append(item)
            continue
        key = str(item.ref)
        refs[key] = item.ref
        places.setdefault(key, []).append(item)

    def sources(key: str) -> list[str]:
        ordered = sorted(places[key], key=lambda f: (f.file, f.line))
        return list(dict.fromkeys(_source(f) for f in ordered))

    blocks: list[list[str]] = []
    watches = sorted(k for k, r in refs.items() if r.digest is None)
    pins = sorted(k for k, r in refs.items() if r.digest is not None and r.tag is not None)
    untagged = sorted(k for k, r in refs.items() if r.digest is not None and r.tag is None)
    for key in watches:
        where = sources(key)
        blocks.append(
            [f"# {_comment(', '.join(where))}", "[[watch]]", f"image = {_toml_string(key)}"]
        )
    for key in pins:
        where = sources(key)
        blocks.append(
            [
                f"# {_comment(', '.join(where))}",
                "[[pin]]",
                f"image = {_toml_string(key)}",
                f"source = {_toml_string(where[0])}",
            ]
        )
    for key in untagged:
        where = sources(key)
        blocks.append(
            [
                f"# {_comment(', '.join(where))}",
                f"# not listed: {_comment(key)} has a digest but no tag; a [[pin]] needs both",
            ]
        )
    if problems:
        lines = ["# not listed, could not be resolved:"]
        for item in sorted(problems, key=lambda f: (f.file, f.line)):
            text = f" {item.text}" if item.text else ""
            lines.append(f"# {_comment(f'{_source(item)}{text}: {item.problem}')}")
        blocks.append(lines)
    return "\n\n".join("\n".join(block) for block in blocks) + ("\n" if blocks else "")


def to_rows(found: Sequence[Found]) -> list[dict[str, Any]]:
    """JSON-ready objects, one per Found."""
    rows: list[dict[str, Any]] = []
    for item in found:
        ref = item.ref
        rows.append(
            {
                "file": item.file,
                "line": item.line,
                "text": item.text,
                "image": ref.name if ref else None,
                "tag": ref.tag if ref else None,
                "digest": ref.digest if ref else None,
                "kind": None if ref is None else ("pin" if ref.digest else "watch"),
                "platform": item.platform,
                "context": item.context,
                "problem": item.problem,
            }
        )
    return rows
