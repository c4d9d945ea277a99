"""Every receiver type: a docstring with a YAML example that validates, unknown keys refused,
secrets typed as secrets, a section in docs/notifications.md; template overrides work and are
validated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from costguard.notify import RECEIVERS
from notify_env import AS_OF, bodies, project

DOCS = (Path(__file__).parent.parent / "docs" / "notifications.md").read_text()


@pytest.mark.parametrize("type_name", RECEIVERS.names())
def test_receiver_docstring_example_validates_and_is_documented(type_name):
    cls = RECEIVERS.get(type_name)
    m = re.search(r"```yaml\n(.*?)```", cls.__doc__ or "", re.S)
    assert m, f"{type_name}: the docstring needs a ```yaml example"
    (name, body), = yaml.safe_load(m.group(1)).items()
    body = {(k[:-5] if k.endswith("_file") else k): ("from-a-file" if k.endswith("_file") else v) for k, v in body.items()}
    cfg = cls.model_validate(body)
    assert cfg.type == type_name
    with pytest.raises(ValidationError, match="Extra inputs"):
        cls.model_validate({**body, "no_such_key": 1})
    for field, info in cls.model_fields.items():
        if any(w in field for w in ("token", "password", "secret", "routing_key")) or field in ("url", "webhook_url") and type_name in ("webhook", "teams", "slack"):
            assert "SecretStr" in str(info.annotation), f"{type_name}.{field} must be a SecretStr"
    assert f"### {type_name}" in DOCS


def test_a_template_override_is_used_and_checked_by_validate(cli, tmp_path, httpserver, monkeypatch):
    monkeypatch.setenv("TEAMS_URL", httpserver.url_for("/wf"))
    httpserver.expect_request("/wf", method="POST").respond_with_data("", status=202)
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "teams.json.j2").write_text(
        '{"type": "message", "text": {{ ("for " ~ owner ~ ": " ~ (items | length) ~ " finding(s), first costs "'
        ' ~ (items[0].finding.monthly_cost | money(items[0].finding.currency))) | tojson }}}')
    cfg = project(tmp_path, """
        receivers: {teams: {type: teams, url: "${TEAMS_URL}", templates: {teams.json.j2: tpl/teams.json.j2}}}
        """, resources={"i-pay1": ("payments", "5.00")})
    cli("validate", "-c", cfg)
    cli("run", "--once", "-c", cfg, "--as-of", AS_OF)
    texts = sorted(b["text"] for _, b in bodies(httpserver))
    assert "for payments: 1 finding(s), first costs $150.00" in texts

    cfg.write_text(cfg.read_text().replace("teams.json.j2: tpl/teams.json.j2", "nope.j2: tpl/missing.j2"))
    r = cli("validate", "-c", cfg, expect=2)
    assert "notify.receivers.teams.templates.nope.j2: no shipped template 'nope.j2'" in r.stderr
    (tmp_path / "tpl" / "bad.j2").write_text("{% if %}")
    cfg.write_text(cfg.read_text().replace("nope.j2: tpl/missing.j2", "teams.json.j2: tpl/bad.j2"))
    r = cli("validate", "-c", cfg, expect=2)
    assert "bad.j2:1: template syntax error" in r.stderr


def test_budget_findings_show_their_overrun_in_every_template():
    from decimal import Decimal

    from costguard.notify.model import Item, Message
    from costguard.notify.render import Renderer

    f = {"fingerprint": "b" * 24, "rule": "aws-budget", "kind": "budget", "severity": "critical", "title": "AWS budget",
         "summary": "forecast 127%", "monthly_cost": Decimal("578.22"), "monthly_savings": None, "currency": "EUR",
         "owner": "finops", "owner_reason": "default owner", "provider": "AWS", "account_id": None, "region": None,
         "resource_id": None, "evidence": {"overage": {"actual": Decimal("0"), "forecast": Decimal("1624.6")}}}
    line = Renderer().render_json("slack.json.j2", Message("r", "g", {"owner": "finops"}, (Item("b" * 24, "new", f, (1,)),), "x"),
                                  max_items=10)["blocks"][2]["text"]["text"].splitlines()
    assert line[1] == "Spent so far €578.22 · forecast over budget by €1,624.60" and line[2].startswith("Owner finops")
    m = Message("r", "owner=finops", {"owner": "finops"}, (Item(f["fingerprint"], "new", f, (1,)),), "id1")
    r = Renderer()
    for name in ("slack.json.j2", "teams.json.j2", "email.txt.j2", "email.html.j2", "ticket_body.txt.j2"):
        text = r.render(name, m, max_items=10)
        assert "€1,624.60" in text and "€578.22" in text, name
