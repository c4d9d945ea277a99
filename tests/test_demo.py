"""The first-run demo works offline and shows at least one finding of every kind, each with its $."""

from __future__ import annotations


def test_demo_first_run_and_second_run(cli, tmp_path):
    folder = tmp_path / "demo"
    r = cli("demo", "--dir", folder)
    out = r.stdout
    assert "this cycle:" in out and "new" in out
    assert "carries application" in out          # tag-coverage scope finding
    assert "monthly budget" in out               # budget finding
    assert "What to try next" in out
    # the demo ends with last week's digest, and says where it is
    page = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("Weekly digest"))
    assert page.endswith(".html") and (folder / "digests").resolve() in __import__("pathlib").Path(page).resolve().parents
    assert 'src="digest-' in open(page).read()
    assert "ChargeFrequency:allowed_values" in out  # real-world FOCUS deviations are flagged, rows kept
    found = cli.json("findings", "-c", folder / "demo.yaml")
    kinds = {f["kind"] for f in found}
    assert kinds == {"tag", "budget", "rightsizing", "idle", "anomaly", "commitment", "data"}  # every kind, each with its $
    for f in found:
        assert f["monthly_cost"] is not None and f["owner"] and f["owner_reason"]
        if f["kind"] in ("rightsizing", "idle", "commitment"):
            assert f["monthly_savings"] is not None and f["monthly_savings"] > 0, f["title"]
    for kind in ("rightsizing", "idle", "anomaly", "commitment"):
        assert any(f["kind"] == kind and f["monthly_cost"] > 0 for f in found), kind
    r = cli("rules", "test", folder / "rules")   # the demo's rules ship their test cases
    assert " 0 failed" in r.stdout
    budget = next(f for f in found if f["kind"] == "budget")
    assert {"actual", "forecast", "amount", "threshold_percent"} <= set(budget["evidence"])
    # a second run changes nothing: findings are tracked, not re-announced
    again = cli("run", "--once", "-c", folder / "demo.yaml")
    assert "No finding changed in this cycle." in again.stdout
    assert "already stored" in again.stdout
