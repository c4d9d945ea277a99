#!/usr/bin/env python3
"""Extract the FOCUS column definitions of one FOCUS_Spec ref into costguard's spec JSON.

Reads every column page of a FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec ref and writes
``{"source", "ref", "commit", "columns": [...]}``, the format of
``costguard/spec/focus_columns_v*.json``. Stdlib only.

Two ways to read the pages:

    # from a bare or normal git directory (uses `git --git-dir=DIR show REF:path`)
    python scripts/focus_spec_columns.py --git-dir /path/FOCUS_Spec.git --ref v1.2 \
        -o costguard/spec/focus_columns_v1.2.json

    # from a checked-out folder (the commit is read with `git -C DIR rev-parse HEAD`
    # unless --commit is given)
    python scripts/focus_spec_columns.py --tree /path/FOCUS_Spec --ref v1.2 -o out.json

Column pages are looked up in the newer layout first
(``specification/datasets/cost_and_usage/columns/*.md``) and then in the layout of 1.2 and
before (``specification/columns/*.md``).

Per page, in this order:

* ``file``, ``ColumnId`` (the "Column ID" section), ``DisplayName`` (the "Display Name" section);
* every row of the "Content constraints" table, key and value as written (so "Number range",
  "Number Range" or a newer "Dataset" row are kept under their own spelling);
* ``AllowedValues`` when the section has an "Allowed values:" line: the value columns of the table
  after it (every column whose header does not mention "Description"), joined with " / " when
  there are several (ServiceSubcategory: "Compute / Containers");
* ``Introduced`` (the first line of "Introduced (version)", or of "Version Introduced" as some
  newer pages title it), ``Deprecated`` (likewise from "Deprecated (version)" or "Version
  Deprecated", only when the page has such a section);
* ``Requirements``: the top-level bullets that name the column (contain its ColumnId), taken from
  the "Requirements" section when the page has one, otherwise from the text before "Column ID".
  This is the rule the committed 1.0-1.2 files follow, and it is lossy on purpose-built pages:
  nested bullets are not kept (a parent such as "ChargeClass nullability is defined as follows:"
  is, its sub-bullets are not), nor are top-level bullets that do not name the column
  ("Provider-defined tags adhere to the following additional requirements:", notes, examples).

Markdown is reduced to text: links become their text, emphasis markers and backslash escapes are
dropped. The output is ``json.dumps(..., indent=1, ensure_ascii=False)`` without a final newline,
the layout of the committed spec files.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

SOURCE = "FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec"
COLUMN_DIRS = ("specification/datasets/cost_and_usage/columns", "specification/columns")

_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"\*+")
_ESCAPE = re.compile(r"\\([<>*_\[\]()#|\\`])")
_HEADING = re.compile(r"^##\s+(.*?)\s*$")
_TOP_BULLET = re.compile(r"^[*-]\s+(.*)$")
_ALLOWED = re.compile(r"^\s*allowed values:?\s*$", re.IGNORECASE)


def clean(text: str) -> str:
    """Markdown inline text to plain text: link text, no emphasis markers, escaped characters kept
    (``Elements[\\*]`` stays ``Elements[*]``)."""
    text = _ESCAPE.sub(lambda m: f"\0{ord(m.group(1))}\0", text)
    text = _LINK.sub(r"\1", text)
    text = _EMPHASIS.sub("", text)
    text = re.sub(r"\0(\d+)\0", lambda m: chr(int(m.group(1))), text)
    return " ".join(text.split())


def sections(page: str) -> tuple[list[str], dict[str, list[str]]]:
    """The lines before the first ``##`` heading, and each ``##`` section's lines by lower-case title."""
    head: list[str] = []
    out: dict[str, list[str]] = {}
    current = head
    for line in page.splitlines():
        m = _HEADING.match(line)
        if m:
            current = out.setdefault(m.group(1).lower(), [])
            continue
        current.append(line)
    return head, out


def first_line(lines: list[str]) -> str:
    return next((clean(x) for x in lines if x.strip()), "")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def tables(lines: list[str]) -> list[list[list[str]]]:
    """Markdown tables in ``lines``: each a list of rows (header first), separator rows dropped."""
    out: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in lines:
        if line.strip().startswith("|"):
            row = _cells(line)
            if all(re.fullmatch(r":?-+:?", c) for c in row if c):
                continue
            if current is None:
                current = []
                out.append(current)
            current.append(row)
        else:
            current = None
    return out


def allowed_values(table: list[list[str]]) -> list[str]:
    header, rows = table[0], table[1:]
    keep = [i for i, h in enumerate(header) if "description" not in h.lower()]
    return [" / ".join(clean(row[i]) for i in keep if i < len(row)) for row in rows]


def requirements(lines: list[str], column_id: str) -> list[str]:
    bullets = [clean(m.group(1)) for m in map(_TOP_BULLET.match, lines) if m]
    return [b for b in bullets if column_id in b]


def allowed_values_table(lines: list[str]) -> list[list[str]] | None:
    for i, line in enumerate(lines):
        if _ALLOWED.match(line):
            found = tables(lines[i + 1:])
            return found[0] if found else None
    return None


def parse_page(name: str, page: str) -> dict:
    head, secs = sections(page)
    col: dict = {"file": name, "ColumnId": first_line(secs.get("column id", [])), "DisplayName": first_line(secs.get("display name", []))}
    constraints = secs.get("content constraints", [])
    constraint_tables = tables(constraints)
    if not col["ColumnId"] or not constraint_tables:
        raise ValueError(f"{name}: no Column ID or no Content Constraints table")
    for row in constraint_tables[0][1:]:
        col[clean(row[0])] = clean(row[1]) if len(row) > 1 else ""
    allowed = allowed_values_table(constraints)
    if allowed:
        col["AllowedValues"] = allowed_values(allowed)
    col["Introduced"] = first_line(secs.get("introduced (version)", secs.get("version introduced", [])))
    deprecated = secs.get("deprecated (version)", secs.get("version deprecated"))
    if deprecated is not None:
        col["Deprecated"] = first_line(deprecated)
    if "requirements" in secs:
        col["Requirements"] = requirements(secs["requirements"], col["ColumnId"])
    else:
        before_id: list[str] = list(head)
        for title, lines in secs.items():
            if title == "column id":
                break
            before_id.extend(lines)
        col["Requirements"] = requirements(before_id, col["ColumnId"])
    return col


class GitSource:
    def __init__(self, git_dir: str, ref: str) -> None:
        self.git_dir, self.ref = git_dir, ref

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", *args], check=True, capture_output=True, text=True).stdout

    def commit(self) -> str:
        return self._git("rev-parse", f"{self.ref}^{{commit}}").strip()

    def list_md(self, folder: str) -> list[str]:
        try:
            names = self._git("ls-tree", "--name-only", f"{self.ref}:{folder}").split("\n")
        except subprocess.CalledProcessError:
            return []
        return sorted(n for n in names if n.endswith(".md"))

    def read(self, folder: str, name: str) -> str:
        return self._git("show", f"{self.ref}:{folder}/{name}")


class TreeSource:
    def __init__(self, root: str, commit: str | None) -> None:
        self.root, self._commit = Path(root), commit

    def commit(self) -> str:
        if self._commit:
            return self._commit
        return subprocess.run(["git", "-C", str(self.root), "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()

    def list_md(self, folder: str) -> list[str]:
        d = self.root / folder
        return sorted(p.name for p in d.glob("*.md")) if d.is_dir() else []

    def read(self, folder: str, name: str) -> str:
        return (self.root / folder / name).read_text(encoding="utf-8")


def extract(src: GitSource | TreeSource, ref: str) -> dict:
    for folder in COLUMN_DIRS:
        names = src.list_md(folder)
        if names:
            break
    else:
        raise SystemExit(f"no column pages under {' or '.join(COLUMN_DIRS)} at {ref}")
    columns = [parse_page(n, src.read(folder, n)) for n in names]
    return {"source": SOURCE, "ref": ref, "commit": src.commit(), "columns": columns}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--git-dir", help="a FOCUS_Spec git directory (bare is fine)")
    where.add_argument("--tree", help="a checked-out FOCUS_Spec folder")
    p.add_argument("--ref", required=True, help="tag, branch or commit (with --tree: the label to record)")
    p.add_argument("--commit", help="with --tree: the commit to record instead of `git rev-parse HEAD`")
    p.add_argument("-o", "--output", help="write here instead of stdout")
    a = p.parse_args(argv)
    src = GitSource(a.git_dir, a.ref) if a.git_dir else TreeSource(a.tree, a.commit)
    text = json.dumps(extract(src, a.ref), indent=1, ensure_ascii=False)
    if a.output:
        Path(a.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
