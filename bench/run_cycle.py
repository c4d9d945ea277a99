"""Cycle benchmark: costguard's real cycle vs hand-written DuckDB, each contender in a child process.

    python bench/run_cycle.py --data bench/data/10m --tier 10m [--incremental] [--serve]

Each contender runs as a fresh child process; wall time is measured around it and peak RSS is the
child's own ``ru_maxrss`` from ``os.wait4``. The 1-minute load average is recorded before and after
each measurement (the machine has 2 cores; a concurrent job skews the numbers). Contenders:

* ``duckdb``: ``bench/duckdb_baseline.py`` (rollup + tag coverage + account totals + MTD actual).
  THE baseline of the "within 1.5x" target;
* ``duckdb+lake``: the same plus a copy of every row (with a day column) written as parquet
  partitioned by day, lz4: the like-for-like reference for costguard's ``keep_rows: true`` lake;
* ``polars-floor``: ``bench/polars_floor.py``: plain polars scanning every row and writing one lz4
  parquet copy, then the daily rollup with costguard's rollup keys: the "copy + rollup" floor, the
  baseline of the "default cycle within 1.5x" target;
* ``costguard``: ``costguard run --once -c <generated config> --as-of <last complete day>`` (a fresh state each time)
  with state and lake in a temp dir, one ``type: focus`` provider over the generated parquet, the
  repo's ``rules/`` pack and the default config (``ingest.keep_rows: true``);
* ``costguard-rollup-only``: the same with ``ingest: {keep_rows: false}`` (daily rollups only).

After each costguard contender, ``costguard costs --by ProviderName --metric BilledCost --format json``
is compared with ``expected.json`` (exact generator totals of the days up to ``--as-of``) to the cent:
``reconciles: true/false``.

``--incremental``: generate (or reuse) a 62-day data set with ``--incremental-rows`` rows per 30 days
(default 10M, the 10m tier's daily volume), fill a lake with the first 60 complete days, then expose
day 61 and time that cycle; once per lake mode. ``--serve``: ``costguard serve`` idle VmRSS, (a) on a
lake already filled by a ``costguard run --once`` just before (no startup cycle), (b) on an empty lake,
so serve runs the full cycle at start: wait until ``/healthz`` shows it finished, then sample.

Prints a table and writes ``bench/results/<tier>.json`` (or ``--results DIR``).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import date
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
MODES = {"costguard": True, "costguard-rollup-only": False}  # contender -> ingest.keep_rows
CONTENDERS = ("duckdb", "duckdb+lake", "polars-floor", *MODES)
CENT = Decimal("0.01")


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def costguard_cmd() -> list[str] | None:
    exe = Path(PY).with_name("costguard")
    for cmd in ([str(exe)] if exe.exists() else [], [PY, "-m", "costguard"]):
        if not cmd:
            continue
        try:
            r = subprocess.run([*cmd, "--help"], capture_output=True, timeout=60, cwd=REPO)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return cmd
    return None


def measure(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None, timeout: float = 3600) -> dict:
    """Run ``cmd`` as a child; wall seconds, the child's peak RSS (MB), exit code, output, load average."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    load_before = load1()
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
            "load1_before": load_before, "load1_after": load1(), "stdout": so, "stderr": se, "stderr_tail": se[-2000:]}


def write_config(folder: Path, data_glob: str, inventory: Path | None, port: int = 0, keep_rows: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    inv = f", inventory: {json.dumps(str(inventory))}" if inventory and inventory.exists() else ""
    cfg = folder / "costguard.yaml"
    cfg.write_text(
        "state:\n  url: sqlite:///state.db\n  lake: lake\n"
        + ("" if keep_rows else "ingest: {keep_rows: false}\n")
        + f"providers:\n  - {{name: sim, type: focus, paths: [{json.dumps(data_glob)}]{inv}}}\n"
        f"rules: [{json.dumps(str(REPO / 'rules'))}]\n"
        f"server: {{host: 127.0.0.1, port: {port}}}\n"
    )
    return cfg


def last_complete_day(data: Path) -> date:
    return date.fromisoformat(json.loads((data / "expected.json").read_text())["last_complete_day"])


def expected_by_provider(exp: dict, through: date) -> dict[str, Decimal]:
    """Exact generator BilledCost per provider over the days up to ``through`` (the lake's days)."""
    out: dict[str, Decimal] = {}
    for prov, days in exp["totals"]["billed_cost_by_provider_day"].items():
        out[prov] = sum((Decimal(v) for d, v in days.items() if date.fromisoformat(d) <= through), Decimal(0))
    return out


def reconcile(cmd: list[str], cfg: Path, exp: dict, through: date) -> dict:
    """``costguard costs --by ProviderName --format json`` vs the generator's exact totals, to the cent."""
    r = subprocess.run([*cmd, "costs", "-c", str(cfg), "--by", "ProviderName", "--metric", "BilledCost",
                        "--format", "json"], capture_output=True, text=True, cwd=cfg.parent, timeout=900)
    if r.returncode:
        return {"reconciles": False, "error": f"costs rc={r.returncode}: {r.stderr[-500:]}"}
    rows = json.loads(r.stdout, parse_float=Decimal)
    got = {row["ProviderName"]: Decimal(str(row["BilledCost"])) for row in rows}
    want = expected_by_provider(exp, through)
    ok = got.keys() == want.keys() and all(got[k].quantize(CENT) == want[k].quantize(CENT) for k in want)
    return {"reconciles": ok, "costs_json": {k: str(v) for k, v in got.items()},
            "expected": {k: str(v) for k, v in want.items()}}


def _keep(r: dict) -> dict:
    return {k: r[k] for k in ("wall_s", "peak_rss_mb", "rc", "load1_before", "load1_after")}


def run_duckdb(data: Path, as_of: date, lake: Path | None = None) -> dict:
    name = "duckdb+lake" if lake else "duckdb"
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return {"contender": name, "status": "duckdb not installed"}
    extra = ["--lake", str(lake)] if lake else []
    r = measure([PY, str(REPO / "bench" / "duckdb_baseline.py"), "--data", str(data), "--as-of", as_of.isoformat(), *extra])
    res = {"contender": name, "status": "ok" if r["rc"] == 0 else f"failed rc={r['rc']}", **_keep(r)}
    if r["rc"] == 0:
        res["result"] = json.loads(r["stdout"])
    else:
        res["stderr_tail"] = r["stderr_tail"]
    return res


def run_floor(data: Path, as_of: date) -> dict:
    """The plain polars "copy + rollup" floor (bench/polars_floor.py) as a child process."""
    r = measure([PY, str(REPO / "bench" / "polars_floor.py"), "--data", str(data), "--as-of", as_of.isoformat()])
    res = {"contender": "polars-floor", "status": "ok" if r["rc"] == 0 else f"failed rc={r['rc']}", **_keep(r)}
    if r["rc"] == 0:
        res["result"] = json.loads(r["stdout"])
    else:
        res["stderr_tail"] = r["stderr_tail"]
    return res


def run_costguard(cmd: list[str] | None, data_glob: str, inventory: Path | None, as_of: date, workdir: Path, *,
                  keep_rows: bool = True, name: str | None = None, expected: dict | None = None) -> dict:
    name = name or ("costguard" if keep_rows else "costguard-rollup-only")
    if cmd is None:
        return {"contender": name, "status": "costguard: not runnable yet"}
    cfg = write_config(workdir, data_glob, inventory, keep_rows=keep_rows)
    r = measure([*cmd, "run", "--once", "-c", str(cfg), "--as-of", as_of.isoformat()], cwd=workdir)
    ok = r["rc"] == 0
    res = {"contender": name, "keep_rows": keep_rows, "status": "ok" if ok else f"failed rc={r['rc']}", **_keep(r),
           "stdout_tail": r["stdout"][-1500:]}
    pulled = [ln.strip("· ").strip() for ln in (r["stdout"] + r["stderr"]).splitlines() if "day(s) to pull" in ln]
    if pulled:
        res["pulled"] = pulled[-1]
    phases = _phase_seconds(r["stderr"])
    if phases:
        res["phase_seconds"] = phases
    if not ok:
        res["stderr_tail"] = r["stderr_tail"]
    elif expected is not None:
        res.update(reconcile(cmd, cfg, expected, as_of))
    lake = workdir / "lake"
    if lake.exists():
        res["lake_mb"] = round(sum(f.stat().st_size for f in lake.rglob("*") if f.is_file()) / 2**20, 1)
    return res


def _phase_seconds(stderr: str) -> dict | None:
    """The cycle's own per-phase wall seconds, from its ``cycle_finished`` log line (JSON)."""
    for ln in reversed(stderr.splitlines()):
        if '"cycle_finished"' in ln:
            try:
                return json.loads(ln).get("phase_seconds")
            except ValueError:
                return None
    return None


# --- serve ------------------------------------------------------------------------------------------

def _get_json(url: str) -> tuple[int, dict | None]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return 0, None


def _proc_kb(pid: int, key: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for t in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (t / "children").read_text().split()]
    except OSError:
        pass
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_idle_rss(cmd: list[str], data_glob: str, inventory: Path | None, workdir: Path, *, prefill: bool,
                   keep_rows: bool = True, timeout: float = 120, cycle_timeout: float = 1800,
                   samples: int = 5, sample_s: float = 5.0) -> dict:
    """Start ``costguard serve``; wait for /readyz (and, without prefill, for the startup cycle to
    finish per /healthz last_run); then sample VmRSS ``samples`` times over ``sample_s`` seconds."""
    port = _free_port()
    cfg = write_config(workdir, data_glob, inventory, port, keep_rows=keep_rows)
    res: dict = {"prefilled": prefill, "keep_rows": keep_rows}
    if prefill:  # a recent successful run: serve's startup catch-up cycle is not due
        pre = measure([*cmd, "run", "--once", "-c", str(cfg)], cwd=workdir)
        res["prefill_run"] = {**_keep(pre)}
        if pre["rc"]:
            return {**res, "status": "prefill run failed", "stderr_tail": pre["stderr_tail"]}
    log = open(workdir / "serve.log", "wb")
    res["load1_before"] = load1()
    p = subprocess.Popen([*cmd, "serve", "-c", str(cfg)], cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    ready = False
    try:
        while time.perf_counter() - t0 < timeout and p.poll() is None:
            if _get_json(base + "/readyz")[0] == 200:
                ready = True
                break
            time.sleep(0.25)
        res["ready"], res["ready_after_s"] = ready, round(time.perf_counter() - t0, 2)
        if ready and not prefill:  # wait for the startup cycle to be recorded as finished
            finished = None
            worker_hwm = 0.0  # serve runs each cycle in a child process: its peak, sampled (VmHWM)
            while time.perf_counter() - t0 < cycle_timeout and p.poll() is None:
                for c in _children(p.pid):
                    worker_hwm = max(worker_hwm, _proc_kb(c, "VmHWM") or 0)
                _, h = _get_json(base + "/healthz")
                lr = (h or {}).get("last_run") or {}
                if lr.get("finished_at"):
                    finished = lr
                    break
                time.sleep(0.5)
            res["startup_cycle"] = {"finished_after_s": round(time.perf_counter() - t0, 1),
                                    "worker_peak_rss_mb_sampled": round(worker_hwm, 1),
                                    **{k: finished.get(k) for k in ("status", "started_at", "finished_at")}} if finished else None
        rss = []
        if ready:
            for _ in range(samples):
                time.sleep(sample_s / samples)
                v = _proc_kb(p.pid, "VmRSS")
                if v is not None:
                    rss.append(round(v, 1))
            res["vm_hwm_mb"] = round(_proc_kb(p.pid, "VmHWM") or 0, 1)
            _, h = _get_json(base + "/healthz")
            res["healthz_last_run"] = (h or {}).get("last_run")
        res["rss_samples_mb"] = rss
        res["idle_rss_mb"] = rss[-1] if rss else None
        res["load1_after"] = load1()
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()
    res["exit_code_after_sigterm"] = p.returncode
    res["status"] = "ok" if ready and res["idle_rss_mb"] else "failed"
    if res["status"] != "ok":
        res["log_tail"] = (workdir / "serve.log").read_text(errors="replace")[-1500:]
    return res


# --- incremental ------------------------------------------------------------------------------------

def incremental(cmd: list[str] | None, rows_per_30d: int, workdir: Path, seed: int, modes: dict[str, bool]) -> dict:
    """Per lake mode: a lake holding 60 days, then one new day; the time of that cycle."""
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
    out = {"data": str(data), "rows_total": exp["rows"], "new_day": days[60],
           "new_day_rows": exp["totals"]["rows_by_day"][days[60]], "modes": {}}
    for name, keep in modes.items():
        wd = workdir / name
        stage = wd / "exports"
        for d in days[:60]:
            src = next((data / "focus" / "data").glob(f"*/day={d}"))
            dst = stage / src.parent.name / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(src, dst)
        glob = str(stage / "**" / "*.parquet")
        first = run_costguard(cmd, glob, None, date.fromisoformat(days[59]), wd, keep_rows=keep, name=name)
        src = next((data / "focus" / "data").glob(f"*/day={days[60]}"))
        (stage / src.parent.name).mkdir(parents=True, exist_ok=True)
        os.symlink(src, stage / src.parent.name / src.name)
        second = run_costguard(cmd, glob, None, date.fromisoformat(days[60]), wd, keep_rows=keep, name=name,
                               expected=exp)
        keys = ("status", "wall_s", "peak_rss_mb", "load1_before", "load1_after")
        m = {"fill_60_days": {k: first.get(k) for k in keys},
             "one_new_day": {k: second.get(k) for k in (*keys, "reconciles")}}
        m["one_new_day"]["pulled"] = second.get("pulled")
        m["one_new_day"]["phase_seconds"] = second.get("phase_seconds")
        if second.get("status") != "ok":
            m["stderr_tail"] = second.get("stderr_tail")
        out["modes"][name] = m
    return out


def machine() -> dict:
    import importlib.metadata as md

    def ver(p: str) -> str | None:
        try:
            return md.version(p)
        except md.PackageNotFoundError:
            return None

    mem = next((ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")), "0")
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_total_gb": round(int(mem) / 2**20, 1),
            "python": platform.python_version(), "polars": ver("polars"), "duckdb": ver("duckdb"),
            "numpy": ver("numpy"), "platform": platform.platform()}


def _ratio(a: dict | None, b: dict | None) -> dict | None:
    if not a or not b or a.get("status") != "ok" or b.get("status") != "ok":
        return None
    return {"wall": round(a["wall_s"] / b["wall_s"], 2), "peak_rss": round(a["peak_rss_mb"] / b["peak_rss_mb"], 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder written by bench/generate.py")
    ap.add_argument("--tier", default=None, help="name for bench/results/<tier>.json (default: data folder name)")
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "results", help="where <tier>.json goes")
    ap.add_argument("--incremental", action="store_true")
    ap.add_argument("--incremental-rows", type=int, default=10_000_000,
                    help="rows per 30 days for the 62-day set (default: the 10m tier's daily volume)")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--skip", action="append", default=[], choices=CONTENDERS)
    a = ap.parse_args(argv)
    data = a.data.resolve()
    tier = a.tier or data.name
    as_of = last_complete_day(data)
    exp = json.loads((data / "expected.json").read_text())
    rows = json.loads((data / "manifest.json").read_text())["rows"]
    cmd = costguard_cmd()
    # costguard as pip installs it: its modules' bytecode compiled once (an editable install under
    # PYTHONDONTWRITEBYTECODE=1 compiles ~100 modules from source in every child, ~0.15 s each run)
    compileall.compile_dir(str(REPO / "costguard"), quiet=1)
    glob = str(data / "focus" / "data" / "**" / "*.parquet")
    inv = data / "inventory.parquet"
    modes = {n: k for n, k in MODES.items() if n not in a.skip}
    results: dict = {"tier": tier, "rows": rows, "as_of": as_of.isoformat(), "machine": machine(), "contenders": []}
    with tempfile.TemporaryDirectory(prefix="cg-bench-", dir=os.environ.get("CG_BENCH_TMP")) as tmp:
        tmpd = Path(tmp)
        if "duckdb" not in a.skip:
            results["contenders"].append(run_duckdb(data, as_of))
        if "duckdb+lake" not in a.skip:
            results["contenders"].append(run_duckdb(data, as_of, lake=tmpd / "duckdb-lake"))
            lake = tmpd / "duckdb-lake"
            if lake.exists():
                results["contenders"][-1]["lake_mb"] = round(
                    sum(f.stat().st_size for f in lake.rglob("*") if f.is_file()) / 2**20, 1)
        if "polars-floor" not in a.skip:
            results["contenders"].append(run_floor(data, as_of))
        for name, keep in modes.items():
            results["contenders"].append(run_costguard(cmd, glob, inv, as_of, tmpd / name, keep_rows=keep, name=name,
                                                       expected=exp))
        if a.incremental:
            results["incremental"] = incremental(cmd, a.incremental_rows, tmpd / "incr", 42, modes)
        if a.serve:
            if cmd is None:
                results["serve"] = {"status": "costguard: not runnable yet"}
            else:
                results["serve"] = {
                    "prefilled": serve_idle_rss(cmd, glob, inv, tmpd / "serve-prefilled", prefill=True),
                    "after_startup_cycle": serve_idle_rss(cmd, glob, inv, tmpd / "serve-cold", prefill=False,
                                                          samples=6, sample_s=15.0),
                }

    print(f"{'contender':<23}{'rows':>12}{'wall s':>9}{'rows/s':>12}{'peak RSS MB':>13}{'reconciles':>12}"
          f"{'load1':>12}  status")
    by = {}
    for c in results["contenders"]:
        by[c["contender"]] = c
        if "wall_s" in c:
            rps = rows / c["wall_s"] if c["wall_s"] else 0
            rec = "-" if "reconciles" not in c else str(c["reconciles"]).lower()
            ld = f"{c['load1_before']:.2f}/{c['load1_after']:.2f}"
            print(f"{c['contender']:<23}{rows:>12,}{c['wall_s']:>9.2f}{rps:>12,.0f}{c['peak_rss_mb']:>13.0f}{rec:>12}"
                  f"{ld:>12}  {c['status']}")
        else:
            print(f"{c['contender']:<23}{rows:>12,}{'-':>9}{'-':>12}{'-':>13}{'-':>12}{'-':>12}  {c['status']}")
    ratios = {}
    for a_name, b_name in (("costguard", "polars-floor"), ("costguard-rollup-only", "duckdb"), ("costguard", "duckdb"),
                           ("costguard", "duckdb+lake")):
        r = _ratio(by.get(a_name), by.get(b_name))
        if r:
            ratios[f"{a_name} / {b_name}"] = r
            print(f"{a_name} / {b_name}: wall x{r['wall']}, peak RSS x{r['peak_rss']}")
    results["ratios"] = ratios
    for c in results["contenders"]:
        if c.get("phase_seconds"):
            print(f"{c['contender']} phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in c["phase_seconds"].items()))
    for c in results["contenders"]:
        if c.get("status") != "ok" and c.get("stderr_tail"):
            print(f"--- {c['contender']} stderr ---\n{c['stderr_tail']}", file=sys.stderr)
        if c.get("reconciles") is False:
            print(f"--- {c['contender']} does not reconcile: {json.dumps({k: c.get(k) for k in ('costs_json', 'expected', 'error')})}",
                  file=sys.stderr)
    if "incremental" in results:
        print("incremental:", json.dumps(results["incremental"], indent=1))
    if "serve" in results:
        print("serve:", json.dumps(results["serve"], indent=1))
    out = a.results / f"{tier}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for c in results["contenders"]:
        c.pop("stdout", None)
        if "result" in c:  # keep the JSON small: totals only
            c["result"] = {k: c["result"].get(k) for k in ("engine", "as_of", "rollup_rows", "lake_rows", "copy_rows",
                                                           "copy_mb", "timings", "billed_cost_by_provider",
                                                           "tag_coverage", "month_to_date") if k in c["result"]}
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    return 0 if all(c.get("status") == "ok" and c.get("reconciles", True) for c in results["contenders"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
