"""Config, rule and owners errors name the file, the line and the key; validate exits 2."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from costguard.config import load_config
from costguard.errors import ConfigError

from conftest import write_config


def _issues(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(path)
    return [str(i) for i in e.value.issues]


def test_unknown_key_and_wrong_type_name_file_line_and_key(tmp_path):
    cfg = write_config(tmp_path, """
        state:
          url: sqlite:///x.db
        providers:
          - name: a
            type: focus
            paths: [x]
            pathz: [y]
        server:
          port: "many"
        """)
    issues = _issues(cfg)
    assert f"{cfg}:7: providers[0].pathz: unknown key" in issues[0]
    assert issues[1].startswith(f"{cfg}:9: server.port:")


def test_unknown_provider_type_lists_the_known_ones(tmp_path):
    cfg = write_config(tmp_path, """
        providers:
          - {name: a, type: oracle}
        """)
    (issue,) = _issues(cfg)
    assert f"{cfg}:2: providers[0].type: unknown provider type 'oracle'" in issue and "focus" in issue


def test_env_interpolation_and_missing_env(tmp_path, monkeypatch):
    cfg = write_config(tmp_path, """
        state:
          url: "sqlite:///${DB_NAME}.db"
          lake: "${LAKE_DIR:-lake}"
        """)
    monkeypatch.setenv("DB_NAME", "prod")
    loaded = load_config(cfg)
    assert loaded.state_url().endswith("/prod.db")
    assert loaded.config.state.lake == "lake"
    monkeypatch.delenv("DB_NAME")
    (issue,) = _issues(cfg)
    assert f"{cfg}:2:" in issue and "${DB_NAME} is not set" in issue


def test_secret_from_mounted_file_never_shows_in_repr(tmp_path):
    (tmp_path / "secret").write_text("sqlite:///from-secret.db\n")
    cfg = write_config(tmp_path, """
        state:
          url_file: secret
        """)
    loaded = load_config(cfg)
    assert loaded.state_url().endswith("from-secret.db")
    assert "from-secret" not in repr(loaded.config)
    cfg.write_text("state:\n  url_file: nope\n")
    (issue,) = _issues(cfg)
    assert f"{cfg}:2: state.url_file: cannot read secret file nope" in issue


def test_bad_yaml_and_duplicate_provider_names(tmp_path):
    cfg = write_config(tmp_path, "providers: [\n  {name: a\n")
    (issue,) = _issues(cfg)
    assert issue.startswith(f"{cfg}:") and "invalid YAML" in issue
    cfg = write_config(tmp_path, """
        providers:
          - {name: a, type: focus, paths: [x]}
          - {name: a, type: focus, paths: [y]}
        """)
    (issue,) = _issues(cfg)
    assert "used twice" in issue


def test_validate_reports_rules_owners_and_schedule_with_lines(cli, tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "b.yaml").write_text(textwrap.dedent("""
        - id: b1
          kind: budget
          severity: warning
          amount: lots
          thresholds: [{on: actual, percent: 100, severity: critical}]
        - id: t1
          kind: no-such-kind
          severity: info
        """).lstrip())
    (tmp_path / "owners.yaml").write_text("teams:\n  a:\n    acounts: [1]\n")
    cfg = write_config(tmp_path, """
        rules: [rules/]
        owners: owners.yaml
        schedule: {cycle: "61 * * * *", timezone: Mars/Olympus}
        """)
    r = cli("validate", "-c", cfg, expect=2)
    err = r.stderr
    assert 'b.yaml:4: rule "b1": amount: Input should be a valid decimal' in err
    assert "b.yaml:7" in err and "no-such-kind" in err and "budget" in err
    assert f"{tmp_path / 'owners.yaml'}:3: teams.a.acounts: unknown key" in err
    assert "schedule." in err
    assert r.stdout == ""


def test_validate_clean_config_exits_0(cli, tmp_path):
    cfg = write_config(tmp_path, "rules: []\n")
    r = cli("validate", "-c", cfg)
    assert "OK" in r.stdout


def test_run_with_bad_rules_exits_2_and_does_nothing(cli, tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("- {id: x, kind: budget, severity: warning}\n")
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        rules: [rules/]
        """)
    r = cli("run", "--once", "-c", cfg, expect=2)
    assert "r.yaml:1" in r.stderr
    assert not (tmp_path / "state.db").exists() and not (tmp_path / "lake").exists()


def test_shipped_demo_config_and_rule_pack_validate(cli):
    root = Path(__file__).parent.parent
    r = cli("validate", "-c", root / "examples" / "demo.yaml")
    assert "OK" in r.stdout
    from importlib import resources

    from costguard.demo import template_files

    pkg = resources.files("costguard") / "demo"
    files = template_files()
    assert {"demo.yaml", "owners.yaml", "rules/tags.yaml", "rules/budgets.yaml", "rules/cases/waste.yaml"} <= set(files)
    for rel in files:
        assert (root / "examples" / rel).read_text() == pkg.joinpath(*rel.split("/")).read_text(), f"examples/{rel} drifted from costguard/demo/{rel}"
    shipped = {p.relative_to(root / "examples").as_posix() for p in (root / "examples").rglob("*.yaml")}
    assert shipped == set(files), "examples/ and costguard/demo/ hold different files"
