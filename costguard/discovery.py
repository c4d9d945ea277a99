"""Export file discovery: local globs (``**`` = any depth) and ``s3://`` listings, each real file
once. No polars here: ``costguard validate`` checks provider paths with it."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from costguard.errors import DataError


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            j = pattern.index("]", i + 1)
            out, i = out + fnmatch.translate(pattern[i : j + 1])[4:-3], j + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _s3_client(storage_options: dict | None) -> Any:
    try:
        import boto3
    except ImportError:
        raise DataError("reading s3:// paths needs boto3: pip install 'costguard[aws]'") from None
    so = {k.lower(): v for k, v in (storage_options or {}).items()}
    kw = {
        "aws_access_key_id": so.get("aws_access_key_id"),
        "aws_secret_access_key": so.get("aws_secret_access_key"),
        "aws_session_token": so.get("aws_session_token") or so.get("aws_token"),
        "region_name": so.get("aws_region") or so.get("region") or so.get("aws_default_region"),
        "endpoint_url": so.get("aws_endpoint_url") or so.get("endpoint_url") or so.get("aws_endpoint"),
    }
    return boto3.client("s3", **{k: v for k, v in kw.items() if v})


def _discover_s3(pattern: str, storage_options: dict | None) -> list[str]:
    bucket, _, key_pattern = pattern[len("s3://") :].partition("/")
    prefix = re.split(r"[*?\[]", key_pattern, maxsplit=1)[0]
    rx = _glob_regex(key_pattern)
    client = _s3_client(storage_options)
    found = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found += [f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", []) if rx.match(o["Key"]) and not o["Key"].endswith("/")]
    except Exception as e:  # botocore errors carry a readable message
        raise DataError(f"{pattern}: cannot list objects: {e}") from None
    return found


def _glob_local(pattern: str, folder_aliases: dict[str, list[str]] | None = None) -> list[str]:
    """Files matching a local glob (``**`` = any depth). Unlike ``glob.glob`` a folder that
    cannot be read is an error, not silently skipped; symlinked folders are followed once (a
    second path to a folder already walked is recorded in ``folder_aliases``)."""
    parts = Path(pattern).parts
    fixed = next((i for i, p in enumerate(parts) if re.search(r"[*?\[]", p)), len(parts))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    if fixed == len(parts):  # no wildcard: one file
        return [str(root)] if root.is_file() else []
    if not root.is_dir():
        return []
    rest = parts[fixed:]
    rx = _glob_regex("/".join(rest))
    max_depth = None if any("**" in p for p in rest) else len(rest) - 1  # folders below root to enter
    found: list[str] = []
    visited: dict[str, str] = {}

    def fail(e: OSError) -> None:
        raise DataError(f"{e.filename}: cannot read this folder ({e.strerror}); fix its permissions or narrow the pattern {pattern}")

    for d, dirs, files in os.walk(root, onerror=fail, followlinks=True):
        real = os.path.realpath(d)
        if real in visited:  # a symlink loop, or a second link to a folder already walked
            if folder_aliases is not None:
                folder_aliases.setdefault(visited[real] + "/", []).append(d + "/")
            dirs[:] = []
            continue
        visited[real] = d
        rel_dir = os.path.relpath(d, root)
        depth = 0 if rel_dir == "." else rel_dir.count(os.sep) + 1
        dirs[:] = [] if max_depth is not None and depth >= max_depth else sorted(x for x in dirs if not x.startswith("."))
        for f in sorted(files):
            if f.startswith("."):
                continue
            rel = f if rel_dir == "." else f"{rel_dir}/{f}".replace(os.sep, "/")
            if rx.match(rel):
                found.append(os.path.join(d, f))
    return found


@dataclass(frozen=True, slots=True)
class Discovered:
    """The export files of a provider: each real file once, with the other paths that reach it."""

    files: list[str]
    aliases: dict[str, list[str]] = field(default_factory=dict)  # file -> other matched paths to the same data


def discover_files(patterns: Sequence[str], base_dir: Path, storage_options: dict | None = None) -> Discovered:
    """Expand local (relative to ``base_dir``, ``**`` supported) and s3:// globs. A file reached
    twice (overlapping patterns, a symlinked folder such as ``exports/latest -> 2026-12``) is read
    once; its other paths are listed in ``aliases``. A pattern matching nothing, or a folder or
    file that cannot be read, raises DataError naming it."""
    by_real: dict[str, str] = {}
    aliases: dict[str, list[str]] = {}
    for pattern in patterns:
        if pattern.startswith("s3://"):
            found = _discover_s3(pattern, storage_options)
        elif "://" in pattern:
            raise DataError(f"{pattern}: only local paths and s3:// are supported for export files")
        else:
            found = _glob_local(str(Path(base_dir) / Path(pattern).expanduser()), aliases)
        if not found:
            raise DataError(f"{pattern}: no files match this pattern (looked in {base_dir})")
        for f in found:
            if "://" not in f:
                if not os.access(f, os.R_OK):
                    raise DataError(f"{f}: cannot read this file (permission denied); fix its permissions")
                real = os.path.realpath(f)
            else:
                real = f
            first = by_real.setdefault(real, f)
            if first != f and f not in aliases.setdefault(first, []):
                aliases[first].append(f)
    files = sorted(by_real.values())
    return Discovered(files, {k: sorted(v) for k, v in aliases.items() if v})


def discover(patterns: Sequence[str], base_dir: Path, storage_options: dict | None = None) -> list[str]:
    """The files of :func:`discover_files`, sorted, each real file once."""
    return discover_files(patterns, base_dir, storage_options).files
