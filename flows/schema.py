"""Every table joinedup writes, its contract views over them, and the migrations of a database
an earlier version made: the one place the database's shape is written.

`ensure(con)` runs when a writer opens the database (flows/db.py): it creates what is missing,
then applies, once, each migration newer than the version the database records.
The SQL models' own views (sql/**) are created by the runner, not here.
"""
from __future__ import annotations

import duckdb

# Loading: each file seen, its quarantined rows, the raw rows of each dataset.
LOAD_TABLES = """
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
-- Files published by NHS England and ONS (flows/ingest/published/), loaded under any name.
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
"""

# Building: what the metric models computed, what was built from which files, the audits, the
# catalogue the reports read, and the history of runs.
BUILD_TABLES = """
-- One row per month x area x metric as the metric's SQL computes it: by HWB (every HWB in
-- orgs, numerator 0 where nothing happened) or by provider. ICB and England, the value, the plan
-- and the status are views over it (sql/marts/metric_areas.sql, metric_values.sql).
create table if not exists metric_cells (
    period_month date not null, area_type varchar not null, area_code varchar not null,
    metric_id varchar not null, numerator double, denominator double,
    parent_code varchar,   -- a provider's ICB as its file gives it (used where orgs lacks it)
    primary key (period_month, area_type, area_code, metric_id)
);
create table if not exists model_builds (
    period_month date not null, model varchar not null, sql_fingerprint varchar not null,
    input_fingerprint varchar not null, input_files integer[], built_at timestamp default current_timestamp,
    primary key (period_month, model)
);
create table if not exists table_state (
    model varchar primary key, sql_fingerprint varchar, file_ids integer[]
);
create table if not exists audit_results (
    run_id varchar, period_month date, audit varchar, severity varchar, offending bigint,
    example varchar, checked_at timestamp default current_timestamp
);
create table if not exists metric_catalog (
    metric_id varchar primary key, title varchar, unit varchar, higher_is_better boolean,
    numerator_label varchar, denominator_label varchar, unit_cost double, definition varchar,
    official_id varchar, source varchar, sql_file varchar, sort_order integer,
    follow_up_days integer, datasets varchar[], rollup varchar, denominator_rollup varchar
);
create table if not exists run_log (
    run_id varchar primary key, flow varchar, parameters json, started_at timestamp,
    finished_at timestamp, status varchar, months_built date[], files_loaded integer,
    files_rejected integer, files_duplicate integer, rows_loaded bigint, rows_quarantined bigint,
    audits json, durations json, report_index varchar, message varchar, failed_months json
);
create table if not exists schema_version (version integer not null);
"""

# The contract's views of what was loaded (extracts contract s4).
CONTRACT_VIEWS = """
create or replace view load_log as
    select file_name, sha256, dataset, org_code, period, status, rows_in, rows_loaded,
           rows_quarantined, reason
    from files order by file_id;
create or replace view quarantine as
    select file_name, line_number, rule, detail from quarantine_rows
    order by file_id, line_number;
"""


def _add_columns_of_later_versions(con: duckdb.DuckDBPyConnection) -> None:
    """Columns added after their table was first created (run_log.failed_months,
    metric_catalog.rollup)."""
    con.execute("""
        alter table run_log add column if not exists failed_months json;
        alter table metric_catalog add column if not exists rollup varchar;
    """)


def _cells_as_computed(con: duckdb.DuckDBPyConnection) -> None:
    """metric_cells once held every area with its value, plan and status written in; it now
    holds only what the metric's SQL computes. The HWB and provider rows are kept (so a month
    whose rebuild fails still has figures); every metric's fingerprint changed with this
    version, so the next build rebuilds every month and writes the providers' parent codes.
    The catalogue gains each metric's denominator_rollup, which metric_areas reads."""
    con.execute("alter table metric_catalog add column if not exists denominator_rollup varchar")
    if not has_column(con, "metric_cells", "status"):
        return
    con.execute("""
        drop view if exists metric_values;
        drop view if exists metric_plan_variance;
        drop view if exists metric_spc;
        drop view if exists provisional_cells;
        alter table metric_cells rename to metric_cells_before_a1;
    """)
    con.execute(BUILD_TABLES)
    con.execute("""
        insert into metric_cells by name
        select period_month, area_type, area_code, metric_id, numerator, denominator
        from metric_cells_before_a1 where area_type in ('hwb', 'provider');
        drop table metric_cells_before_a1;
    """)


# In order; each runs once on a database whose recorded version is lower than its number.
MIGRATIONS = ((1, _add_columns_of_later_versions), (2, _cells_as_computed))
VERSION = MIGRATIONS[-1][0]


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    """Create what is missing and migrate a database an earlier version made."""
    new = not _has_table(con, "files")
    con.execute(LOAD_TABLES)
    con.execute(BUILD_TABLES)
    con.execute(CONTRACT_VIEWS)
    version = VERSION if new else recorded_version(con)
    if version == VERSION and not new:
        return
    # all or nothing: a migration that fails leaves the database as the earlier version made it
    con.execute("begin transaction")
    try:
        for number, migrate in MIGRATIONS:
            if number > version:
                migrate(con)
        con.execute("delete from schema_version; insert into schema_version values (?)", [VERSION])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def recorded_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version the database records; 0 for one made before versions were recorded."""
    if not _has_table(con, "schema_version"):
        return 0
    row = con.execute("select max(version) from schema_version").fetchone()
    return row[0] or 0


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return con.execute("select count(*) > 0 from duckdb_tables() where table_name = ?",
                       [name]).fetchone()[0]


def has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    return con.execute("select count(*) > 0 from duckdb_columns() where table_name = ? "
                       "and column_name = ?", [table, column]).fetchone()[0]
