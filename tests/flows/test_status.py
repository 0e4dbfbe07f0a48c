"""`joinedup status`: the history kept in DuckDB, with no Prefect server."""
from __future__ import annotations

from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import write_csv

APC = "PROCODE,PROVSPNO,PSEUDO_ID,STARTAGE,SEX,RESLADST_ONS,ADMIDATE,ADMIMETH,DIAG_4_01"


def test_status_shows_runs_months_and_missing_deliveries(tmp_path, monkeypatch):
    monkeypatch.setenv("JOINEDUP_ORCHESTRATION", "direct")
    landing = tmp_path / "landing"
    write_csv(landing / "orgs_all.csv", "ORG_CODE,ORG_TYPE,ORG_NAME,PARENT_CODE",
              "Q1,ICB,An ICB,", "E08000003,HWB,Manchester,Q1", "R0A,PROVIDER,A trust,Q1",
              "RM3,PROVIDER,Another trust,Q1")
    write_csv(landing / "population_ONS_2025.csv", "AREA_CODE,YEAR,SEX,AGE,POPULATION",
              "E08000003,2025,1,40,1000")
    for month in ("2025-04", "2025-05", "2025-06"):
        write_csv(landing / f"apc_R0A_{month}.csv", APC, f"R0A,S{month},p1,40,1,E08000003,{month}-02,21,I50")
    write_csv(landing / "apc_RM3_2025-04.csv", APC, "RM3,T1,p2,40,1,E08000003,2025-04-02,21,I50")
    args = ["--landing", str(landing), "--db", str(tmp_path / "j.duckdb")]
    runner = CliRunner()
    ran = runner.invoke(app, ["backfill", "--from", "2025-04", "--to", "2025-06", *args,
                              "--reports", str(tmp_path / "reports")])
    assert ran.exit_code == 0, ran.output

    shown = runner.invoke(app, ["status", *args], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "backfill" in shown.output and "completed" in shown.output
    assert "2025-04 to 2025-06 (3 months)" in shown.output
    assert "Stale months: none" in shown.output
    # RM3 delivered April and then stopped: May and June are missing
    assert "RM3" in shown.output and "2025-05, 2025-06" in shown.output
