"""From generated extracts to a rendered report, through the real Prefect flow."""
from __future__ import annotations

import pytest

from tests.conftest import run_contract_check


@pytest.mark.e2e
def test_backfill_flow_renders_reports_and_passes_the_contract(prefect_harness, sample_landing, tmp_path,
                                                               monkeypatch):
    from flows.backfill import backfill_flow

    monkeypatch.setenv("JOINEDUP_PSEUDO_KEY", "e2e-test-key")
    db, reports = tmp_path / "j.duckdb", tmp_path / "reports"
    months = sorted(p.name.split("_")[2][:7] for p in sample_landing.glob("apc_*"))
    result = backfill_flow(from_month=months[0], to_month=months[-1], landing=str(sample_landing),
                           db=str(db), reports=str(reports))

    index = reports / "index.html"
    assert result["report_index"] and index.exists()
    check = run_contract_check(db)
    assert check.returncode == 0, check.stdout + check.stderr

    import duckdb
    con = duckdb.connect(str(db), read_only=True)
    hwbs = [r[0] for r in con.execute("select area_code from dim_hwb").fetchall()]
    built = con.execute("select count(distinct period_month) from metric_values").fetchone()[0]
    con.close()
    assert built >= 24
    page = (reports / months[-1] / f"{hwbs[0]}.html").read_text()
    assert "Emergency admissions" in page and "<svg" in page


@pytest.mark.e2e
def test_a_second_run_with_nothing_new_does_no_model_work(tmp_path, monkeypatch):
    from flows.monthly import call_plain, run_job
    from flows.months import parse_month
    from flows.settings import load_settings
    from sample.generate import generate_landing

    # three months are enough to show it, and load in an eighth of the 24-month sample's time
    landing = tmp_path / "landing"
    generate_landing(landing, seed=7, months=3)
    monkeypatch.setenv("JOINEDUP_PSEUDO_KEY", "e2e-test-key")
    settings = load_settings(landing=landing, db=tmp_path / "j.duckdb", reports=tmp_path / "r")
    month = parse_month(sorted(p.name.split("_")[2][:7] for p in landing.glob("apc_*"))[-1])
    first = run_job(flow_name="monthly", months=[month], settings=settings, parameters={}, call=call_plain)
    again = run_job(flow_name="monthly", months=[month], settings=settings, parameters={}, call=call_plain)
    assert first.build.models_run > 0
    assert again.plans == [] and again.build.models_run == 0
