"""Dump what the sample loads and builds to, to compare two versions of the code.

Speed work must not change results. Run this once with each version's `flows` first on the
path, then compare the folders:

    git worktree add /tmp/before <commit>
    PYTHONPATH=/tmp/before .venv/bin/python bench/sample_results.py /tmp/results-before
    .venv/bin/python bench/sample_results.py /tmp/results-after
    diff -r /tmp/results-before /tmp/results-after      # only the landing path in load_log

The sample (seed 7, 24 months, with faults) covers every kind of file and row the loader
handles. Dumped: metric_values, load_log (with the SHA-256), quarantine, the raw tables (without
file ids), and each file's invalid and missing person-id counts.
"""
from __future__ import annotations

import sys
from pathlib import Path

QUERIES = {
    "metric_values": "select * from metric_values order by all",
    "load_log": "select file_name, hex(sha256), dataset, org_code, period, status, rows_in, "
                "rows_loaded, rows_quarantined, reason from load_log order by all",
    "quarantine": "select * from quarantine order by all",
    "raw_apc": "select * exclude (file_id) from raw_apc order by all",
    "raw_reablement": "select * exclude (file_id) from raw_reablement order by all",
    "raw_carehome": "select * exclude (file_id) from raw_carehome order by all",
    "files": "select file_name, invalid_nhs_numbers, missing_person_ids from files order by all",
}


def dump(out: Path) -> None:
    from flows import pipeline
    from flows.settings import Settings
    from sample.generate import generate_landing

    out.mkdir(parents=True, exist_ok=True)
    landing = out / "landing"
    if not landing.exists():
        generate_landing(landing, seed=7, months=24, faults=True)
    db = out / "joinedup.duckdb"
    db.unlink(missing_ok=True)
    settings = Settings(landing=landing, db=db, reports=out / "reports", pseudo_key="compare-key",
                        lock_wait=0.0, report_workers=1)
    with pipeline.open_writer(settings) as con:
        pipeline.load_step(con, settings)
        pipeline.build_step(con, pipeline.plan_step(con, None), "compare")
        for name, query in QUERIES.items():
            con.execute(f"copy ({query}) to '{out / name}.csv' (header)")
    db.unlink()


if __name__ == "__main__":
    dump(Path(sys.argv[1]))
