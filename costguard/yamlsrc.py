"""Load YAML while remembering where every value came from, so errors can name file:line.

``load(path)`` returns a :class:`Sourced` document: the plain Python value plus a map from key
paths (tuples of str/int) to 1-based line numbers. ``issues_from_validation`` turns a pydantic
``ValidationError`` into :class:`ConfigIssue` objects that point at the offending line.

``${VAR}`` and ``${VAR:-default}`` are replaced from the environment *after* parsing, inside string
values only: a substituted value is never read as YAML, so ``#``, ``*``, ``: ``, quotes and newlines
arrive as they are. A value that is exactly ``${VAR}`` stays a string (pydantic converts it where
the model wants a number or a boolean). ``$${`` is a literal ``${``. Keys are never interpolated.
``Sourced.origin(path)`` tells whether a value came from the environment, a secret file or the file
itself, and error messages never show a value that came from the environment or a secret file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from costguard.errors import ConfigError, ConfigIssue

Path_ = tuple[str | int, ...]
Origin = Literal["env", "file", "literal"]

# ``$${`` (escape), ``${NAME}``, ``${NAME:-default}``; a bare ``${`` that is neither is an error.
_REF = re.compile(r"\$\$\{|\$\{(?:([A-Za-z_][A-Za-z0-9_]*)(?::-((?:[^}$]|\$(?!\{))*))?\})?")
_BAD_REF = "not a valid reference: write ${NAME} or ${NAME:-default} (NAME: letters, digits, _), or $${ for a literal ${"
_KEY_REF = "${...} in a key is not supported (only values are interpolated)"


@dataclass
class Sourced:
    """A YAML document with the line of every key path and the origin of substituted values."""

    file: str
    data: Any = field(repr=False)
    lines: dict[Path_, int] = field(default_factory=dict)
    origins: dict[Path_, Origin] = field(default_factory=dict)  # only values from "env" or "file"
    hidden: dict[Path_, tuple[str, ...]] = field(default_factory=dict, repr=False)  # those values, kept out of messages

    def line(self, path: Path_) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), None)

    def origin(self, path: Path_) -> Origin:
        """``"env"`` if a set environment variable went into the value at ``path``, ``"file"`` if it
        was read from a ``<key>_file``, else ``"literal"`` (written in the file, or a ``:-`` default)."""
        return self.origins.get(tuple(path), "literal")

    def redact(self, issue: ConfigIssue, under: Path_ = ()) -> ConfigIssue:
        """``issue`` with every environment or secret-file value at or below ``under`` shown as ``***``."""
        n = len(under)
        values = {v for p, vs in self.hidden.items() if p[:n] == tuple(under) for v in vs if v}
        key, message = issue.key, issue.message
        for v in sorted(values, key=len, reverse=True):
            key, message = key.replace(v, "***"), message.replace(v, "***")
        return replace(issue, key=key, message=message)

    def sub(self, prefix: Path_) -> "Sourced":
        """The part of the document under ``prefix`` (paths re-rooted)."""
        node: Any = self.data
        for k in prefix:
            node = node[k]
        return Sourced(self.file, node, _under(self.lines, prefix), _under(self.origins, prefix), _under(self.hidden, prefix))


def _under(d: dict[Path_, Any], prefix: Path_) -> dict[Path_, Any]:
    n = len(prefix)
    return {p[n:]: v for p, v in d.items() if p[:n] == tuple(prefix)}


@dataclass
class _Walk:
    file: str
    interpolate: bool
    out: Sourced
    issues: list[ConfigIssue] = field(default_factory=list)

    def node(self, node: yaml.Node, path: Path_) -> Any:
        self.out.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for knode, vnode in node.value:
                line = knode.start_mark.line + 1
                if knode.tag == "tag:yaml.org,2002:merge":
                    raise ConfigError.single(self.file, line, _dotted(path), "YAML merge keys (<<) are not supported")
                if isinstance(knode, yaml.ScalarNode):
                    key = _LOADER.construct_scalar(knode)
                else:
                    key = str(_Walk(self.file, False, Sourced(self.file, None)).node(knode, path))
                if self.interpolate and "${" in key:
                    self.issues.append(ConfigIssue(self.file, line, _dotted(path + (key,)), _KEY_REF))
                if key in out:
                    raise ConfigError.single(self.file, line, _dotted(path + (key,)), "duplicate key")
                self.out.lines[path + (key,)] = line
                out[key] = self.node(vnode, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.node(v, path + (i,)) for i, v in enumerate(node.value)]
        value = _LOADER.construct_object(node, deep=True)
        if self.interpolate and isinstance(value, str) and "$" in value:
            value = self.substitute(value, node, path)
        return value

    def substitute(self, text: str, node: yaml.Node, path: Path_) -> str:
        used: list[str] = []

        def one(m: re.Match[str]) -> str:
            if m.group(0) == "$${":
                return "${"
            name, default = m.group(1), m.group(2)
            line = node.start_mark.line + 1
            if node.style == "|":  # a literal block keeps its line breaks: point at the reference's own line
                line += 1 + text.count("\n", 0, m.start())
            if name is None:
                self.issues.append(ConfigIssue(self.file, line, _dotted(path), _BAD_REF))
                return ""
            value = os.environ.get(name)
            if value is not None:
                used.append(value)
                return value
            if default is None:
                message = f"environment variable ${{{name}}} is not set (and has no :-default)"
                self.issues.append(ConfigIssue(self.file, line, _dotted(path), message))
                return ""
            return default

        result = _REF.sub(one, text)
        if used:
            self.out.origins[path] = "env"
            self.out.hidden[path] = tuple(used)
        return result


_LOADER = yaml.SafeLoader("")


def loads(text: str, file: str = "<string>", *, interpolate_env: bool = True) -> Sourced:
    """Parse YAML text; then ``${VAR}`` / ``${VAR:-default}`` in string values come from the environment."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        hint = ""
        if interpolate_env and mark and "${" in (text.splitlines()[mark.line:mark.line + 1] or [""])[0]:
            hint = ' (inside { } or [ ], put a ${...} reference in quotes: "${VAR}")'
        raise ConfigError.single(file, line, "", f"invalid YAML: {e.problem or e}{hint}") from None
    if node is None:
        return Sourced(file, None, {(): 1})
    walk = _Walk(file, interpolate_env, Sourced(file, None))
    walk.out.data = walk.node(node, ())
    if walk.issues:
        raise ConfigError(walk.issues)
    return walk.out


def load(path: str | os.PathLike[str], *, interpolate_env: bool = True) -> Sourced:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError.single(str(path), None, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError.single(str(path), None, "", f"cannot read: {e}") from None
    return loads(text, str(path), interpolate_env=interpolate_env)


def _dotted(path: Path_) -> str:
    s = ""
    for p in path:
        s += f"[{p}]" if isinstance(p, int) else (f".{p}" if s else str(p))
    return s


def dotted(path: Path_) -> str:
    """``("providers", 0, "type")`` → ``providers[0].type``."""
    return _dotted(path)


def issues_from_validation(err: ValidationError, src: Sourced, prefix: Path_ = (), label: str = "") -> list[ConfigIssue]:
    """Map pydantic errors to file:line issues. ``prefix`` is where the model sits in ``src``."""
    out = []
    for e in err.errors():
        loc = _data_path(src, tuple(prefix), tuple(e["loc"]))
        full = tuple(prefix) + loc
        key = (f"{label}.{_dotted(loc)}" if loc else label) if label else _dotted(full)
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; allowed keys are in the docs)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        out.append(src.redact(ConfigIssue(src.file, src.line(full), key, msg), full))
    return out


def _data_path(src: Sourced, prefix: Path_, loc: Path_) -> Path_:
    """Drop pydantic's extra loc parts (union tags like ``focus``, ``function-after[...]``)."""
    node: Any = src.data
    for k in prefix:
        try:
            node = node[k]
        except (KeyError, IndexError, TypeError):
            node = None
            break
    out: list[str | int] = []
    for i, x in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and x in node:
            node = node[x]
            out.append(x)
        elif isinstance(node, list) and isinstance(x, int) and 0 <= x < len(node):
            node = node[x]
            out.append(x)
        elif last or not isinstance(x, str) or not isinstance(node, (dict, list)):
            out.append(x)
            node = None
        # else: a union tag or validator name inside the loc: skip it
    return tuple(out)
