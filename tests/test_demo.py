"""The first-run demo works offline and shows at least one tag-coverage and one budget finding."""

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
    assert {"tag", "budget"} <= kinds
    for f in found:
        assert f["monthly_cost"] is not None and f["owner"] and f["owner_reason"]
    budget = next(f for f in found if f["kind"] == "budget")
    assert {"actual", "forecast", "amount", "threshold_percent"} <= set(budget["evidence"])
    # a second run changes nothing: findings are tracked, not re-announced
    again = cli("run", "--once", "-c", folder / "demo.yaml")
    assert "No finding changed in this cycle." in again.stdout
    assert "already stored" in again.stdout
