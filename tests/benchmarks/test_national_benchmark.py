"""Benchmark: a national year on one machine (issue P1). Run with `make bench`.

The landing folders come from `bench/national.py` (seeded; generated once into
~/.cache/joinedup, or JOINEDUP_BENCH_CACHE, and reused): England's 152 HWBs, 42 ICBs and 130
providers, 20.5 million spells admitted in 12 months at scale 1 (about 22 million apc rows in
~1,600 files), every council's reablement and carehome returns, plans, populations and orgs,
with the sample's kinds of mess.

Each figure is measured in a fresh process (bench/measure.py: wall time, and the peak RSS of
the whole process tree sampled from /proc), at each scale of JOINEDUP_BENCH_SCALES (default
"0.05,1": 1/20 and full), in this order on the same folder:

1. the 12-month backfill from an empty database (`joinedup backfill`: load, build, every page);
2. plain DuckDB `read_csv` (all columns as text) / `read_parquet` of the files that loaded,
   into a new database, against the backfill's load step (run_log durations);
3. every page of the last month rendered into an empty reports folder (render_reports);
4. the scheduled run with nothing new (`joinedup run --month <last>` on the backfilled folder).

Then, unless JOINEDUP_BENCH_HISTORY=0, five years of national history: 61 months generated at
JOINEDUP_BENCH_HISTORY_SCALE (default 0.01: the national geography and file counts, a hundredth
of the rows, so the history loads in minutes, not hours). A 5-year database (60 months) and a
1-year database (the last 12 of them) are backfilled; then the 61st month's files arrive and
the scheduled run is timed on each; and the scheduled run with nothing new on 5 years.

Nothing here asserts seconds: it prints each figure with its goal and ratio, and asserts only
that the runs succeeded and loaded every row.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import Measured, joinedup, python, run_measured  # noqa: E402
from bench.national import _month_add, national_landing  # noqa: E402

GIB = 1024 ** 3
GOALS = {"backfill": 300.0, "rss": 6.0, "load_ratio": 1.5, "pages": 15.0, "nothing_new": 5.0,
         "history_ratio": 1.2}

READ_CSV_BASELINE = """
import json, sys, time, duckdb
files, db, memory = json.loads(open(sys.argv[1]).read()), sys.argv[2], sys.argv[3]
con = duckdb.connect(db, config={"memory_limit": memory})
began, rows = time.perf_counter(), 0
for dataset, kinds in files.items():
    if kinds["csv"]:
        con.execute(f"create table {dataset}_csv as select * from read_csv(?, union_by_name = true, "
                    "all_varchar = true)", [kinds["csv"]])
        rows += con.execute(f"select count(*) from {dataset}_csv").fetchone()[0]
    if kinds["parquet"]:
        con.execute(f"create table {dataset}_parquet as select * from read_parquet(?, union_by_name = true)",
                    [kinds["parquet"]])
        rows += con.execute(f"select count(*) from {dataset}_parquet").fetchone()[0]
print(json.dumps({"seconds": time.perf_counter() - began, "rows": rows}))
"""

RENDER_MONTH = """
import json, sys, time
from datetime import date
from pathlib import Path
from flows.db import connect
from flows.publish.report import render_reports
con = connect(sys.argv[1], read_only=True)
began = time.perf_counter()
render_reports(con, Path(sys.argv[2]), [date.fromisoformat(sys.argv[3])])
pages = len(list(Path(sys.argv[2]).rglob("*.html")))
print(json.dumps({"seconds": time.perf_counter() - began, "pages": pages}))
"""


LOAD_AND_BUILD = """
import sys
from pathlib import Path
from flows import pipeline
from flows.settings import load_settings
folder = Path(sys.argv[2])
settings = load_settings(landing=sys.argv[1], db=folder / "joinedup.duckdb", reports=folder / "reports")
with pipeline.open_writer(settings) as con:
    pipeline.load_step(con, settings)
    pipeline.build_step(con, pipeline.plan_step(con, None), "history")
"""


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(JOINEDUP_PSEUDO_KEY="benchmark-key", JOINEDUP_ORCHESTRATION="direct",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    return env


def _check(run: Measured, what: str) -> Measured:
    assert run.returncode == 0, f"{what} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


def _folder_args(landing: Path, work: Path) -> list[str]:
    return ["--landing", str(landing), "--db", str(work / "joinedup.duckdb"),
            "--reports", str(work / "reports")]


def _last_run(db: Path) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        durations, files_loaded = con.execute(
            "select durations, files_loaded from run_log order by started_at desc limit 1").fetchone()
        rows_in, rows_loaded, apc_rows = con.execute(
            "select sum(rows_in), sum(rows_loaded), sum(rows_in) filter (where dataset = 'apc') "
            "from files where status in ('loaded', 'superseded')").fetchone()
        loaded = con.execute("select file_name, dataset from files "
                             "where status in ('loaded', 'superseded')").fetchall()
    finally:
        con.close()
    return {"durations": json.loads(durations), "files_loaded": files_loaded, "rows_in": rows_in,
            "rows_loaded": rows_loaded, "apc_rows": apc_rows, "loaded_files": loaded}


@dataclass
class ScaleResult:
    scale: float
    files: int
    rows_in: int = 0
    apc_rows: int = 0
    backfill: Measured | None = None
    steps: dict = field(default_factory=dict)
    read_csv_seconds: float = 0.0
    pages_seconds: float = 0.0
    pages_wall: float = 0.0
    pages: int = 0
    nothing_new: Measured | None = None


def measure_scale(scale: float, work: Path, log=print) -> ScaleResult:
    landing, summary = national_landing(scale=scale, log=log)
    first = date.fromisoformat(summary.start + "-01")
    last = _month_add(first, summary.months - 1)
    result = ScaleResult(scale, summary.files)
    work.mkdir(parents=True, exist_ok=True)
    env = _env()

    log(f"[{scale:g}] backfill {first:%Y-%m}..{last:%Y-%m} of {summary.files} files ...")
    result.backfill = _check(run_measured(
        joinedup("backfill", "--from", f"{first:%Y-%m}", "--to", f"{last:%Y-%m}",
                 *_folder_args(landing, work)), env=env, log_to=work / "backfill.log"), "backfill")
    run = _last_run(work / "joinedup.duckdb")
    result.steps, result.rows_in, result.apc_rows = run["durations"], run["rows_in"], run["apc_rows"]
    assert run["rows_loaded"] > 0.99 * run["rows_in"]

    log(f"[{scale:g}] plain read_csv of the {len(run['loaded_files'])} files that loaded ...")
    by_dataset: dict[str, dict[str, list[str]]] = {}
    for name, dataset in run["loaded_files"]:
        kind = "parquet" if name.endswith(".parquet") else "csv"
        by_dataset.setdefault(dataset, {"csv": [], "parquet": []})[kind].append(str(landing / name))
    (work / "files.json").write_text(json.dumps(by_dataset))
    from flows.settings import duckdb_memory_limit
    baseline = _check(run_measured(python(READ_CSV_BASELINE, str(work / "files.json"),
                                          str(work / "read_csv.duckdb"), duckdb_memory_limit())),
                      "read_csv baseline")
    figures = json.loads(baseline.stdout.strip().splitlines()[-1])
    result.read_csv_seconds = figures["seconds"]
    assert figures["rows"] == run["rows_in"]
    (work / "read_csv.duckdb").unlink()

    log(f"[{scale:g}] every page of {last:%Y-%m} into an empty folder ...")
    pages = _check(run_measured(python(RENDER_MONTH, str(work / "joinedup.duckdb"),
                                       str(work / "one_month"), last.isoformat()), env=env), "pages")
    figures = json.loads(pages.stdout.strip().splitlines()[-1])
    result.pages_seconds, result.pages, result.pages_wall = figures["seconds"], figures["pages"], pages.seconds

    log(f"[{scale:g}] scheduled run with nothing new ...")
    result.nothing_new = _check(run_measured(
        joinedup("run", "--month", f"{last:%Y-%m}", *_folder_args(landing, work)), env=env),
        "nothing-new run")
    return result


@dataclass
class HistoryResult:
    scale: float
    setup_seconds: dict = field(default_factory=dict)
    monthly: dict = field(default_factory=dict)          # "1 year" / "5 years" -> Measured
    steps: dict = field(default_factory=dict)
    nothing_new: Measured | None = None


def measure_history(scale: float, work: Path, log=print) -> HistoryResult:
    """Five years of national history against one, with the same new month arriving."""
    landing, summary = national_landing(scale=scale, start="2021-03", months=61, log=log)
    first = date.fromisoformat(summary.start + "-01")
    last = _month_add(first, 60)
    result = HistoryResult(scale)
    env = _env()
    from flows.ingest.naming import parse_file_name

    def period(path: Path) -> str | None:
        try:
            return parse_file_name(path.name).period
        except Exception:       # a name that does not parse: it stays with the history
            return None

    histories = {"1 year": [f"{_month_add(last, -k):%Y-%m}" for k in range(12, 0, -1)],
                 "5 years": [f"{_month_add(last, -k):%Y-%m}" for k in range(60, 0, -1)]}
    for name, months in histories.items():
        folder = work / name.replace(" ", "_")
        (folder / "landing").mkdir(parents=True)
        arriving = []
        for path in sorted(landing.iterdir()):
            if path.name.startswith("."):
                continue
            p = period(path)
            if p == f"{last:%Y-%m}":
                arriving.append(path)
            elif p is None or p in months:
                os.link(path, folder / "landing" / path.name)
        log(f"[history {scale:g}] {name}: load and build {months[0]}..{months[-1]} "
            f"({len(list((folder / 'landing').iterdir()))} files) ...")
        # load and build only: the pages of 60 past months are not what is measured
        setup = _check(run_measured(python(LOAD_AND_BUILD, str(folder / "landing"), str(folder)),
                                    env=env, log_to=folder / "setup.log"), f"{name} history")
        result.setup_seconds[name] = setup.seconds
        for path in arriving:
            os.link(path, folder / "landing" / path.name)
        log(f"[history {scale:g}] {name}: {len(arriving)} new files, scheduled run for {last:%Y-%m} ...")
        result.monthly[name] = _check(run_measured(
            joinedup("run", "--month", f"{last:%Y-%m}", *_folder_args(folder / "landing", folder)),
            env=env), f"{name} monthly run")
        result.steps[name] = _last_run(folder / "joinedup.duckdb")["durations"]
    folder = work / "5_years"
    result.nothing_new = _check(run_measured(
        joinedup("run", "--month", f"{last:%Y-%m}", *_folder_args(folder / "landing", folder)),
        env=env), "nothing-new run on 5 years")
    return result


def _row(what: str, value: str, goal: str, ratio: float | None, met: bool | None) -> str:
    ratio_text = f"{ratio:.2f}x" if ratio is not None else ""
    verdict = "" if met is None else ("met" if met else "NOT MET")
    return f"| {what} | {value} | {goal} | {ratio_text} | {verdict} |"


def report_table(results: list[ScaleResult], history: HistoryResult | None) -> str:
    lines = ["| what | measured | goal | ratio to goal | |", "|---|---|---|---|---|"]
    for r in results:
        label = "national" if r.scale == 1 else f"scale {r.scale:g}"
        steps = ", ".join(f"{k} {r.steps.get(k, 0):.0f}s" for k in ("load", "plan", "build", "report"))
        lines.append(_row(f"{label}: 12-month backfill from empty ({r.apc_rows:,} apc rows, {r.files} files; {steps})",
                          f"{r.backfill.seconds:.0f} s", "< 300 s", r.backfill.seconds / GOALS["backfill"],
                          r.backfill.seconds < GOALS["backfill"]))
        lines.append(_row(f"{label}: peak RSS of the backfill's process tree", f"{r.backfill.peak_gib:.2f} GiB",
                          "< 6 GiB", r.backfill.peak_gib / GOALS["rss"], r.backfill.peak_gib < GOALS["rss"]))
        load = r.steps.get("load", 0.0)
        ratio = load / r.read_csv_seconds
        lines.append(_row(f"{label}: load step against plain read_csv of the same files",
                          f"{load:.0f} s vs {r.read_csv_seconds:.0f} s = {ratio:.2f}x", "<= 1.5x",
                          ratio / GOALS["load_ratio"], ratio <= GOALS["load_ratio"]))
        lines.append(_row(f"{label}: every page of one month ({r.pages} pages, exports, index)",
                          f"{r.pages_seconds:.1f} s ({r.pages_wall:.1f} s with start-up)", "< 15 s",
                          r.pages_seconds / GOALS["pages"], r.pages_seconds < GOALS["pages"]))
        lines.append(_row(f"{label}: scheduled run, nothing new, 12 months of history",
                          f"{r.nothing_new.seconds:.1f} s", "< 5 s", r.nothing_new.seconds / GOALS["nothing_new"],
                          r.nothing_new.seconds < GOALS["nothing_new"]))
    by_scale = {r.scale: r for r in results}
    if 1 in by_scale and len(by_scale) > 1:
        small = min(by_scale)
        full, part = by_scale[1], by_scale[small]
        for what, f_sec, p_sec in (("load", full.steps.get("load", 0), part.steps.get("load", 0)),
                                   ("backfill", full.backfill.seconds, part.backfill.seconds)):
            per_full, per_part = f_sec / full.rows_in, p_sec / part.rows_in
            lines.append(_row(f"{what} per row loaded: scale {small:g} against full",
                              f"{per_part * 1e6:.2f} µs vs {per_full * 1e6:.2f} µs per row",
                              "full <= small (linear or better)", per_full / per_part, per_full <= per_part * 1.05))
    if history:
        one, five = history.monthly["1 year"].seconds, history.monthly["5 years"].seconds
        lines.append(_row(f"monthly run, 5 years against 1 year (history at scale {history.scale:g})",
                          f"{five:.1f} s vs {one:.1f} s", "<= 1.2x", five / one / GOALS["history_ratio"],
                          five / one <= GOALS["history_ratio"]))
        n = history.nothing_new.seconds
        lines.append(_row(f"scheduled run, nothing new, 5 years of history (scale {history.scale:g})",
                          f"{n:.1f} s", "< 5 s", n / GOALS["nothing_new"], n < GOALS["nothing_new"]))
    return "\n".join(lines)


@pytest.mark.benchmark
def test_national_year_on_one_machine(tmp_path):
    scales = [float(s) for s in os.environ.get("JOINEDUP_BENCH_SCALES", "0.05,1").split(",") if s]
    work = Path(os.environ.get("JOINEDUP_BENCH_WORK", tmp_path))
    results = []
    for scale in scales:
        results.append(measure_scale(scale, work / f"scale-{scale:g}"))
        shutil.rmtree(work / f"scale-{scale:g}" / "one_month", ignore_errors=True)
    history = None
    if os.environ.get("JOINEDUP_BENCH_HISTORY", "1") != "0":
        history = measure_history(float(os.environ.get("JOINEDUP_BENCH_HISTORY_SCALE", "0.01")),
                                  work / "history")
    print(f"\nnational benchmark ({date.today():%Y-%m-%d}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GIB:.0f} GiB)")
    print(report_table(results, history))
    if history:
        for name, steps in history.steps.items():
            print(f"  history {name}: setup {history.setup_seconds[name]:.0f}s; monthly run steps "
                  + ", ".join(f"{k} {v:.2f}s" for k, v in steps.items()))
