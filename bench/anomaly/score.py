#!/usr/bin/env python3
"""Score the anomaly rules of a rule pack on the labelled generator, day by day.

For every day of the generated period (after the warm-up) the scorer builds the rollup the lake
would hold at the end of that day (``generate.view``: the partial last day, restatements only
once they arrive) and evaluates the pack's ``anomaly`` rules at that as-of date through the real
rule engine (``costguard.rules.evaluate``), as the daemon's daily cycle would. Findings are
tracked by fingerprint across days: an **episode** is a fingerprint's run of consecutive days
with a finding (a finding that goes on is one episode, as the findings store keeps it open).

* an episode is a true positive when, on some day, its reported anomalous days (evidence
  ``episode.start``..``episode.end``) overlap the window of a planted anomaly of its group;
  otherwise a false positive. precision = true-positive episodes / episodes;
* a planted anomaly is detected when an episode of its group overlaps its window; recall =
  detected / planted, per shape and overall;
* delay = the first as-of day that reports it − its first anomalous day (1 = found as soon as
  the day was complete; the still-arriving day is never judged);
* root cause: the share of detected anomalies whose ``root_cause`` names the planted resource.

    python bench/anomaly/score.py [--seed N ...] [--rules rules/] [--json bench/results/anomaly.json]   # default: seeds 1-9, pooled
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import SHAPES, Spec, generate, view  # noqa: E402

from costguard.rules import RuleContext, evaluate, load_rules  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def score(spec: Spec, rules_dir: Path, rule_ids: list[str] | None = None) -> dict[str, Any]:
    rows, labels = generate(spec)
    rules = [r for r in load_rules([rules_dir], base_dir=Path("/")) if r.kind == "anomaly" and (not rule_ids or r.id in rule_ids)]
    if not rules:
        raise SystemExit(f"no anomaly rules in {rules_dir}")
    rules = [r for r in rules if tuple(r.params.group_by) == ("ProviderName", "SubAccountId", "ServiceName")] or rules
    by_group: dict[tuple[str, str], list] = defaultdict(list)
    for lab in labels:
        by_group[(lab.account, lab.service)].append(lab)
    episodes: list[dict[str, Any]] = []
    open_: dict[str, dict[str, Any]] = {}
    detected: dict[int, dict[str, Any]] = {}
    t0 = time.perf_counter()
    first = spec.start + timedelta(days=spec.warmup)
    last = spec.start + timedelta(days=spec.days - 1)
    d = first
    evals = 0
    while d <= last:
        res = evaluate(rules, RuleContext(as_of=d, costs=view(rows, d)))
        evals += 1
        if res.errors:
            raise SystemExit(f"rule failed on {d}: {res.errors}")
        seen = set()
        for f in res.findings:
            seen.add(f.fingerprint)
            ep = open_.get(f.fingerprint)
            if ep is None:
                ep = {"fingerprint": f.fingerprint, "group": (f.account_id, f.service), "first": d.isoformat(), "labels": set()}
                open_[f.fingerprint] = ep
                episodes.append(ep)
            s, e = date.fromisoformat(f.evidence["episode"]["start"]), date.fromisoformat(f.evidence["episode"]["end"])
            for lab in by_group.get((f.account_id, f.service), []):
                if s <= date.fromisoformat(lab.end) and e >= date.fromisoformat(lab.start):
                    ep["labels"].add(lab.id)
                    if lab.id not in detected:
                        rc = (f.evidence.get("root_cause") or {})
                        detected[lab.id] = {"as_of": d.isoformat(), "delay_days": (d - date.fromisoformat(lab.start)).days,
                                            "root_cause_ok": rc.get("dimension") == "ResourceId" and rc.get("value") == lab.resource}
        for fp in list(open_):
            if fp not in seen:
                del open_[fp]
        d += timedelta(days=1)
    seconds = time.perf_counter() - t0
    tp = sum(1 for ep in episodes if ep["labels"])
    per_shape = {}
    for shape in SHAPES:
        ls = [lab for lab in labels if lab.shape == shape]
        hits = [detected[lab.id] for lab in ls if lab.id in detected]
        per_shape[shape] = {
            "planted": len(ls), "detected": len(hits), "recall": round(len(hits) / len(ls), 3) if ls else None,
            "median_delay_days": statistics.median(h["delay_days"] for h in hits) if hits else None,
            "max_delay_days": max((h["delay_days"] for h in hits), default=None),
            "root_cause_right": sum(1 for h in hits if h["root_cause_ok"]),
        }
    delays = {shape: [detected[lab.id]["delay_days"] for lab in labels if lab.shape == shape and lab.id in detected] for shape in SHAPES}
    missed = [asdict(lab) for lab in labels if lab.id not in detected]
    false_pos = [{"group": list(ep["group"]), "first": ep["first"]} for ep in episodes if not ep["labels"]]
    return {
        "spec": {k: str(v) for k, v in asdict(spec).items()},
        "rules": [{"id": r.id, "params": r.params.model_dump(mode="json")} for r in rules],
        "as_of_days": evals, "seconds": round(seconds, 2),
        "planted": len(labels), "detected": len(detected), "recall": round(len(detected) / len(labels), 3),
        "episodes": len(episodes), "true_positive_episodes": tp, "false_positive_episodes": len(episodes) - tp,
        "precision": round(tp / len(episodes), 3) if episodes else None,
        "episodes_per_detected_anomaly": round(tp / len(detected), 2) if detected else None,
        "root_cause_right": sum(1 for h in detected.values() if h["root_cause_ok"]),
        "per_shape": per_shape, "missed": missed, "false_positives": false_pos, "_delays": delays,
    }


def markdown(r: dict[str, Any]) -> str:
    lines = ["| shape | planted | detected | recall | median delay (days) | max delay | root cause right |",
             "|---|---|---|---|---|---|---|"]
    for shape, s in r["per_shape"].items():
        lines.append(f"| {shape} | {s['planted']} | {s['detected']} | {s['recall']} | {s['median_delay_days']} | "
                     f"{s['max_delay_days']} | {s['root_cause_right']}/{s['detected']} |")
    lines.append(f"| **all** | {r['planted']} | {r['detected']} | **{r['recall']}** | | | {r['root_cause_right']}/{r['detected']} |")
    lines.append("")
    lines.append(f"precision **{r['precision']}** ({r['true_positive_episodes']} of {r['episodes']} finding episodes match a planted "
                 f"anomaly; {r['false_positive_episodes']} false); {r['episodes_per_detected_anomaly']} episodes per detected anomaly; "
                 f"{r['as_of_days']} daily evaluations in {r['seconds']} s.")
    if "seeds" in r:
        lines.append(f"Seeds {', '.join(str(x) for x in r['seeds'])} pooled.")
    return "\n".join(lines)


def pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several seeds as one result (sums; delays pooled over every detected anomaly)."""
    out: dict[str, Any] = {"seeds": [r["spec"]["seed"] for r in results]}
    for k in ("planted", "detected", "episodes", "true_positive_episodes", "false_positive_episodes", "root_cause_right",
              "as_of_days", "seconds"):
        out[k] = round(sum(r[k] for r in results), 2)
    out["recall"] = round(out["detected"] / out["planted"], 3)
    out["precision"] = round(out["true_positive_episodes"] / out["episodes"], 3) if out["episodes"] else None
    out["episodes_per_detected_anomaly"] = round(out["true_positive_episodes"] / out["detected"], 2) if out["detected"] else None
    out["per_shape"] = {}
    for shape in SHAPES:
        ps = [r["per_shape"][shape] for r in results]
        delays = [d for r in results for d in r.get("_delays", {}).get(shape, [])]
        det = sum(x["detected"] for x in ps)
        out["per_shape"][shape] = {
            "planted": sum(x["planted"] for x in ps), "detected": det,
            "recall": round(det / sum(x["planted"] for x in ps), 3),
            "median_delay_days": statistics.median(delays) if delays else None,
            "max_delay_days": max(delays) if delays else None,
            "root_cause_right": sum(x["root_cause_right"] for x in ps),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, action="append", help="one or more seeds (default 1..9, pooled)")
    ap.add_argument("--days", type=int, default=Spec.days)
    ap.add_argument("--per-shape", type=int, default=Spec.per_shape)
    ap.add_argument("--rules", type=Path, default=REPO / "rules")
    ap.add_argument("--rule", action="append", help="only these anomaly rule ids")
    ap.add_argument("--json", type=Path, help="write the full result here")
    a = ap.parse_args()
    seeds = a.seed or list(range(1, 10))
    results = []
    for seed in seeds:
        r = score(Spec(seed=seed, days=a.days, per_shape=a.per_shape), a.rules.resolve(), a.rule)
        results.append(r)
        if len(seeds) > 1:
            print(f"seed {seed}: precision {r['precision']} ({r['false_positive_episodes']} false of {r['episodes']} episodes), "
                  f"recall {r['recall']} ({r['detected']}/{r['planted']})", flush=True)
    out = results[0] if len(results) == 1 else {**pooled(results), "runs": results}
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(markdown(out))


if __name__ == "__main__":
    main()
