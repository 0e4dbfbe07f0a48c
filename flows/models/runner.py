"""The SQL model runner: read model headers, order models, build months, audit, track staleness.

Every `sql/**/*.sql` file starts with a header comment of `key: value` lines (see
sql/README.md). Kinds:
  view    - a persistent view, re-created at the start of every build
  table   - a temporary table materialised once per build (shared by every month's models)
  metric  - one month's numerator and denominator per HWB (or, with `rollup: provider`, per
            provider); the runner writes them to `metric_cells` through the `cells` model of the
            metric's roll-up (sql/cells). ICB, England, value, plan and status are views over
            metric_cells (sql/marts/metric_areas.sql, metric_values.sql), never written.
  cells   - sql/cells: a metric's rows for the month (the temp table `metric_output`) as
            metric_cells rows, one model per roll-up
  audit   - sql/audits: returns offending rows for one month; `severity: fail` blocks the month
"""
from __future__ import annotations

import hashlib
import logging
import re
import traceback
from dataclasses import dataclass, field
from datetime import date
from graphlib import TopologicalSorter
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp

from flows import SQL_DIR, units
from flows.db import relation_exists, rollback_quietly
from flows.errors import JoinedUpError
from flows.ingest.identifiers import withhold_numbers
from flows.months import month_end, next_month

log = logging.getLogger("joinedup.runner")

HEADER = re.compile(r"^\s*/\*(.*?)\*/", re.S)
RAW_PREFIX = "raw_"   # every dataset is loaded into raw_<dataset> (flows/schema.py)



@dataclass
class Model:
    name: str
    path: Path
    kind: str
    sql: str
    header: dict[str, str]
    depends_on: list[str]

    @property
    def datasets(self) -> set[str]:
        return {d.removeprefix(RAW_PREFIX) for d in self.depends_on if d.startswith(RAW_PREFIX)}


@dataclass
class Project:
    models: dict[str, Model]
    audits: list[Model]
    sql_dir: Path = SQL_DIR
    _fingerprints: dict[str, str] = field(default_factory=dict, repr=False)

    def upstream(self, name: str) -> list[Model]:
        """The model and every model it reads, dependencies first; for a metric, also the
        `cells` model that writes its rows (and what that reads, e.g. dim_hwb)."""
        seen: dict[str, Model] = {}

        def visit(n: str) -> None:
            if n in seen or n not in self.models:
                return
            for d in self.models[n].depends_on:
                visit(d)
            seen[n] = self.models[n]
        visit(name)
        if self.models[name].kind == "metric":
            visit(self.cells_model(self.models[name]).name)
        return list(seen.values())

    def cells_model(self, metric: Model) -> Model:
        """The sql/cells model of the metric's `rollup:` header (hwb unless it says provider)."""
        return self.cells[metric.header.get("rollup", "hwb")]

    @property
    def cells(self) -> dict[str, Model]:
        return {m.header["rollup"]: m for m in self.models.values() if m.kind == "cells"}

    def datasets_of(self, name: str) -> set[str]:
        return set().union(*(m.datasets for m in self.upstream(name)))

    def fingerprint(self, name: str) -> str:
        """Changes when the model's SQL, any upstream model's SQL, or a code list it reads does."""
        if name not in self._fingerprints:
            self._fingerprints[name] = self._compute_fingerprint(name)
        return self._fingerprints[name]

    def _compute_fingerprint(self, name: str) -> str:
        digest = hashlib.sha256()
        for model in self.upstream(name):   # a metric's `rollup:` picks its cells model, in here
            digest.update(model.sql.encode())
            for dep in model.depends_on:
                ref = self.sql_dir / "reference" / f"{dep}.csv"
                if ref.exists():
                    digest.update(ref.read_bytes())
        return letters(digest.digest())

    @property
    def metrics(self) -> list[Model]:
        return sorted((m for m in self.models.values() if m.kind == "metric"),
                      key=lambda m: (int(m.header.get("sort_order", 999)), m.name))

    def ordered(self, kinds: tuple[str, ...]) -> list[Model]:
        graph = {n: [d for d in m.depends_on if d in self.models] for n, m in self.models.items()}
        order = TopologicalSorter(graph).static_order()
        return [self.models[n] for n in order if self.models[n].kind in kinds]


def letters(digest: bytes) -> str:
    """Hex with digits shifted to letters: a fingerprint that can never look like an NHS number."""
    return digest.hex()[:32].translate(str.maketrans("0123456789", "ghijklmnop"))


# ---------------------------------------------------------------- reading models


def parse_header(text: str, path: Path) -> dict[str, str]:
    match = HEADER.match(text)
    if not match:
        raise JoinedUpError(f"{path}: a model must start with a /* ... */ header")
    header: dict[str, str] = {}
    last = None
    for line in match.group(1).splitlines():
        if re.match(r"^\s*[a-z_]+:", line):
            key, _, value = line.partition(":")
            last = key.strip()
            header[last] = value.strip()
        elif last and line.strip():
            header[last] += " " + line.strip()  # continuation of a long value
    return header


def referenced_tables(sql: str) -> set[str]:
    """Tables and views the SQL reads, found by parsing it (CTE names excluded)."""
    tree = sqlglot.parse_one(sql.replace("$period_start", "date '2000-01-01'")
                             .replace("$period_end", "date '2000-01-31'"), read="duckdb")
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    return {t.name for t in tree.find_all(exp.Table) if t.name and t.name not in ctes}


def read_model(path: Path) -> Model:
    text = path.read_text()
    header = parse_header(text, path)
    body = HEADER.sub("", text, count=1).strip().rstrip(";")
    declared = [d.strip() for d in header.get("depends_on", "").split(",") if d.strip()]
    name = header.get("model") or path.stem
    return Model(name, path, header.get("kind", "audit" if "audits" in path.parts else "view"),
                 body, header, declared)


def load_project(sql_dir: Path | None = None) -> Project:
    """Read every model under sql_dir (default: the project's sql/, looked up at call time)."""
    import flows

    sql_dir = Path(sql_dir or flows.SQL_DIR)
    models, audits = {}, []
    for path in sorted(sql_dir.rglob("*.sql")):
        model = read_model(path)
        if model.kind == "audit":
            audits.append(model)
        else:
            if model.name in models:
                raise JoinedUpError(f"model {model.name} is defined twice ({path})")
            models[model.name] = model
    project = Project(models, audits, sql_dir)
    for metric in project.metrics:
        _check_metric_header(project, metric)
    return project


def _check_metric_header(project: Project, metric: Model) -> None:
    """A metric's unit must be in ref_units.csv and its roll-up one that sql/cells has, or its
    cells could not be written or valued."""
    if metric.header.get("unit") not in units.UNITS:
        raise JoinedUpError(f"{metric.path}: unit must be one of {', '.join(units.UNITS)} "
                            f"(sql/reference/ref_units.csv), not {metric.header.get('unit')}")
    if metric.header.get("rollup", "hwb") not in project.cells:
        raise JoinedUpError(f"{metric.path}: rollup must be one of {', '.join(sorted(project.cells))}")
    if metric.header.get("denominator_rollup", "sum") not in ("sum", "max"):
        raise JoinedUpError(f"{metric.path}: denominator_rollup must be sum or max")


def check_dependencies(project: Project) -> list[str]:
    """Problems where a header's depends_on disagrees with what its SQL reads."""
    problems = []
    for model in list(project.models.values()) + project.audits:
        if model.kind == "macro":
            continue
        actual = referenced_tables(model.sql)
        declared = set(model.depends_on)
        if actual != declared:
            problems.append(f"{model.path.name}: depends_on {sorted(declared)} but the SQL reads "
                            f"{sorted(actual)}")
    return problems


# ---------------------------------------------------------------- staleness


@dataclass
class MonthPlan:
    month: date
    models: dict[str, str] = field(default_factory=dict)   # model -> why it is stale

    @property
    def stale(self) -> bool:
        return bool(self.models)


def loaded_months(con: duckdb.DuckDBPyConnection) -> list[date]:
    """Months with at least one loaded periodic extract: the months metrics exist for."""
    rows = con.execute("""select distinct strptime(period || '-01', '%Y-%m-%d')::date from files
                          where status = 'loaded' and period is not null order by 1""").fetchall()
    return [r[0] for r in rows]


class InputIndex:
    """Which loaded files can change which month, read once per plan (not once per cell)."""

    def __init__(self, con):
        rows = con.execute("""
            select m.month, f.file_id, f.file_name, f.sha256, f.dataset
            from files f join file_months m using (file_id)
            where f.status = 'loaded' order by f.file_id""").fetchall()
        self.every_month = [r[1:] for r in rows if r[0] is None]
        self.by_month: dict[date, list[tuple]] = {}
        for month, *rest in rows:
            if month is not None:
                self.by_month.setdefault(month, []).append(tuple(rest))
        self._memo: dict[tuple, list[tuple]] = {}

    def files(self, month: date, datasets: set[str]) -> list[tuple[int, str, bytes]]:
        key = (month, frozenset(datasets))
        if key not in self._memo:
            found = {r[0]: r[:3] for r in self.every_month + self.by_month.get(month, [])
                     if r[3] in datasets}
            self._memo[key] = [found[i] for i in sorted(found)]
        return self._memo[key]

    def has_rows(self, month: date, datasets: set[str]) -> bool:
        """Whether a loaded file of one of the datasets has rows in the month itself."""
        return any(r[3] in datasets for r in self.by_month.get(month, []))

    def files_ahead(self, month: date, dataset: str, days: int) -> list[tuple[int, str, bytes]]:
        """Files of the dataset with rows in a later month that `days` after the month's end
        reaches (file_months are months, so the whole of the last month reached counts)."""
        reach = date.fromordinal(month_end(month).toordinal() + days).replace(day=1)
        found, later = [], next_month(month)
        while later <= reach:
            found += [r[:3] for r in self.by_month.get(later, []) if r[3] == dataset]
            later = next_month(later)
        return found


def reads_ahead(model: Model) -> dict[str, int]:
    """The header's `reads_ahead_days: apc 91` (comma separated for several datasets): a
    month's cells also read that dataset's rows dated up to so many days after the month's end,
    as a linked metric follows its month's people into later data."""
    ahead = {}
    for part in model.header.get("reads_ahead_days", "").split(","):
        if part.strip():
            dataset, days = part.split()
            ahead[dataset] = int(days)
    return ahead


def metric_inputs(project: Project, model: Model, month: date,
                  index: InputIndex) -> list[tuple[int, str, bytes]]:
    """The loaded files a metric's month is built from: those with rows in the month, and for
    a `reads_ahead_days` dataset also those with rows in the later months the metric reads.

    The later files count only while a dataset the month's cohort comes from (the datasets it
    reads, less those it reads ahead) has rows in the month: with no cohort, later data cannot
    change its cells (a readmission after reablement needs a reablement row in the month)."""
    files = index.files(month, project.datasets_of(model.name))
    ahead = reads_ahead(model)
    if ahead and index.has_rows(month, project.datasets_of(model.name) - set(ahead)):
        later = [f for dataset, days in ahead.items() for f in index.files_ahead(month, dataset, days)]
        files = sorted({f[0]: f for f in files + later}.values())
    return files


def _fingerprint(files: list[tuple[int, str, bytes]]) -> str:
    return letters(hashlib.sha256(b"".join(sorted(f[2] for f in files))).digest())


def plan_months(con: duckdb.DuckDBPyConnection, project: Project, months: list[date]) -> list[MonthPlan]:
    """For each month, which metric models are stale and why (changes nothing)."""
    index = InputIndex(con)
    builds = {(r[0], r[1]): r[2:] for r in con.execute(
        "select period_month, model, sql_fingerprint, input_fingerprint, input_files "
        "from model_builds").fetchall()}
    plans = []
    for month in months:
        plan = MonthPlan(month)
        for model in project.metrics:
            reason = _stale_reason(con, project, model, month, builds.get((month, model.name)), index)
            if reason:
                plan.models[model.name] = reason
        plans.append(plan)
    return plans


def _stale_reason(con, project: Project, model: Model, month: date, built: tuple | None,
                  index: InputIndex) -> str | None:
    if built is None:
        return "not built yet"
    if built[0] != project.fingerprint(model.name):
        return "model SQL changed (" + ", ".join(
            m.path.name for m in project.upstream(model.name)) + ")"
    files = metric_inputs(project, model, month, index)
    if built[1] != _fingerprint(files):
        return _input_change(con, built[2] or [], [f[0] for f in files])
    return None


def _input_change(con, before: list[int], now: list[int]) -> str:
    names = dict(con.execute("select file_id, file_name from files").fetchall())
    added = [names[i] for i in now if i not in before]
    removed = [names.get(i, f"file {i}") for i in before if i not in now]
    parts = []
    if added:
        parts.append("new input " + ", ".join(added[:3]) + (" …" if len(added) > 3 else ""))
    if removed:
        parts.append("replaced input " + ", ".join(removed[:3]) + (" …" if len(removed) > 3 else ""))
    return "; ".join(parts) or "inputs changed"


# ---------------------------------------------------------------- building


@dataclass
class MonthFailure:
    """A month whose rebuild was rolled back: its previous figures (if any) stay in place."""

    month: date
    audits: list[str]           # the blocking audits that failed; empty when the build raised
    reason: str                 # one line, for people: the audits' findings or the error
    had_figures: bool = False   # whether the month had figures from an earlier build


@dataclass
class BuildResult:
    months_built: list[date] = field(default_factory=list)
    models_run: int = 0
    audits: list[dict] = field(default_factory=list)
    failed: list[MonthFailure] = field(default_factory=list)


def create_views(con, project: Project, *, tables: bool = False) -> None:
    """Macros and views (cheap, every run); with `tables`, also refresh the `table` models,
    which only a build needs."""
    for model in project.ordered(("macro",)):
        con.execute(model.sql)
    for model in project.ordered(("view", "table")):
        if model.kind == "view":
            con.execute(f"create or replace view {model.name} as {model.sql}")
        elif tables or not relation_exists(con, model.name):
            refresh_table(con, project, model)


def refresh_table(con, project: Project, model: Model) -> None:
    """Rebuild a `table` model; with an `incremental_key` header, only the keys whose rows came
    from files loaded or replaced since the last refresh (so the cost follows what changed,
    not the years of history)."""
    key = model.header.get("incremental_key")
    datasets = sorted(project.datasets_of(model.name))
    files = [r[0] for r in con.execute(
        "select file_id from files where status = 'loaded' and dataset in (select unnest(?::varchar[])) "
        "order by 1", [datasets]).fetchall()]
    state = con.execute("select sql_fingerprint, file_ids from table_state where model = ?",
                        [model.name]).fetchone()
    fingerprint = project.fingerprint(model.name)
    if key and state and state[0] == fingerprint and relation_exists(con, model.name):
        _refresh_keys(con, project, model, key, datasets, new=sorted(set(files) - set(state[1])),
                      gone=sorted(set(state[1]) - set(files)))
    else:
        con.execute(f"create or replace table {model.name} as {model.sql}")
    con.execute("insert or replace into table_state values (?, ?, ?)", [model.name, fingerprint, files])


def _refresh_keys(con, project: Project, model: Model, key: str, datasets: list[str], *, new: list[int],
                  gone: list[int]) -> None:
    if not new and not gone:
        return
    raw = " union all ".join(f"select {key} from raw_{d} where file_id in (select unnest($new))"
                             for d in datasets)
    con.execute(f"""create or replace temp table changed_keys as
        select distinct {key} from ({raw})
        union select {key} from {model.name} where file_id in (select unnest($gone))""",
                {"new": new, "gone": gone})
    con.execute(f"delete from {model.name} where ({key}) in (select ({key}) from changed_keys)")
    con.execute(f"insert into {model.name} {_sql_for_changed_keys(con, project, model, key)}")


def _sql_for_changed_keys(con, project: Project, model: Model, key: str) -> str:
    """The model's SQL reading only the changed keys' rows.

    An `incremental_key` is the model's grain, and every view between it and the stored tables
    keeps the key's rows apart (row-wise staging), so a key's rows depend only on its own input
    rows. The key filter is applied at the stored tables, where DuckDB scans two columns to
    apply it, and each upstream view is re-read through temp views over the filtered tables:
    a filter on the view's output would be applied only after the view had computed every row.
    """
    columns = {c.strip() for c in key.split(",")}
    renamed: dict[str, str] = {}
    for upstream in project.upstream(model.name):
        reads = referenced_tables(upstream.sql)
        for table in sorted(reads - set(project.models) - set(renamed)):
            if columns <= _columns(con, table):
                con.execute(f"create or replace temp view changed__{table} as select * from {table} "
                            f"where ({key}) in (select ({key}) from changed_keys)")
                renamed[table] = f"changed__{table}"
        if upstream.kind == "view" and reads & set(renamed):
            con.execute(f"create or replace temp view changed__{upstream.name} as "
                        f"{_rename_tables(upstream.sql, renamed)}")
            renamed[upstream.name] = f"changed__{upstream.name}"
    return (f"select * from ({_rename_tables(model.sql, renamed)}) "
            f"where ({key}) in (select ({key}) from changed_keys)")


def _columns(con, table: str) -> set[str]:
    return {r[0] for r in con.execute(f"select column_name from (describe {table})").fetchall()}


def _rename_tables(sql: str, renamed: dict[str, str]) -> str:
    if not renamed:
        return sql
    return exp.replace_tables(sqlglot.parse_one(sql, read="duckdb"), renamed).sql(dialect="duckdb")


def write_catalog(con, project: Project) -> None:
    """The metric catalogue comes from the model headers, so reports cannot disagree with SQL."""
    con.execute("delete from metric_catalog")
    for order, model in enumerate(project.metrics):
        h = model.header
        con.execute("insert into metric_catalog (metric_id, title, unit, higher_is_better, "
                    "numerator_label, denominator_label, unit_cost, definition, official_id, "
                    "source, sql_file, sort_order, follow_up_days, datasets, rollup, "
                    "denominator_rollup) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            h["metric_id"], h.get("title", h["metric_id"]), h["unit"],
            h.get("higher_is_better", "false").lower() == "true", h.get("numerator_label"),
            h.get("denominator_label"), float(h["unit_cost"]) if h.get("unit_cost") else None,
            h.get("definition") or h.get("description"), h.get("official_id"), h.get("source"),
            str(model.path.relative_to(project.sql_dir.parent)), order, int(h.get("follow_up_days", 0)),
            sorted(project.datasets_of(model.name)), h.get("rollup", "hwb"),
            h.get("denominator_rollup", "sum")])


def build_months(con, project: Project, plans: list[MonthPlan], *, run_id: str,
                 on_month=None) -> BuildResult:
    """Rebuild each stale month in its own transaction: delete, insert, audit, commit.

    A month whose blocking audit fails, or whose build raises, is rolled back and recorded in
    `failed`; the other months are still built. Only an interrupt (KeyboardInterrupt,
    SystemExit) stops the loop."""
    result = BuildResult()
    stale = [p for p in plans if p.stale]
    create_views(con, project, tables=bool(stale))
    index = InputIndex(con)   # no file loads during a build: read the inputs once
    for plan in stale:
        failure = _build_month_or_failure(con, project, plan, run_id, result, index)
        if failure:
            result.failed.append(failure)
        else:
            result.months_built.append(plan.month)
        if on_month:
            on_month(plan)
    return result


def _build_month_or_failure(con, project: Project, plan: MonthPlan, run_id: str,
                            result: BuildResult, index: InputIndex) -> MonthFailure | None:
    try:
        audits = _build_month(con, project, plan, index)
    except Exception as error:   # any bug or data surprise in one month must not stop the others
        reason = f"build error: {_one_line(error)}"
        # The run summary names the month and the reason; the traceback is for a developer who
        # turns on debug logging, never on a user's screen.
        log.debug("building %s failed; its previous figures were kept\n%s", f"{plan.month:%Y-%m}",
                  withhold_numbers("".join(traceback.format_exception(error))))
        return MonthFailure(plan.month, [], reason, _has_figures(con, plan.month))
    # Recorded after the month's transaction, so a rolled-back month keeps its audit results.
    _record_audits(con, audits, run_id)
    result.audits += audits
    blocking = [a for a in audits if a["offending"] and a["severity"] == "fail"]
    if not blocking:
        result.models_run += len(plan.models)
        return None
    return MonthFailure(plan.month, [a["audit"] for a in blocking], _blocking_reason(project, blocking),
                        _has_figures(con, plan.month))


def _build_month(con, project: Project, plan: MonthPlan, index: InputIndex) -> list[dict]:
    """Build one month in one transaction and return its audits; the month is committed only
    when no blocking (`severity: fail`) audit finds offending rows, else rolled back."""
    params = {"period_start": plan.month, "period_end": month_end(plan.month)}
    con.execute("begin transaction")
    try:
        for model in project.ordered(("month",)):
            con.execute(f"create or replace temp table {model.name} as {model.sql}",
                        _used(model.sql, params))
        for model in project.metrics:
            if model.name in plan.models:
                _write_metric(con, project, model, plan.month, params, index)
        audits = _run_audits(con, project, plan.month, params)
        blocked = any(a["offending"] and a["severity"] == "fail" for a in audits)
        con.execute("rollback" if blocked else "commit")
    except BaseException:
        rollback_quietly(con)
        raise
    return audits


def _has_figures(con, month: date) -> bool:
    return con.execute("select count(*) > 0 from metric_cells where period_month = ?",
                       [month]).fetchone()[0]


def _one_line(error: BaseException, limit: int = 300) -> str:
    """The error's type and first line, with anything that could be an NHS number withheld."""
    first = (str(error).strip().splitlines() or [""])[0]
    text = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return withhold_numbers(text if len(text) <= limit else text[:limit - 1] + "…")


def _blocking_reason(project: Project, blocking: list[dict]) -> str:
    described = {a.name: a.header.get("description", "") for a in project.audits}
    return " ".join(
        f"audit {a['audit']} failed for {a['month']:%Y-%m}: {a['offending']} offending rows "
        f"(first: {a['example']}). {described.get(a['audit'], '')}".strip() for a in blocking)


def _used(sql: str, params: dict) -> dict:
    return {k: v for k, v in params.items() if f"${k}" in sql}


def _write_metric(con, project: Project, model: Model, month: date, params: dict,
                  index: InputIndex) -> None:
    """The metric's rows for the month, through its roll-up's cells model, into metric_cells."""
    metric_id = model.header["metric_id"]
    con.execute("delete from metric_cells where period_month = ? and metric_id = ?", [month, metric_id])
    con.execute(f"create or replace temp table metric_output as {model.sql}", _used(model.sql, params))
    cells = project.cells_model(model)
    con.execute(f"insert into metric_cells by name {cells.sql}",
                _used(cells.sql, {**params, "metric_id": metric_id}))
    files = metric_inputs(project, model, month, index)
    con.execute("insert or replace into model_builds (period_month, model, sql_fingerprint, "
                "input_fingerprint, input_files) values (?, ?, ?, ?, ?)",
                [month, model.name, project.fingerprint(model.name), _fingerprint(files),
                 [f[0] for f in files]])


def _run_audits(con, project: Project, month: date, params: dict) -> list[dict]:
    """Every audit of the month, blocking or not, so that a failed month names all it failed."""
    results = []
    for audit in project.audits:
        rows = con.execute(audit.sql, _used(audit.sql, params)).fetchall()
        example = ", ".join(str(v) for v in rows[0]) if rows else None
        results.append({"month": month, "audit": audit.name,
                        "severity": audit.header.get("severity", "fail"),
                        "offending": len(rows), "example": withhold_numbers(example)})
    return results


def _record_audits(con, audits: list[dict], run_id: str) -> None:
    for a in audits:
        con.execute("insert into audit_results values (?, ?, ?, ?, ?, ?, current_timestamp)",
                    [run_id, a["month"], a["audit"], a["severity"], a["offending"], a["example"]])
