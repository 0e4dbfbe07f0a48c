"""Open the database and create joinedup's own tables and contract views."""
from __future__ import annotations

import os
from pathlib import Path

import duckdb

from flows.settings import apply_spc_settings

SCHEMA = """
create sequence if not exists file_ids start 1;
create table if not exists files (
    file_id integer primary key,
    file_name varchar not null,
    sha256 blob not null,
    dataset varchar,
    org_code varchar,
    period varchar,
    identity varchar,
    status varchar not null,
    rows_in bigint not null,
    rows_loaded bigint not null,
    rows_quarantined bigint not null,
    reason varchar,
    invalid_nhs_numbers bigint not null default 0,
    missing_person_ids bigint not null default 0,
    loaded_at timestamp not null default current_timestamp
);
create table if not exists quarantine_rows (
    file_id integer not null,
    file_name varchar not null,
    line_number bigint,
    rule varchar not null,
    detail varchar
);
-- The size and modification time each landing file had when it was hashed: a file that still
-- has them is not read again (rsync's quick check), so a run's cost does not grow with the
-- years of extracts kept in the landing folder.
create table if not exists landing_stats (
    file_name varchar primary key,
    size_bytes bigint not null,
    mtime_ns bigint not null,
    sha256 blob not null
);
-- Months whose metrics a file's rows can change (NULL month: every month).
create table if not exists file_months (file_id integer not null, month date);
create table if not exists raw_apc (
    file_id integer, line_number bigint, period date,
    procode varchar, provspno varchar, person_id varchar, startage integer, sex varchar,
    resladst_ons varchar, gpprac varchar, admidate date, admimeth varchar, admisorc varchar,
    classpat varchar, disdate date, dismeth varchar, disdest varchar, discharge_ready_date date,
    diag_4_01 varchar, diag_4_02 varchar, diag_4_03 varchar, diag_4_04 varchar, diag_4_05 varchar,
    diag_4_06 varchar, diag_4_07 varchar, diag_4_08 varchar, diag_4_09 varchar, diag_4_10 varchar,
    diag_4_11 varchar, diag_4_12 varchar, diag_4_13 varchar, diag_4_14 varchar, diag_4_15 varchar,
    diag_4_16 varchar, diag_4_17 varchar, diag_4_18 varchar, diag_4_19 varchar, diag_4_20 varchar
);
create table if not exists raw_reablement (
    file_id integer, line_number bigint, period date, la_code varchar, client_key varchar,
    person_id varchar, age integer, hosp_discharge_date date, service_start_date date,
    status_91d varchar
);
create table if not exists raw_carehome (
    file_id integer, line_number bigint, period date, la_code varchar, client_key varchar,
    person_id varchar, age integer, admission_date date, setting varchar, permanent varchar,
    funding varchar
);
create table if not exists raw_population (
    file_id integer, line_number bigint, area_code varchar, year integer, sex varchar,
    age integer, population bigint
);
create table if not exists raw_plan (
    file_id integer, line_number bigint, area_code varchar, metric_id varchar, period date,
    plan_value double
);
create table if not exists raw_orgs (
    file_id integer, line_number bigint, org_code varchar, org_type varchar, org_name varchar,
    parent_code varchar
);
-- Local changes (a scheme's start month): each begins a new SPC rebase group (metric_spc).
create table if not exists raw_changes (
    file_id integer, line_number bigint, area_code varchar, metric_id varchar,
    change_date varchar, description varchar
);
-- Files published by NHS England and ONS (flows/ingest/published.py), loaded under any name.
create table if not exists raw_nhse_ae (
    file_id integer, line_number bigint, period date, org_code varchar, parent_org varchar,
    org_name varchar,
    att_type1 bigint, att_type2 bigint, att_other bigint,
    att_booked_type1 bigint, att_booked_type2 bigint, att_booked_other bigint,
    over4h_type1 bigint, over4h_type2 bigint, over4h_other bigint,
    over4h_booked_type1 bigint, over4h_booked_type2 bigint, over4h_booked_other bigint,
    dta_4_12h bigint, dta_12h bigint,
    emadm_ae_type1 bigint, emadm_ae_type2 bigint, emadm_ae_other bigint, emadm_other bigint
);
create table if not exists raw_nhse_discharge (
    file_id integer, line_number bigint, period date, date date, org_code varchar,
    org_name varchar, nctr bigint, discharges bigint, discharges_by_1700 bigint,
    discharges_1701_2359 bigint
);
create table if not exists raw_ons_population (
    file_id integer, line_number bigint, area_code varchar, area_name varchar, geography varchar,
    year integer, sex varchar, age integer, population bigint
);
-- A published file's own totals against the sum of its rows (e.g. NHS England's TOTAL row).
create table if not exists published_checks (
    file_id integer not null, "check" varchar not null, column_name varchar,
    published bigint, computed bigint, ok boolean not null, detail varchar
);
create or replace view load_log as
    select file_name, sha256, dataset, org_code, period, status, rows_in, rows_loaded,
           rows_quarantined, reason
    from files order by file_id;
create or replace view quarantine as
    select file_name, line_number, rule, detail from quarantine_rows
    order by file_id, line_number;
"""


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
        con.execute(SCHEMA)
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
