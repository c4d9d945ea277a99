"""Rule paths that hold no rules are an error; ``rules: []`` is the way to run without rules.

Real rule files in tmp_path and the real loader and CLI.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from costguard.errors import ConfigError
from costguard.rules import load_rules

from conftest import write_config

RULE = """\
- id: b1
  kind: budget
  severity: warning
  amount: 100
  thresholds: [{on: actual, percent: 100, severity: critical}]
"""


def _error(paths, base_dir) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        load_rules(paths, base_dir=base_dir)
    return e.value


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"none.yaml": "[]\n"},
        {"empty.yaml": "", "comments.yml": "# nothing yet\n"},
        {"notes.txt": RULE, "rule.json": "[]"},  # only *.yaml / *.yml are rule files
    ],
)
def test_folder_without_rules_is_an_error_naming_it(tmp_path, files):
    (tmp_path / "rules").mkdir()
    for name, text in files.items():
        (tmp_path / "rules" / name).write_text(text)
    for given in ("rules", "rules/"):
        (issue,) = _error([given], tmp_path).issues
        assert (issue.file, issue.line) == ("rules/", None)
        assert issue.message.startswith("this rules folder holds no rules") and "`rules: []`" in issue.message


def test_several_paths_without_rules_are_one_error_naming_them_all(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "extra.yaml").write_text("[]\n")
    (issue,) = _error(["rules", "extra.yaml"], tmp_path).issues
    assert issue.file == "rules/, extra.yaml" and "these rule files and folders hold no rules" in issue.message


def test_empty_list_file_is_fine_next_to_real_rules(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a-none.yaml").write_text("[]\n")
    (tmp_path / "rules" / "b.yaml").write_text(RULE)
    (rule,) = load_rules(["rules"], base_dir=tmp_path)
    assert rule.id == "b1"
    (tmp_path / "extra.yaml").write_text("[]\n")
    assert [r.id for r in load_rules(["extra.yaml", "rules/"], base_dir=tmp_path)] == ["b1"]


def test_no_paths_means_no_rules(tmp_path):
    assert load_rules([], base_dir=tmp_path) == []


def test_other_problems_are_reported_instead(tmp_path):
    (issue,) = _error(["missing/"], tmp_path).issues
    assert issue.file == "missing" and "not found" in issue.message
    (tmp_path / "bad.yaml").write_text("- id: x\n  kind: budget\n  severity: info\n")
    issues = _error(["bad.yaml"], tmp_path).issues
    assert issues and all("holds no rules" not in i.message for i in issues)


def test_rule_values_are_interpolated_with_lines_and_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("BUDGET", "250.5")
    (tmp_path / "r.yaml").write_text(RULE.replace("amount: 100", "amount: ${BUDGET}"))
    (rule,) = load_rules(["r.yaml"], base_dir=tmp_path)
    assert rule.params.amount == Decimal("250.5")
    monkeypatch.delenv("BUDGET")
    (issue,) = _error(["r.yaml"], tmp_path).issues
    assert str(issue) == 'r.yaml:4: [0].amount: environment variable ${BUDGET} is not set (and has no :-default)'
    monkeypatch.setenv("KIND", "kind-SECRET-1")
    monkeypatch.setenv("RID", "id-SECRET-2")
    (tmp_path / "r.yaml").write_text("- id: ${RID}\n  kind: ${KIND}\n  severity: info\n")
    err = _error(["r.yaml"], tmp_path)
    (issue,) = err.issues
    assert issue.line == 2 and issue.key == 'rule "***": kind' and "SECRET" not in str(err)


def test_validate_refuses_an_empty_rules_folder_and_accepts_rules_none(cli, tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "none.yaml").write_text("[]\n")
    cfg = write_config(tmp_path, "rules: [rules/]\n")
    r = cli("validate", "-c", cfg, expect=2)
    assert "rules/: this rules folder holds no rules" in r.stderr and "rules: []" in r.stderr
    cfg = write_config(tmp_path, "rules: []\n")
    r = cli("validate", "-c", cfg)
    assert "OK" in r.stdout and "0 rule(s)" in r.stdout
