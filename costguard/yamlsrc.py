"""Load YAML while remembering where every value came from, so errors can name file:line.

``load(path)`` returns a :class:`Sourced` document: the plain Python value plus a map from key
paths (tuples of str/int) to 1-based line numbers. ``issues_from_validation`` turns a pydantic
``ValidationError`` into :class:`ConfigIssue` objects that point at the offending line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from costguard.errors import ConfigError, ConfigIssue

Path_ = tuple[str | int, ...]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Sourced:
    """A YAML document with the line of every key path."""

    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line(self, path: Path_) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), None)

    def sub(self, prefix: Path_) -> "Sourced":
        """The part of the document under ``prefix`` (paths re-rooted)."""
        n = len(prefix)
        node: Any = self.data
        for k in prefix:
            node = node[k]
        lines = {p[n:]: ln for p, ln in self.lines.items() if p[:n] == tuple(prefix)}
        return Sourced(self.file, node, lines)


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int], file: str) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            if knode.tag == "tag:yaml.org,2002:merge":
                raise ConfigError.single(file, knode.start_mark.line + 1, _dotted(path), "YAML merge keys (<<) are not supported")
            key = yaml.SafeLoader.construct_scalar(_LOADER, knode) if isinstance(knode, yaml.ScalarNode) else None
            if key is None or not isinstance(key, str):
                key = str(_walk(knode, path, {}, file))
            if key in out:
                raise ConfigError.single(file, knode.start_mark.line + 1, _dotted(path + (key,)), "duplicate key")
            lines[path + (key,)] = knode.start_mark.line + 1
            out[key] = _walk(vnode, path + (key,), lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, path + (i,), lines, file) for i, v in enumerate(node.value)]
    return _LOADER.construct_object(node, deep=True)


_LOADER = yaml.SafeLoader("")


def loads(text: str, file: str = "<string>", *, interpolate_env: bool = True) -> Sourced:
    """Parse YAML text; ``${VAR}`` / ``${VAR:-default}`` are replaced from the environment."""
    if interpolate_env:
        text = _interpolate(text, file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError.single(file, line, "", f"invalid YAML: {e.problem or e}") from None
    if node is None:
        return Sourced(file, None, {(): 1})
    lines: dict[Path_, int] = {}
    data = _walk(node, (), lines, file)
    return Sourced(file, data, lines)


def load(path: str | os.PathLike[str], *, interpolate_env: bool = True) -> Sourced:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError.single(str(path), None, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError.single(str(path), None, "", f"cannot read: {e}") from None
    return loads(text, str(path), interpolate_env=interpolate_env)


def _interpolate(text: str, file: str) -> str:
    issues: list[ConfigIssue] = []
    out_lines = []
    for lineno, line in enumerate(text.splitlines(keepends=True), start=1):
        stripped = line.lstrip()
        if stripped.startswith("#"):
            out_lines.append(line)
            continue

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            val = os.environ.get(name)
            if val is None:
                if default is not None:
                    return default
                issues.append(ConfigIssue(file, lineno, "", f"environment variable ${{{name}}} is not set"))
                return ""
            return val

        out_lines.append(_ENV.sub(sub, line))
    if issues:
        raise ConfigError(issues)
    return "".join(out_lines)


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
        out.append(ConfigIssue(src.file, src.line(full), key, msg))
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
