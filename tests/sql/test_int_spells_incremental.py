"""Canonical spells are refreshed by key: the result equals a rebuild from scratch."""
from __future__ import annotations

from flows.db import connect
from flows.ingest.loader import load_landing
from flows.models.runner import create_views, load_project
from tests.sql.conftest import APC_HEADER, HWB_A, write_csv, write_reference


def spell(n: str, adm: str, dis: str = "", method: str = "21") -> str:
    return f"R0A,{n},p{n},70,1,{HWB_A},{adm},{method},{dis},{'1' if dis else ''},{'19' if dis else ''},,I50,,"


def canonical(con):
    return con.execute("select procode, provspno, period, admimeth, disdate from int_spells "
                       "order by all").fetchall()


def test_incremental_refresh_equals_a_full_rebuild(tmp_path):
    landing = write_reference(tmp_path / "landing")
    write_csv(landing / "apc_R0A_2025-05.csv", APC_HEADER, spell("S1", "2025-05-03"), spell("S2", "2025-05-10"))
    con = connect(tmp_path / "t.duckdb")
    project = load_project()
    load_landing(con, landing, pseudo_key=None)
    create_views(con, project, tables=True)

    # a new month re-sends S1 (now discharged); a resubmission of May drops S2 and corrects S1
    write_csv(landing / "apc_R0A_2025-06.csv", APC_HEADER, spell("S1", "2025-05-03", "2025-06-02"),
              spell("S3", "2025-06-07"))
    write_csv(landing / "apc_R0A_2025-05_resubmission.csv", APC_HEADER, spell("S1", "2025-05-03", method="2A"))
    load_landing(con, landing, pseudo_key=None)
    create_views(con, project, tables=True)
    incremental = canonical(con)

    con.execute("delete from table_state")           # forces the full rebuild
    create_views(con, project, tables=True)
    assert incremental == canonical(con)
    assert [r[1] for r in incremental] == ["S1", "S3"]       # S2 went with the replaced file
    assert incremental[0][3] == "21" and str(incremental[0][4]) == "2025-06-02"  # June's row wins
