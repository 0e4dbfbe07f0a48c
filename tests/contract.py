"""The output contract, checked on a database: the tests' own oracle for what any run must leave.

What it checks comes from the extract and output contract (`extracts.md`): §4 (the views, their
columns and values), §1 and §2 "Precise rules for loading" (every file's rows accounted for),
§3 and §3a (every cell present, ICB = sum of its HWBs, England = all HWBs, value = scale x n/d).
It reads only the contract's views (`metric_values`, `load_log`, `quarantine`), the `orgs` view
for the org tree, `metric_catalog` for the units of metrics beyond the contract's, and, to scan
for NHS numbers, every table and view there is. It deliberately shares no code with the
pipeline (units, modulus 11, England's code are written here again), so a fault there cannot
hide itself here.

    contract_problems(con)        # [] when the database keeps the contract, else one line each
    check_database(db_path)       # (problems, one-line summary) for a database file
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path

import duckdb

ENGLAND_CODE = "E92000001"

# §4: each view's columns, in order, with the types the contract names ("number" = any numeric)
METRIC_VALUES_COLUMNS = {"period_month": "DATE", "area_type": "VARCHAR", "area_code": "VARCHAR",
                         "metric_id": "VARCHAR", "numerator": "number", "denominator": "number",
                         "value": "DOUBLE", "plan_value": "number", "status": "VARCHAR"}
LOAD_LOG_COLUMNS = {"file_name": "VARCHAR", "sha256": None, "dataset": "VARCHAR", "org_code": "VARCHAR",
                    "period": "VARCHAR", "status": "VARCHAR", "rows_in": "number",
                    "rows_loaded": "number", "rows_quarantined": "number", "reason": "VARCHAR"}
QUARANTINE_COLUMNS = {"file_name": "VARCHAR", "line_number": "number", "rule": "VARCHAR",
                      "detail": "VARCHAR"}
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL")

CELL_STATUSES = {"final", "provisional"}
AREA_TYPES = {"hwb", "icb", "england", "provider"}
FILE_STATUSES = {"loaded", "superseded", "duplicate", "rejected"}

# §3 and §3a: each metric's value as a multiple of numerator / denominator
PER_100K, PERCENT, DAYS = 100_000.0, 100.0, 1.0
CONTRACT_METRICS = {
    "emergency_admissions": PER_100K, "emergency_admissions_65plus": PER_100K,
    "avoidable_admissions": PER_100K, "falls_admissions_65plus": PER_100K,
    "readmissions_30d": PERCENT, "discharge_to_usual_residence": PERCENT,
    "mean_length_of_stay": DAYS, "long_stay_21plus": PERCENT, "discharged_on_ready_date": PERCENT,
    "discharge_delay_days": DAYS, "care_home_admissions_65plus": PER_100K,
    "reablement_at_home_91d": PERCENT,
}
LINKED_METRICS = {"reablement_after_discharge_65plus": PERCENT,
                  "carehome_after_discharge_65plus": PERCENT,
                  "readmission_after_reablement_91d": PERCENT}
# Metrics beyond the contract (provider-level and local ones) state their unit in the catalogue;
# a `count` is its numerator, with no denominator.
CATALOGUE_UNITS = {"per_100k": PER_100K, "percent": PERCENT, "days": DAYS, "mean": 1.0}
COUNT = "count"

# Ten digits, bare or grouped 3-3-4 by a space or hyphen, not part of a longer run of digits.
TEN_DIGITS = re.compile(r"(?<![0-9])[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}(?![0-9])")
# The same as a cheap SQL pre-filter (RE2 has no look-behind; Python decides)
TEN_DIGITS_SQL = "[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}"


# ---------------------------------------------------------------- entry points


def check_database(db: Path | str) -> tuple[list[str], str]:
    """(problems, summary) for a database file, opened read-only."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        problems = contract_problems(con)
        summary = _summary(con) if not problems else ""
    finally:
        con.close()
    return problems, summary


def contract_problems(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every way the database breaks the output contract (empty when it keeps it)."""
    problems = (_columns_problems(con, "metric_values", METRIC_VALUES_COLUMNS)
                + _columns_problems(con, "load_log", LOAD_LOG_COLUMNS)
                + _columns_problems(con, "quarantine", QUARANTINE_COLUMNS))
    if problems:        # the value checks below would only repeat that a view is missing
        return problems
    cells = MetricCells.read(con)
    return (cells.grain_problems() + cells.domain_problems() + cells.value_problems(_units(con))
            + cells.completeness_problems()
            + cells.rollup_problems(_org_parents(con))
            + load_log_problems(con) + quarantine_problems(con) + nhs_number_problems(con))


def _summary(con) -> str:
    cells, months = con.execute("select count(*), count(distinct period_month) from metric_values").fetchone()
    files = con.execute("select count(*) from load_log").fetchone()[0]
    return f"{cells} metric cells, {months} months, {files} files: as the contract says"


# ---------------------------------------------------------------- views and columns


def _columns_problems(con, view: str, expected: dict[str, str | None]) -> list[str]:
    try:
        have = {name: kind for name, kind, *_ in con.execute(f"describe {view}").fetchall()}
    except duckdb.Error:
        return [f"no view {view}"]
    problems = [f"{view} lacks column {c}" for c in expected if c not in have]
    for column, kind in expected.items():
        if column in have and kind and not _type_matches(have[column], kind):
            problems.append(f"{view}.{column} is {have[column]}, the contract says {kind}")
    return problems


def _type_matches(actual: str, expected: str) -> bool:
    if expected == "number":
        return actual.startswith(NUMERIC_TYPES)
    return actual == expected


# ---------------------------------------------------------------- metric_values


class MetricCells:
    """metric_values read once: {(month, area_type, area_code, metric_id): (n, d, value, status)}."""

    def __init__(self, rows: list[tuple]):
        self.by_key: dict[tuple, tuple] = {}
        self.duplicates: set[tuple] = set()
        self.null_keys = 0          # rows with a NULL in their key: reported, then left out
        for month, area_type, area_code, metric, n, d, value, _plan, status in rows:
            key = (month, area_type, area_code, metric)
            if None in key:
                self.null_keys += 1
                continue
            if key in self.by_key:
                self.duplicates.add(key)
            self.by_key[key] = (n, d, value, status)

    @classmethod
    def read(cls, con) -> MetricCells:
        return cls(con.execute("""select period_month, area_type, area_code, metric_id, numerator,
                                         denominator, value, plan_value, status
                                  from metric_values""").fetchall())

    def metrics_with(self, area_type: str) -> set[str]:
        return {k[3] for k in self.by_key if k[1] == area_type}

    def grain_problems(self) -> list[str]:
        problems = [f"{len(self.duplicates)} cells appear more than once in metric_values, "
                    f"e.g. {_show(min(self.duplicates))}"] if self.duplicates else []
        if self.null_keys:
            problems.append(f"{self.null_keys} metric_values rows with a NULL period_month, area_type, "
                            "area_code or metric_id")
        return problems

    def domain_problems(self) -> list[str]:
        problems = []
        statuses = {v[3] for v in self.by_key.values()} - CELL_STATUSES
        if statuses:
            problems.append(f"metric_values.status holds {sorted(map(str, statuses))}, "
                            f"not only {sorted(CELL_STATUSES)}")
        area_types = {k[1] for k in self.by_key} - AREA_TYPES
        if area_types:
            problems.append(f"metric_values.area_type holds {sorted(map(str, area_types))}")
        not_first = {k[0] for k in self.by_key if k[0].day != 1}
        if not_first:
            problems.append(f"period_month not the first of its month: {sorted(not_first)[:3]}")
        england = {k[2] for k in self.by_key if k[1] == "england"} - {ENGLAND_CODE}
        if england:
            problems.append(f"England cells under area_code {sorted(england)}, not {ENGLAND_CODE}")
        return problems

    def value_problems(self, units: dict[str, float | str]) -> list[str]:
        wrong = [(key, cell) for key, cell in self.by_key.items()
                 if key[3] in units and not _value_agrees(units[key[3]], *cell[:3])]
        unknown = sorted({k[3] for k in self.by_key} - set(units))
        problems = [f"{len(wrong)} cells whose value is not scale x numerator / denominator "
                    f"(NULL when the denominator is 0), e.g. {_show(*wrong[0])}"] if wrong else []
        if unknown:
            problems.append(f"metrics with no known unit, so no value check: {unknown}")
        return problems

    def completeness_problems(self) -> list[str]:
        """§3: every (month, area, metric) cell for each month, area and HWB-level metric. The
        months are those with any cell: a month whose files have loaded but that no run has built
        yet (a backfill of another range) has no cells at all, which is not a gap."""
        months = {k[0] for k in self.by_key}
        if not months:
            return []
        metrics = self.metrics_with("hwb") | set(CONTRACT_METRICS) | set(LINKED_METRICS)
        areas = {(k[1], k[2]) for k in self.by_key if k[1] in ("hwb", "icb", "england") and k[3] in metrics}
        areas.add(("england", ENGLAND_CODE))
        missing = [(m, t, a, k) for m in sorted(months) for t, a in sorted(areas) for k in sorted(metrics)
                   if (m, t, a, k) not in self.by_key]
        if not missing:
            return []
        return [f"{len(missing)} (month, area, metric) cells missing, e.g. {_show(missing[0])}"]

    def rollup_problems(self, parents: dict[str, str] | None) -> list[str]:
        """§3: an ICB's cell sums its HWBs' cells and England's sums every HWB's (a denominator is
        NULL when any HWB's is: a rate is never computed from a partial population)."""
        if parents is None and self.metrics_with("icb") & self.metrics_with("hwb"):
            return ["no orgs view to read the ICB of each HWB from: ICB cells cannot be checked"]
        parents = parents or {}
        groups: dict[tuple, list[tuple]] = defaultdict(list)
        for (month, area_type, area_code, metric), cell in self.by_key.items():
            if area_type == "hwb":
                groups[(month, "england", ENGLAND_CODE, metric)].append(cell)
                if parents.get(area_code):
                    groups[(month, "icb", parents[area_code], metric)].append(cell)
        wrong = [key for key, members in groups.items()
                 if key in self.by_key and not _sums_agree(self.by_key[key], members)]
        if not wrong:
            return []
        return [f"{len(wrong)} ICB or England cells that are not the sum of their HWBs' cells, "
                f"e.g. {_show(min(wrong))}"]


def _value_agrees(unit: float | str, numerator, denominator, value) -> bool:
    if unit == COUNT:
        return _close(value, numerator)
    if numerator is None or not denominator:
        return value is None
    return _close(value, unit * numerator / denominator)


def _sums_agree(total: tuple, members: list[tuple]) -> bool:
    numerator = sum(m[0] or 0 for m in members)
    denominators = [m[1] for m in members]
    denominator = None if any(d is None for d in denominators) else sum(denominators)
    return _close(total[0], numerator) and _close(total[1], denominator)


def _close(got, expected) -> bool:
    if got is None or expected is None:
        return got is None and expected is None
    return math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9)


def _show(*parts) -> str:
    return " ".join(str(p) for p in parts)


def _units(con) -> dict[str, float | str]:
    """Each metric's scale: the contract's for its own metrics, the catalogue's for the rest."""
    units: dict[str, float | str] = {}
    try:
        for metric, unit in con.execute("select metric_id, unit from metric_catalog").fetchall():
            units[metric] = COUNT if unit == COUNT else CATALOGUE_UNITS.get(unit)
    except duckdb.Error:
        pass      # no catalogue: only the contract's metrics have their values checked
    units = {m: u for m, u in units.items() if u is not None}
    return units | CONTRACT_METRICS | LINKED_METRICS


def _org_parents(con) -> dict[str, str] | None:
    """{HWB code: its ICB code} from the org tree the pipeline loaded (`orgs` view); None without one."""
    try:
        rows = con.execute("select org_code, parent_code from orgs where org_type = 'HWB'").fetchall()
    except duckdb.Error:
        return None
    return {code: parent for code, parent in rows if parent}


# ---------------------------------------------------------------- load_log and quarantine


LOAD_LOG_RULES = {
    "a status that is not loaded, superseded, duplicate or rejected":
        "status is null or status not in ('loaded', 'superseded', 'duplicate', 'rejected')",
    "rows_in <> rows_loaded + rows_quarantined":
        "rows_in is distinct from rows_loaded + rows_quarantined",
    "negative or NULL row counts":
        "rows_in is null or rows_loaded < 0 or rows_quarantined < 0",
    "a rejected file with rows loaded": "status = 'rejected' and rows_loaded <> 0",
    "a rejected file with no reason": "status = 'rejected' and coalesce(trim(reason), '') = ''",
    "a reason on a file that was not rejected": "status <> 'rejected' and reason is not null",
    "a duplicate that is not 0/0/0":
        "status = 'duplicate' and (rows_in <> 0 or rows_loaded <> 0 or rows_quarantined <> 0)",
    "a period that is not YYYY-MM": "period is not null and not regexp_full_match(period, '[0-9]{4}-[0-9]{2}')",
    "no file name": "file_name is null",
}


def load_log_problems(con) -> list[str]:
    problems = []
    for what, condition in LOAD_LOG_RULES.items():
        found = con.execute(f"select count(*), any_value(file_name) from load_log where {condition}").fetchone()
        if found[0]:
            problems.append(f"load_log: {found[0]} rows with {what}, e.g. {found[1]}")
    return problems


def quarantine_problems(con) -> list[str]:
    problems = []
    bad_lines = con.execute("select count(*) from quarantine where line_number is null or line_number < 1").fetchone()[0]
    if bad_lines:
        problems.append(f"quarantine: {bad_lines} rows whose line_number is not 1 or more")
    no_rule = con.execute("select count(*) from quarantine where coalesce(rule, '') = ''").fetchone()[0]
    if no_rule:
        problems.append(f"quarantine: {no_rule} rows without the rule they broke")
    unknown = con.execute("""select count(*) from quarantine
                             where file_name not in (select file_name from load_log)""").fetchone()[0]
    if unknown:
        problems.append(f"quarantine: {unknown} rows of files load_log does not list")
    return problems


# ---------------------------------------------------------------- NHS numbers


def nhs_number_valid(digits: str) -> bool:
    """Modulus 11 (NHS Data Dictionary): weights 10..2 on the first nine digits; a check digit of
    10 is never issued; ten identical digits are never valid."""
    if len(digits) != 10 or not digits.isdigit() or len(set(digits)) == 1:
        return False
    remainder = sum(int(d) * w for d, w in zip(digits, range(10, 1, -1))) % 11
    check = (11 - remainder) % 11
    return check != 10 and check == int(digits[9])


def nhs_numbers_in(text: str) -> list[str]:
    """Every NHS-number-like value in a text: ten digits (bare, or 3-3-4 with spaces or hyphens)
    that pass modulus 11."""
    found = (re.sub("[ -]", "", m) for m in TEN_DIGITS.findall(text))
    return [digits for digits in found if nhs_number_valid(digits)]


def nhs_number_problems(con) -> list[str]:
    """§2 and §4: no stored value anywhere (any table or view, text or whole number) looks like
    an NHS number. Dates and times are skipped: their digits are a date, not an identifier."""
    leaks = []
    for schema, relation, column, kind in _scannable_columns(con):
        for value in _candidate_values(con, schema, relation, column, kind):
            if nhs_numbers_in(value):
                leaks.append(f"{relation}.{column}")
                break
    if not leaks:
        return []
    return [f"values that look like valid NHS numbers are stored in {', '.join(sorted(leaks))}"]


def _scannable_columns(con) -> list[tuple[str, str, str, str]]:
    rows = con.execute("""select table_schema, table_name, column_name, data_type
                          from information_schema.columns
                          where table_schema not in ('information_schema', 'pg_catalog')""").fetchall()
    return [r for r in rows if not r[3].startswith(("DATE", "TIME", "BLOB", "INTERVAL", "BOOLEAN"))]


def _candidate_values(con, schema: str, relation: str, column: str, kind: str) -> list[str]:
    """The column's distinct values that could hold ten digits, as text (filtered in DuckDB)."""
    source = f'"{schema}"."{relation}"'
    if kind.startswith(("FLOAT", "DOUBLE", "DECIMAL")):
        # only a whole number can be an NHS number; a fraction's digits are not one
        whole = f'try_cast("{column}" as hugeint)'
        sql = (f"select distinct cast({whole} as varchar) from {source} "
               f'where {whole} = "{column}" and abs({whole}) >= 1000000000')
    else:
        sql = (f'select distinct cast("{column}" as varchar) as v from {source} '
               f"where regexp_matches(cast(\"{column}\" as varchar), '{TEN_DIGITS_SQL}')")
    try:
        return [v for (v,) in con.execute(sql).fetchall() if v]
    except duckdb.Error:
        # a view over a temporary table of the build that wrote the file: it has no rows here
        return []
