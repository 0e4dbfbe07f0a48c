"""How long a full backfill of reports takes: 24 months × 3 pages × 12 metrics.

Not part of `make test` (marked benchmark). Run it with
`.venv/bin/python -m pytest tests/templates/test_report_benchmark.py -m benchmark -s`.
"""
from __future__ import annotations

import logging
import time
from datetime import date

import duckdb
import pytest
import report_db

from flows.publish.report import render_reports

pytestmark = pytest.mark.benchmark


@pytest.fixture(scope="module")
def backfill_db(tmp_path_factory):
    """One ICB with two HWBs (3 pages), 12 metrics, 47 months: every window is full."""
    path = report_db.build(tmp_path_factory.mktemp("bench") / "bench.duckdb", first=date(2021, 12, 1))
    with duckdb.connect(str(path)) as con:
        con.execute("delete from metric_values where area_code in (?, ?)",
                    [report_db.GM_ICB, report_db.TRAFFORD])
        for i in range(8):
            report_db.add_local_metric(con, f"local_metric_{i}", title=f"Local metric {i}",
                                       sort_order=100 + i)
    return path


def test_backfill_24_months(backfill_db, tmp_path, caplog):
    months = report_db.months(date(2023, 12, 1), date(2025, 11, 1))
    caplog.set_level(logging.INFO, logger="joinedup.report")
    with duckdb.connect(str(backfill_db), read_only=True) as con:
        start = time.perf_counter()
        render_reports(con, tmp_path, months)
        elapsed = time.perf_counter() - start
    print(f"\n24 months x 3 pages: {elapsed:.1f}s; {caplog.records[-1].getMessage()}")
    assert len(list(tmp_path.rglob("*.html"))) == 24 * 3 + 1
