"""The sample's figures are pinned: work on speed (or anything else) must not move one of them.

A 6-month sample with every kind of fault and format the generator makes is loaded and built,
and every row of metric_values (every metric, area and month: numerator, denominator, value,
plan, status) and the load ledger's counts are compared with the files in tests/golden/figures,
which were written by the code before the national-scale work (commit 7fad6af). A change that
means to move a figure rewrites them (JOINEDUP_UPDATE_GOLDEN=1) and says why in its commit.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from flows import schema
from flows.db import connect
from flows.ingest.loader import load_landing
from flows.models.runner import build_months, load_project, loaded_months, plan_months, write_catalog
from sample.generate import generate_landing

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "figures"
QUERIES = {
    "metric_values.csv": "select period_month, area_type, area_code, metric_id, numerator, "
                         "denominator, round(value, 9) as value, round(plan_value, 9) as plan_value, "
                         "status from metric_values order by all",
    "files.csv": "select file_name, dataset, status, rows_in, rows_loaded, rows_quarantined, "
                 "invalid_nhs_numbers, missing_person_ids from files order by all",
    "quarantine.csv": "select file_name, rule, count(*) as rows, min(line_number) as first_line, "
                      "max(line_number) as last_line from quarantine group by all order by all",
}


def sample_figures(folder: Path) -> dict[str, str]:
    """Each pinned query's rows as CSV text, for the sample built in `folder`."""
    generate_landing(folder / "landing", seed=11, months=6, faults=True)
    con = connect(folder / "joinedup.duckdb")
    try:
        load_landing(con, folder / "landing", pseudo_key="pinned-figures-key")
        schema.ensure(con)
        project = load_project()
        write_catalog(con, project)
        build_months(con, project, plan_months(con, project, loaded_months(con)), run_id="pinned")
        return {name: _csv(con.execute(sql)) for name, sql in QUERIES.items()}
    finally:
        con.close()


def _csv(cursor) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([d[0] for d in cursor.description])
    writer.writerows(cursor.fetchall())
    return out.getvalue()


def test_the_sample_s_figures_are_the_pinned_ones(tmp_path):
    figures = sample_figures(tmp_path)
    if os.environ.get("JOINEDUP_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for name, text in figures.items():
            (GOLDEN / name).write_text(text)
    for name, text in figures.items():
        pinned = (GOLDEN / name).read_text()
        assert text.count("\n") > 1, f"{name} is empty"
        assert text == pinned, f"{name} differs from tests/golden/figures/{name}"
