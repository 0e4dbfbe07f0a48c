"""DuckDB's memory limit and spill folder come from settings (JOINEDUP_DUCKDB_MEMORY,
JOINEDUP_DUCKDB_TEMP), with defaults for the machine; past the limit a load spills, it does not
fail."""
from __future__ import annotations

import pytest

from flows import settings
from flows.db import connect
from flows.ingest.loader import load_landing
from sample.generate import generate_landing


def _setting(con, name: str):
    return con.execute(f"select current_setting('{name}')").fetchone()[0]


def test_defaults_are_at_most_4_gib_and_a_folder_next_to_the_database(tmp_path, monkeypatch):
    monkeypatch.delenv(settings.DUCKDB_MEMORY_ENV, raising=False)
    monkeypatch.delenv(settings.DUCKDB_TEMP_ENV, raising=False)
    limit = settings.duckdb_memory_limit()
    assert limit.endswith("MB") and 0 < int(limit[:-2]) <= 4096
    con = connect(tmp_path / "j.duckdb")
    assert _setting(con, "temp_directory") == str(tmp_path / "j.duckdb.tmp")
    assert "GiB" in _setting(con, "memory_limit") or "MiB" in _setting(con, "memory_limit")
    assert _setting(con, "enable_progress_bar") is False


def test_the_settings_are_applied_where_the_database_is_opened(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.DUCKDB_MEMORY_ENV, "300MB")
    monkeypatch.setenv(settings.DUCKDB_TEMP_ENV, str(tmp_path / "spill"))
    con = connect(tmp_path / "j.duckdb")
    assert _setting(con, "memory_limit") in ("286.1 MiB", "300.0 MB", "286.1MiB")
    assert _setting(con, "temp_directory") == str(tmp_path / "spill")
    con.close()
    read_only = connect(tmp_path / "j.duckdb", read_only=True)
    assert _setting(read_only, "temp_directory") == str(tmp_path / "spill")


def test_a_load_under_a_small_memory_limit_spills_and_completes(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    generate_landing(landing, seed=3, months=3, formats=False)
    monkeypatch.setenv(settings.DUCKDB_MEMORY_ENV, "80MB")     # the smallest that works here
    monkeypatch.setenv(settings.DUCKDB_TEMP_ENV, str(tmp_path / "spill"))
    con = connect(tmp_path / "j.duckdb")
    summary = load_landing(con, landing, pseudo_key="test-key")
    assert summary.results and all(r.status == "loaded" for r in summary.results)
    assert con.execute("select count(*) from raw_apc").fetchone()[0] == sum(
        r.rows_loaded for r in summary.results if r.dataset == "apc")


def test_a_mistyped_orchestration_mode_fails_at_once_naming_the_setting(monkeypatch):
    from flows.errors import SettingsError
    monkeypatch.setenv("JOINEDUP_ORCHESTRATION", "prefct")
    with pytest.raises(SettingsError, match="JOINEDUP_ORCHESTRATION must be one of auto, prefect, direct"):
        settings.orchestration_mode()


def test_the_wait_flag_reaches_the_settings_without_the_environment(monkeypatch):
    monkeypatch.delenv("JOINEDUP_LOCK_WAIT", raising=False)
    assert settings.load_settings(lock_wait=7.5).lock_wait == 7.5
    assert settings.load_settings().lock_wait == 0
