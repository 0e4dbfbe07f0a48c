"""Benchmark: one monthly run when a new month's files arrive, on 5 years of history vs 1 year.

Run with `make bench`. For each history length the generated sample (flows.sample, fixed seed)
is loaded and built up to the month before its last; then the last month's extracts arrive and
the scheduled job (flows.monthly.run_job, plain calls, no Prefect API) is timed: load, plan,
build, report. The goal is that a run on 5 years costs at most 1.2x a run on 1 year. Not a timed
test: it prints both durations, the ratio and each step's seconds (record.durations), and asserts
only that both runs did the same kind of work.
"""
from __future__ import annotations

import shutil
import time
from datetime import date
from pathlib import Path

import pytest

from flows import monthly, pipeline
from flows.naming import parse_file_name
from flows.sample import generate_landing
from flows.settings import Settings

GOAL = 1.2
STEPS = ("load", "plan", "build", "report")


def _period(path: Path) -> str | None:
    try:
        return parse_file_name(path.name).period
    except Exception:   # a published file's name does not parse: it is not a month's extract
        return None


def monthly_run(folder: Path, months: int) -> dict:
    """Build `months - 1` months of history, then time the run that loads the last month."""
    generated = folder / "generated"
    summary = generate_landing(generated, seed=42, months=months)
    last = summary.months[-1]
    landing = folder / "landing"
    landing.mkdir(parents=True)
    arriving = [p for p in summary.files if _period(p) == last]
    for path in summary.files:
        if path not in arriving:
            shutil.copy2(path, landing / path.name)
    settings = Settings(landing=landing, db=folder / "joinedup.duckdb", reports=folder / "reports",
                        pseudo_key="benchmark-key", lock_wait=0.0, report_workers=2)

    began = time.perf_counter()
    with pipeline.open_writer(settings) as con:            # the history, without reports
        pipeline.load_step(con, settings)
        plans = pipeline.plan_step(con, None)
        history = pipeline.build_step(con, plans, "history")
    setup = time.perf_counter() - began
    assert len(history.months_built) == months - 1

    for path in arriving:
        shutil.copy2(path, landing / path.name)
    began = time.perf_counter()
    record = monthly.run_job(flow_name="monthly", months=[date.fromisoformat(last + "-01")],
                             settings=settings, parameters={"month": last}, call=monthly.call_plain)
    seconds = time.perf_counter() - began
    return {"months": months, "setup": setup, "seconds": seconds, "durations": record.durations,
            "files": len(record.load.results), "landing_files": len(summary.files),
            "built": [f"{m:%Y-%m}" for m in record.build.months_built],
            "models_run": record.build.models_run, "last": last}


@pytest.mark.benchmark
def test_monthly_run_on_five_years_costs_about_the_same_as_on_one_year(tmp_path):
    from flows import report  # noqa: F401  (matplotlib and templates: imported before timing)

    one = monthly_run(tmp_path / "one_year", 12)
    five = monthly_run(tmp_path / "five_years", 60)

    # the same kind of work: the new month's files load, the new month and the months its
    # files reach back to are rebuilt, and reports are rendered
    for run in (one, five):
        assert run["files"] > 0 and run["last"] in run["built"]

    ratio = five["seconds"] / one["seconds"]
    print(f"\nmonthly run benchmark (history built in {one['setup']:.1f}s / {five['setup']:.1f}s)")
    for name, run in (("1 year", one), ("5 years", five)):
        steps = ", ".join(f"{s} {run['durations'].get(s, 0):.2f}s" for s in STEPS)
        print(f"  {name}: {run['seconds']:.2f}s ({steps}); {run['files']} new files of "
              f"{run['landing_files']} in landing; rebuilt {', '.join(run['built'])} "
              f"({run['models_run']} models)")
    print("  step ratios: " + ", ".join(
        f"{s} {five['durations'].get(s, 0) / max(one['durations'].get(s, 0), 1e-9):.2f}x" for s in STEPS))
    print(f"  ratio {ratio:.2f}x (goal <= {GOAL}x)")
    print(f"  BENCHMARKS.md row: | {date.today():%Y-%m-%d} | {one['seconds']:.2f} s | "
          f"{five['seconds']:.2f} s | {ratio:.2f}x | <= {GOAL}x |")
