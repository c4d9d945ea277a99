"""scripts/focus_spec_columns.py: the column-page parser, on pages written in both spec layouts.

The pages below are written for these tests in the shape of FOCUS_Spec column pages (they are not
copies of spec text). The script's end-to-end proof is regenerating the committed
``costguard/spec/focus_columns_v1.{0,1,2}.json`` from the FOCUS_Spec tags byte for byte; that
needs a FOCUS_Spec clone and is recorded in ``costguard/spec/ATTRIBUTION.md``.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("focus_spec_columns", ROOT / "scripts" / "focus_spec_columns.py")
fsc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fsc)

OLD_LAYOUT_PAGE = """# Widget Kind

Widget Kind says which [*widget*](#glossary:widget) a row is about.

The WidgetKind column adheres to the following requirements:

* WidgetKind MUST be present in a [*FOCUS dataset*](#glossary:FOCUS-dataset).
* WidgetKind nullability is defined as follows:
  * WidgetKind MUST be null when there is no widget.
* Provider-defined kinds adhere to the following additional requirements:
  * They SHOULD be documented.
* WidgetKind MUST be one of the allowed values.

## Column ID

WidgetKind

## Display Name

Widget Kind

## Content Constraints

| Constraint      | Value          |
| :-------------- | :------------- |
| Column type     | Dimension      |
| Feature level   | Conditional    |
| Allows nulls    | True           |
| Data type       | String         |
| Value format    | [Allowed values](#x) |
| Number range    | \\<not specified> |

Allowed values:

| Family | Kind    | Description          |
| :----- | :------ | :------------------- |
| Small  | Sprocket | A *small* widget.   |
| Large  | Gear     | A large widget.     |

## Introduced (version)

1.1
"""

NEW_LAYOUT_PAGE = """# Gadget Name

Gadget Name is the name of the gadget.

**Notes:**
* A note that mentions GadgetName but is not a requirement.

## Requirements

GadgetName adheres to the following requirements:

* GadgetName MUST be present in a Cost and Usage [*FOCUS dataset*](#glossary:FOCUS-dataset).
* GadgetName MUST NOT be null.

## Column ID

GadgetName

## Display Name

Gadget Name

## Content Constraints

| Constraint      | Value                                    |
|:----------------|:-----------------------------------------|
| Dataset         | [Cost and Usage](#datasets.costandusage) |
| Column type     | Dimension                                |
| Feature level   | Mandatory                                |
| Allows nulls    | False                                    |
| Data type       | String                                   |
| Value format    | \\<not specified>                        |

## Version Introduced

1.3 Introduced as a replacement for [WidgetKind](#widgetkind)

## Deprecated (version)

1.4
"""


def test_old_layout_page() -> None:
    col = fsc.parse_page("widgetkind.md", OLD_LAYOUT_PAGE)
    assert list(col) == ["file", "ColumnId", "DisplayName", "Column type", "Feature level", "Allows nulls",
                         "Data type", "Value format", "Number range", "AllowedValues", "Introduced", "Requirements"]
    assert col["ColumnId"] == "WidgetKind" and col["DisplayName"] == "Widget Kind"
    assert col["Value format"] == "Allowed values"
    assert col["Number range"] == "<not specified>"
    assert col["AllowedValues"] == ["Small / Sprocket", "Large / Gear"]
    assert col["Introduced"] == "1.1"
    # top-level bullets naming the column only: nested bullets and the provider-defined parent are dropped
    assert col["Requirements"] == [
        "WidgetKind MUST be present in a FOCUS dataset.",
        "WidgetKind nullability is defined as follows:",
        "WidgetKind MUST be one of the allowed values.",
    ]


def test_new_layout_page() -> None:
    col = fsc.parse_page("gadgetname.md", NEW_LAYOUT_PAGE)
    assert col["Dataset"] == "Cost and Usage"
    assert col["Value format"] == "<not specified>"
    assert "AllowedValues" not in col
    assert col["Introduced"] == "1.3 Introduced as a replacement for WidgetKind"
    assert col["Deprecated"] == "1.4"
    # the Requirements section wins over the notes above it
    assert col["Requirements"] == [
        "GadgetName MUST be present in a Cost and Usage FOCUS dataset.",
        "GadgetName MUST NOT be null.",
    ]


def test_page_without_constraints_is_rejected() -> None:
    with pytest.raises(ValueError, match="nocols.md"):
        fsc.parse_page("nocols.md", "# Nothing\n\n## Column ID\n\nNothing\n")


@pytest.mark.parametrize("layout", fsc.COLUMN_DIRS)
def test_tree_source_end_to_end(tmp_path: Path, layout: str) -> None:
    folder = tmp_path / layout
    folder.mkdir(parents=True)
    (folder / "widgetkind.md").write_text(OLD_LAYOUT_PAGE, encoding="utf-8")
    (folder / "gadgetname.md").write_text(NEW_LAYOUT_PAGE, encoding="utf-8")
    (folder / "columns.mdpp").write_text("not a column page", encoding="utf-8")
    out = tmp_path / "out.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "focus_spec_columns.py"), "--tree", str(tmp_path),
                    "--ref", "v9.9", "--commit", "abc123", "-o", str(out)], check=True)
    text = out.read_text(encoding="utf-8")
    assert not text.endswith("\n")
    doc = json.loads(text)
    assert {k: doc[k] for k in ("source", "ref", "commit")} == {
        "source": "FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec", "ref": "v9.9", "commit": "abc123"}
    assert [c["file"] for c in doc["columns"]] == ["gadgetname.md", "widgetkind.md"]


def test_newer_layout_is_preferred(tmp_path: Path) -> None:
    old, new = (tmp_path / d for d in reversed(fsc.COLUMN_DIRS))
    old.mkdir(parents=True)
    new.mkdir(parents=True)
    (old / "widgetkind.md").write_text(OLD_LAYOUT_PAGE, encoding="utf-8")
    (new / "gadgetname.md").write_text(NEW_LAYOUT_PAGE, encoding="utf-8")
    doc = fsc.extract(fsc.TreeSource(str(tmp_path), "abc123"), "v9.9")
    assert [c["ColumnId"] for c in doc["columns"]] == ["GadgetName"]


def test_clean_keeps_escaped_characters() -> None:
    assert fsc.clean(r"X.Elements[\*].Ratio MUST be *in* [\<not specified>](#a) and **b**") == (
        "X.Elements[*].Ratio MUST be in <not specified> and b")
