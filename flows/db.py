"""Open the database (creating or migrating its tables: flows/schema.py) and load the code lists."""
from __future__ import annotations

import os
from pathlib import Path

import duckdb

from flows import schema
from flows.settings import apply_spc_settings


def rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back whatever transaction is open; none open (or a failed commit that already
    ended it) is not an error."""
    try:
        con.execute("rollback")
    except duckdb.Error:
        pass


def relation_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """A table or view of that name exists (older databases and read-only looks may lack one)."""
    return con.execute("select (select count(*) from duckdb_tables() where table_name = $name) "
                       "+ (select count(*) from duckdb_views() where view_name = $name)",
                       {"name": name}).fetchone()[0] > 0


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the database, creating it and joinedup's tables when it is new."""
    if not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only, config=resource_config(path))
    # DuckDB's own progress bar would print into the CLI's bars and into logs
    con.execute("set enable_progress_bar = false")
    apply_spc_settings(con)   # metric_spc reads its settings as variables of the connection
    if not read_only:
        schema.ensure(con)
        load_reference_tables(con)
    return con


def resource_config(path: Path | str) -> dict[str, str]:
    """DuckDB's memory limit and spill folder (flows/settings.py): past the limit, sorts, joins
    and aggregates spill to disk instead of failing, so a folder larger than memory loads."""
    from flows.settings import DUCKDB_TEMP_ENV, duckdb_memory_limit, duckdb_temp_directory

    config = {"memory_limit": duckdb_memory_limit()}
    if str(path) not in ("", ":memory:") or os.environ.get(DUCKDB_TEMP_ENV):
        config["temp_directory"] = str(duckdb_temp_directory(path))
    return config


def load_reference_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Load sql/reference/ref_*.csv as tables of the same name (code lists live only there)."""
    import flows

    for path in sorted((Path(flows.SQL_DIR) / "reference").glob("ref_*.csv")):
        con.execute(
            f'create or replace table "{path.stem}" as '
            "select * from read_csv(?, header = true, all_varchar = true)",
            [str(path)],
        )
