"""Start-up: the config models, ``--help`` and ``validate`` load no heavy library.

polars, the SQL store, the HTTP client, templates, charts and cloud SDKs are imported by the
functions that use them, so a command that only reads the config starts in a fraction of a second
(timings are in docs/benchmarks.md; here we check what is imported, which does not depend on the
machine). Each check runs in a fresh interpreter: this test process has imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("polars", "numpy", "sqlalchemy", "alembic", "httpx", "jinja2", "matplotlib", "boto3", "botocore",
         "structlog", "prometheus_client")

_PROBE = textwrap.dedent("""
    import atexit, json, sys
    HEAVY = {heavy!r}
    atexit.register(lambda: sys.stderr.write("\\nLOADED " + json.dumps(sorted(m for m in HEAVY if m in sys.modules)) + "\\n"))
    {body}
""")


def _loaded(body: str, cwd: Path) -> tuple[list[str], subprocess.CompletedProcess]:
    code = _PROBE.format(heavy=HEAVY, body=textwrap.dedent(body))
    env = {**os.environ, "HOOK_URL": "https://example.invalid/hook", "SLACK_URL": "https://example.invalid/slack"}
    r = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    line = next((ln for ln in r.stderr.splitlines() if ln.startswith("LOADED ")), None)
    assert line is not None, r.stderr
    return json.loads(line[len("LOADED "):]), r


def _config(tmp_path: Path) -> Path:
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "a.csv").write_text("BilledCost\n1\n")
    (tmp_path / "owners.yaml").write_text("teams:\n  payments: {accounts: ['111111111111'], receivers: [hook]}\n")
    cfg = tmp_path / "costguard.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        state: {{url: "sqlite:///state.db", lake: lake}}
        providers:
          - {{name: exports, type: focus, paths: ["exports/*.csv"]}}
          - name: aws-org
            type: aws
            regions: [us-east-1]
            costs: {{source: focus_export, uri: "s3://billing/focus/"}}
        rules: [{json.dumps(str(REPO / "rules"))}]
        owners: owners.yaml
        notify:
          receivers:
            hook: {{type: webhook, url: "${{HOOK_URL}}"}}
            chat: {{type: slack, webhook_url: "${{SLACK_URL}}"}}
            mail: {{type: email, host: smtp.example.invalid, from: "costguard@example.invalid", to: ["a@example.invalid"]}}
          routes: [{{receiver: hook}}]
        schedule: {{cycle: "0 6 * * *", digest: "0 8 * * MON", timezone: UTC}}
    """))
    return cfg


def test_config_models_import_no_heavy_library(tmp_path):
    loaded, r = _loaded("""
        import costguard.config, costguard.cli, costguard.rules, costguard.providers, costguard.notify
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert loaded == []


def test_help_and_validate_import_no_heavy_library(tmp_path):
    cfg = _config(tmp_path)
    for args in (["--help"], ["validate", "-c", str(cfg)]):
        loaded, r = _loaded(f"""
            sys.argv = ["costguard", *{args!r}]
            from costguard.cli import main
            try:
                main()
            except SystemExit as e:
                assert not e.code, e.code
        """, tmp_path)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        assert loaded == [], (args, loaded)
    assert "OK (2 provider(s), 9 rule(s))" in r.stdout, r.stdout + r.stderr


def test_a_bad_config_is_still_reported_without_heavy_libraries(tmp_path):
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text().replace('cycle: "0 6 * * *"', 'cycle: "0 6 * *"'))
    loaded, r = _loaded(f"""
        sys.argv = ["costguard", "validate", "-c", {str(cfg)!r}]
        from costguard.cli import main
        try:
            main()
        except SystemExit as e:
            sys.stdout.write(f"EXIT {{e.code}}\\n")
    """, tmp_path)
    assert "EXIT 2" in r.stdout and "schedule.cycle" in r.stderr, r.stdout + r.stderr
    assert loaded == []


def test_a_cycle_without_http_receivers_does_not_load_the_http_client(tmp_path, httpserver):
    """The shared HTTP client is built on first use: a console-only cycle over local exports never
    imports httpx; a cycle whose finding goes to a webhook builds it and delivers through it."""
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "a.csv").write_text(
        (REPO / "tests" / "fixtures" / "focus" / "focus_sample.csv").read_text(encoding="utf-8-sig"))
    (tmp_path / "rules.yaml").write_text(
        "- {id: tiny, kind: budget, severity: warning, amount: 1, currency: USD, period: month, metric: BilledCost,"
        " thresholds: [{on: actual, percent: 100, severity: warning}]}\n")
    cfg = tmp_path / "costguard.yaml"
    cfg.write_text(textwrap.dedent("""\
        state: {url: "sqlite:///state.db", lake: lake}
        providers: [{name: exports, type: focus, paths: ["exports/*.csv"]}]
        rules: [rules.yaml]
    """))
    body = f"""
        sys.argv = ["costguard", "run", "--once", "-c", {str(cfg)!r}, "--as-of", "2024-09-30"]
        from costguard.cli import main
        try:
            main()
        except SystemExit as e:
            assert e.code in (0, 3), e.code
    """
    loaded, r = _loaded(body, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Monthly budget tiny" in r.stdout, r.stdout
    assert "httpx" not in loaded and "polars" in loaded, loaded

    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    (tmp_path / "hook.url").write_text(httpserver.url_for("/hook"))
    cfg.write_text(cfg.read_text() + textwrap.dedent("""\
        notify:
          receivers: {hook: {type: webhook, url_file: hook.url}}
          routes: [{receiver: hook}]
    """))
    (tmp_path / "state.db").unlink()
    loaded, r = _loaded(body, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "httpx" in loaded, loaded
    assert len(httpserver.log) == 1 and b"tiny" in httpserver.log[0][0].get_data(), httpserver.log
