"""Cycle benchmark: costguard's real cycle vs a hand-written DuckDB baseline, each in a child process.

    python bench/run_cycle.py --data bench/data/10m --tier 10m [--incremental] [--serve]

Each contender runs as a fresh child process; wall time is measured around it and peak RSS is the
child's own ``ru_maxrss`` from ``os.wait4``. Contenders:

* ``duckdb``: ``bench/duckdb_baseline.py`` (rollup + tag coverage + account totals + MTD actual);
* ``costguard``: ``costguard run --once -c <generated config> --as-of <last complete day> --dry-run``
  with state and lake in a temp dir, one ``type: focus`` provider over the generated parquet, and
  the repo's ``rules/`` pack. Reported as "not runnable" if the CLI cannot be started.

``--incremental``: generate (or reuse) a 61-day data set, run one cycle over the first 60 days to
fill the lake, then expose day 61 and time that cycle. ``--serve``: start ``costguard serve``, poll
``/readyz`` until it answers 200 (bounded), read VmRSS from /proc, send SIGTERM.

Prints a table and writes ``bench/results/<tier>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def costguard_cmd() -> list[str] | None:
    exe = Path(PY).with_name("costguard")
    cands = ([str(exe)] if exe.exists() else []) + [PY, "-m", "costguard"]
    for cmd in ([str(exe)] if exe.exists() else [], [PY, "-m", "costguard"]):
        if not cmd:
            continue
        try:
            r = subprocess.run([*cmd, "--help"], capture_output=True, timeout=60, cwd=REPO)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return cmd
    del cands
    return None


def measure(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None, timeout: float = 3600) -> dict:
    """Run ``cmd`` as a child; wall seconds, the child's peak RSS (MB), exit code and output tails."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
    deadline = t0 + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            p.kill()
            pid, status, ru = os.wait4(p.pid, 0)
            break
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    so, se = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return {"wall_s": round(wall, 3), "peak_rss_mb": round(ru.ru_maxrss / 1024, 1), "rc": p.returncode,
            "stdout": so, "stderr_tail": se[-2000:]}


def write_config(folder: Path, data_glob: str, inventory: Path | None, port: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    inv = f", inventory: {json.dumps(str(inventory))}" if inventory and inventory.exists() else ""
    cfg = folder / "costguard.yaml"
    cfg.write_text(
        "state:\n  url: sqlite:///state.db\n  lake: lake\n"
        f"providers:\n  - {{name: sim, type: focus, paths: [{json.dumps(data_glob)}]{inv}}}\n"
        f"rules: [{json.dumps(str(REPO / 'rules'))}]\n"
        f"server: {{host: 127.0.0.1, port: {port}}}\n"
    )
    return cfg


def last_complete_day(data: Path) -> date:
    return date.fromisoformat(json.loads((data / "expected.json").read_text())["last_complete_day"])


def run_duckdb(data: Path, as_of: date) -> dict:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return {"contender": "duckdb", "status": "duckdb not installed"}
    r = measure([PY, str(REPO / "bench" / "duckdb_baseline.py"), "--data", str(data), "--as-of", as_of.isoformat()])
    res = {"contender": "duckdb", "status": "ok" if r["rc"] == 0 else f"failed rc={r['rc']}", **{k: r[k] for k in ("wall_s", "peak_rss_mb", "rc")}}
    if r["rc"] == 0:
        res["result"] = json.loads(r["stdout"])
    else:
        res["stderr_tail"] = r["stderr_tail"]
    return res


def run_costguard(cmd: list[str] | None, data_glob: str, inventory: Path | None, as_of: date, workdir: Path) -> dict:
    if cmd is None:
        return {"contender": "costguard", "status": "costguard: not runnable yet"}
    cfg = write_config(workdir, data_glob, inventory)
    r = measure([*cmd, "run", "--once", "-c", str(cfg), "--as-of", as_of.isoformat(), "--dry-run"], cwd=workdir)
    ok = r["rc"] in (0,)
    res = {"contender": "costguard", "status": "ok" if ok else f"failed rc={r['rc']}",
           **{k: r[k] for k in ("wall_s", "peak_rss_mb", "rc")}, "stdout_tail": r["stdout"][-1500:]}
    if not ok:
        res["stderr_tail"] = r["stderr_tail"]
    return res


def serve_idle_rss(cmd: list[str], data_glob: str, inventory: Path | None, workdir: Path, timeout: float = 120) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_config(workdir, data_glob, inventory, port)
    log = open(workdir / "serve.log", "wb")
    p = subprocess.Popen([*cmd, "serve", "-c", str(cfg)], cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    t0 = time.perf_counter()
    ready = False
    try:
        while time.perf_counter() - t0 < timeout and p.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        ready = True
                        break
            except OSError:
                pass
            time.sleep(0.25)
        ready_s = time.perf_counter() - t0
        time.sleep(2 if ready else 0)
        rss = None
        if p.poll() is None:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()
    return {"ready": ready, "ready_after_s": round(ready_s, 2), "idle_rss_mb": round(rss, 1) if rss else None,
            "exit_code_after_sigterm": p.returncode,
            "log_tail": (workdir / "serve.log").read_text(errors="replace")[-800:] if not ready else ""}


def incremental(cmd: list[str] | None, rows_per_30d: int, workdir: Path, seed: int) -> dict:
    """Lake holding 60 days, then one new day: time of that cycle."""
    if cmd is None:
        return {"status": "costguard: not runnable yet"}
    data = REPO / "bench" / "data" / f"incr-{rows_per_30d}"
    if not (data / "expected.json").exists():
        g = measure([PY, str(REPO / "bench" / "generate.py"), "--rows", str(rows_per_30d * 62 // 30), "--days", "62",
                     "--seed", str(seed), "--out", str(data), "--quiet"])
        if g["rc"]:
            return {"status": "generate failed", "stderr_tail": g["stderr_tail"]}
    exp = json.loads((data / "expected.json").read_text())
    days = sorted(exp["totals"]["rows_by_day"])[:61]  # 61 complete days
    stage = workdir / "exports"
    for d in days[:60]:
        src = next((data / "focus" / "data").glob(f"*/day={d}"))
        dst = stage / src.parent.name / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src, dst)
    glob = str(stage / "**" / "*.parquet")
    first = run_costguard(cmd, glob, None, date.fromisoformat(days[59]), workdir)
    src = next((data / "focus" / "data").glob(f"*/day={days[60]}"))
    (stage / src.parent.name).mkdir(parents=True, exist_ok=True)
    os.symlink(src, stage / src.parent.name / src.name)
    second = run_costguard(cmd, glob, None, date.fromisoformat(days[60]), workdir)
    return {"data": str(data), "rows_total": exp["rows"], "new_day": days[60],
            "new_day_rows": exp["totals"]["rows_by_day"][days[60]],
            "fill_60_days": {k: first.get(k) for k in ("status", "wall_s", "peak_rss_mb")},
            "one_new_day": {k: second.get(k) for k in ("status", "wall_s", "peak_rss_mb")},
            **({"stderr_tail": second.get("stderr_tail")} if second.get("status") != "ok" else {})}


def machine() -> dict:
    import importlib.metadata as md

    def ver(p: str) -> str | None:
        try:
            return md.version(p)
        except md.PackageNotFoundError:
            return None

    mem = next((l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")), "0")
    return {"nproc": os.cpu_count(), "mem_total_gb": round(int(mem) / 2**20, 1), "python": platform.python_version(),
            "polars": ver("polars"), "duckdb": ver("duckdb"), "numpy": ver("numpy"), "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder written by bench/generate.py")
    ap.add_argument("--tier", default=None, help="name for bench/results/<tier>.json (default: data folder name)")
    ap.add_argument("--incremental", action="store_true")
    ap.add_argument("--incremental-rows", type=int, default=1_000_000, help="rows per 30 days for the 61-day set")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--skip", action="append", default=[], choices=["duckdb", "costguard"])
    a = ap.parse_args(argv)
    data = a.data.resolve()
    tier = a.tier or data.name
    as_of = last_complete_day(data)
    rows = json.loads((data / "manifest.json").read_text())["rows"]
    cmd = costguard_cmd()
    glob = str(data / "focus" / "data" / "**" / "*.parquet")
    results: dict = {"tier": tier, "rows": rows, "as_of": as_of.isoformat(), "machine": machine(), "contenders": []}
    with tempfile.TemporaryDirectory(prefix="cg-bench-") as tmp:
        tmpd = Path(tmp)
        if "duckdb" not in a.skip:
            results["contenders"].append(run_duckdb(data, as_of))
        if "costguard" not in a.skip:
            results["contenders"].append(run_costguard(cmd, glob, data / "inventory.parquet", as_of, tmpd / "cycle"))
        if a.incremental:
            results["incremental"] = incremental(cmd, a.incremental_rows, tmpd / "incr", 42)
        if a.serve:
            results["serve"] = serve_idle_rss(cmd, glob, data / "inventory.parquet", tmpd / "serve") if cmd else {"status": "costguard: not runnable yet"}

    print(f"{'contender':<12}{'rows':>12}{'wall s':>10}{'rows/s':>14}{'peak RSS MB':>14}  status")
    walls = {}
    for c in results["contenders"]:
        if "wall_s" in c:
            walls[c["contender"]] = c
            rps = rows / c["wall_s"] if c["wall_s"] else 0
            print(f"{c['contender']:<12}{rows:>12,}{c['wall_s']:>10.2f}{rps:>14,.0f}{c['peak_rss_mb']:>14.0f}  {c['status']}")
        else:
            print(f"{c['contender']:<12}{rows:>12,}{'-':>10}{'-':>14}{'-':>14}  {c['status']}")
    if {"costguard", "duckdb"} <= walls.keys() and walls["costguard"].get("status") == "ok":
        results["ratio_costguard_over_duckdb"] = {
            "wall": round(walls["costguard"]["wall_s"] / walls["duckdb"]["wall_s"], 2),
            "peak_rss": round(walls["costguard"]["peak_rss_mb"] / walls["duckdb"]["peak_rss_mb"], 2)}
        print(f"costguard/duckdb: wall x{results['ratio_costguard_over_duckdb']['wall']}, "
              f"peak RSS x{results['ratio_costguard_over_duckdb']['peak_rss']}")
    for c in results["contenders"]:
        if c.get("status") not in ("ok",) and c.get("stderr_tail"):
            print(f"--- {c['contender']} stderr ---\n{c['stderr_tail']}", file=sys.stderr)
    if "incremental" in results:
        print("incremental:", json.dumps({k: v for k, v in results["incremental"].items() if k != "stderr_tail"}))
    if "serve" in results:
        print("serve:", json.dumps(results["serve"]))
    out = REPO / "bench" / "results" / f"{tier}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for c in results["contenders"]:
        c.pop("stdout", None)
        if "result" in c:  # keep the JSON small: totals only
            c["result"] = {k: c["result"][k] for k in ("engine", "as_of", "rollup_rows", "timings", "billed_cost_by_provider", "tag_coverage", "month_to_date")}
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
