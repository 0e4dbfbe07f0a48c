"""Benchmark: one monthly run when a new month's files arrive, on 5 years of history vs 1 year.

Run with `make bench`. Five years of sample extracts are generated once (sample.generate, fixed
seed). The 5-year database holds all of them; the 1-year database holds the reference files and
the extracts of the last 12 months only. Each history is loaded and built (no reports) up to the
month before the last. Then, on a fresh copy of each database and landing folder, the same last
month's extracts (byte for byte) arrive and the scheduled job (flows.monthly.run_job, plain
calls, no Prefect API) is timed: load, plan, build, report. So the two runs do the same work
and differ only in the history around them.

The runs alternate (1 year, 5 years, 1 year, ...) and each size's median of REPEATS is taken, so
that a burst of load from elsewhere on the machine does not land on one side only. The goal is
that the run on 5 years costs at most 1.2x the run on 1 year. Not a timed test: it prints both
durations, the ratio and each step's seconds (record.durations), and asserts only that both
runs loaded the same files and rebuilt the same months.
"""
from __future__ import annotations

import shutil
import statistics
import time
from datetime import date
from pathlib import Path

import pytest

from flows import monthly, pipeline
from flows.ingest.naming import parse_file_name
from flows.settings import Settings
from sample.generate import generate_landing

GOAL = 1.2
REPEATS = 5
STEPS = ("load", "plan", "build", "report")


def _period(path: Path) -> str | None:
    try:
        return parse_file_name(path.name).period
    except Exception:   # a published file's name does not parse: it is not a month's extract
        return None


def _settings(folder: Path) -> Settings:
    return Settings(landing=folder / "landing", db=folder / "joinedup.duckdb",
                    reports=folder / "reports", pseudo_key="benchmark-key", lock_wait=0.0)


def build_history(folder: Path, generated: list[Path], history_months: list[str]) -> dict:
    """Load and build `history_months` (and the reference files) in `folder`; set aside the
    extracts of the month after them, which the timed run loads."""
    last = max(p for p in map(_period, generated) if p)
    settings = _settings(folder)
    (folder / "arriving").mkdir(parents=True)
    settings.landing.mkdir()
    for path in generated:
        period = _period(path)
        if period == last:
            shutil.copy2(path, folder / "arriving" / path.name)
        elif period is None or period in history_months:
            shutil.copy2(path, settings.landing / path.name)
    began = time.perf_counter()
    with pipeline.open_writer(settings) as con:
        pipeline.load_step(con, settings)
        history = pipeline.build_step(con, pipeline.plan_step(con, None), "history")
    assert len(history.months_built) >= len(history_months)
    return {"folder": folder, "last": last, "setup": time.perf_counter() - began,
            "landing_files": len(list(settings.landing.iterdir())) + len(list((folder / "arriving").iterdir()))}


def timed_run(history: dict, attempt: int) -> dict:
    """The scheduled run for the new month, on a fresh copy of the history."""
    base = _settings(history["folder"])
    folder = history["folder"] / f"run{attempt}"
    settings = _settings(folder)
    shutil.copytree(base.landing, settings.landing)
    shutil.copy2(base.db, settings.db)
    for path in (history["folder"] / "arriving").iterdir():
        shutil.copy2(path, settings.landing / path.name)
    last = history["last"]
    began = time.perf_counter()
    record = monthly.run_job(flow_name="monthly", months=[date.fromisoformat(last + "-01")],
                             settings=settings, parameters={"month": last}, call=monthly.call_plain)
    seconds = time.perf_counter() - began
    shutil.rmtree(folder)
    return {"seconds": seconds, "durations": record.durations, "files": len(record.load.results),
            "built": [f"{m:%Y-%m}" for m in record.build.months_built],
            "models_run": record.build.models_run}


def _median_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


@pytest.mark.benchmark
def test_monthly_run_on_five_years_costs_about_the_same_as_on_one_year(tmp_path):
    from flows.publish import report  # noqa: F401  (templates: imported before timing)

    generated = generate_landing(tmp_path / "generated", seed=42, months=61).files
    months = sorted({p for p in map(_period, generated) if p})[:-1]
    histories = {"1 year": build_history(tmp_path / "one_year", generated, months[-12:]),
                 "5 years": build_history(tmp_path / "five_years", generated, months[-60:])}
    runs: dict[str, list[dict]] = {name: [] for name in histories}
    for attempt in range(REPEATS):
        for name, history in histories.items():
            runs[name].append(timed_run(history, attempt))

    # the same work: the same new files load, and the new month and the months its files reach
    # back to are rebuilt, and their reports rendered
    every = [r for rs in runs.values() for r in rs]
    assert len({r["files"] for r in every}) == 1 and every[0]["files"] > 0
    assert len({tuple(r["built"]) for r in every}) == 1
    assert histories["1 year"]["last"] in every[0]["built"]

    one, five = (_median_run(runs[name]) for name in histories)
    ratio = five["seconds"] / one["seconds"]
    print(f"\nmonthly run benchmark: median of {REPEATS} alternating runs (histories built in "
          f"{histories['1 year']['setup']:.1f}s / {histories['5 years']['setup']:.1f}s)")
    for name, run in (("1 year", one), ("5 years", five)):
        steps = ", ".join(f"{s} {run['durations'].get(s, 0):.2f}s" for s in STEPS)
        all_runs = ", ".join(f"{r['seconds']:.2f}" for r in runs[name])
        print(f"  {name}: {run['seconds']:.2f}s ({steps}; runs {all_runs}s); {run['files']} new "
              f"files of {histories[name]['landing_files']}; rebuilt {', '.join(run['built'])} "
              f"({run['models_run']} models)")
    print("  step ratios: " + ", ".join(
        f"{s} {five['durations'].get(s, 0) / max(one['durations'].get(s, 0), 1e-9):.2f}x" for s in STEPS))
    print(f"  ratio {ratio:.2f}x (goal <= {GOAL}x); median of the per-attempt ratios "
          f"{statistics.median(f['seconds'] / o['seconds'] for o, f in zip(runs['1 year'], runs['5 years'])):.2f}x")
    print(f"  BENCHMARKS.md row: | {date.today():%Y-%m-%d} | {one['seconds']:.2f} s | "
          f"{five['seconds']:.2f} s | {ratio:.2f}x | <= {GOAL}x |")
