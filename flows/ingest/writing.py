"""Step 5, write: judged files' rows, months, quarantined rows and ledger rows, and the files they
supersede. One file or a run of files, the same statements (`write_judged`)."""
from __future__ import annotations

from dataclasses import dataclass

from flows.ingest import identifiers, published
from flows.ingest.datasets import DATASETS, Dataset
from flows.ingest.inspection import BatchPart, LandingFile


@dataclass
class LoadResult:
    file_name: str
    status: str
    rows_in: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    reason: str | None = None
    dataset: str | None = None
    period: str | None = None


def write_run(con, run: list[LandingFile]) -> list[LoadResult]:
    """Write the judged files of a run (see loader._write_run_or_each) from `checked_batch`."""
    ids = sorted(r[0] for r in con.execute(
        "select nextval('file_ids') from range(?)", [len(run)]).fetchall())
    files = [(item.batch, file_id, item) for file_id, item in zip(ids, run)]
    return write_judged(con, files, checked="checked_batch", rejects="batch_rejects")


def write_judged(con, files: list[tuple[BatchPart, int, LandingFile]], *, checked: str,
                 rejects: str) -> list[LoadResult]:
    """Write judged files of one dataset, each (its part of `checked`, file_id, item): the rows that
    load, the months they can change, the quarantined rows, the ledger rows; then the files
    they resubmit are superseded. `checked` and `rejects` hold the rows of every file, by
    file_key. One file or many, the same statements."""
    dataset = DATASETS[files[0][2].name.dataset]
    con.execute("drop table if exists run_files")
    con.execute("create temp table run_files (file_key integer, file_id integer, file_name varchar, "
                "file_period date, line_offset bigint)")
    con.execute("insert into run_files values " + ", ".join("(?, ?, ?, ?, ?)" for _ in files),
                [v for part, file_id, item in files
                 for v in (part.key, file_id, item.file_name, item.name.period_start, part.line_offset)])
    _insert_raw(con, dataset, checked)
    _record_months(con, dataset.name)
    _insert_quarantine(con, checked, rejects)
    counts = {row[0]: row[1:] for row in con.execute(f"""
        select f.file_key, count(c.line_number) filter (where c.rule is null),
               count(c.line_number) filter (where c.rule is not null)
                   + (select count(*) from {rejects} r where r.file_key = f.file_key),
               count(c.line_number) filter (where c.rule is null and c.nhs_number_invalid),
               count(c.line_number) filter (where c.rule is null and c.person_id is null)
        from run_files f left join {checked} c on c.file_key = f.file_key
        group by f.file_key""").fetchall()}
    con.execute("drop table run_files")
    entries = []
    for part, file_id, item in files:
        loaded, quarantined, invalid, no_person = counts[part.key]
        result = LoadResult(item.file_name, "loaded", part.rows + part.malformed, loaded, quarantined)
        entries.append((file_id, item, result, invalid, no_person))
    _record(con, entries)
    supersede(con, [ledger_of(item)[3] for _, _, item in files])
    return [result for _, _, result, _, _ in entries]


def _insert_raw(con, dataset: Dataset, checked: str) -> None:
    """The rows of each file in `run_files` that load, in the order they were judged: each
    file's rows together and in line order (its line_number is stored with each), so the
    table is not sorted again, which cost a fifth of a national month's insert."""
    table = f"raw_{dataset.name}"
    columns = [d[0] for d in con.execute(f"select * from {table} limit 0").description]
    values = [c for c in columns if c not in ("file_id", "period")]
    # A periodic extract's rows carry the file's period; a plan row carries its own PERIOD.
    period = ["period"] if "period" in columns else []
    period_value = (["c.PERIOD_DATE"] if dataset.name == "plan" else ["f.file_period"] if period else [])
    con.execute(
        f"insert into {table} (file_id, {', '.join(period + values)}) "
        f"select f.file_id, {', '.join(period_value + [_line_number(v) for v in values])} "
        f"from {checked} c join run_files f on f.file_key = c.file_key where c.rule is null")


def _line_number(column: str) -> str:
    """A column of `checked` as written; line numbers of a shared read counted from the file's start."""
    return "c.line_number - f.line_offset" if column == "line_number" else f"c.{column}"


# Which months a file in `run_files` can change. An apc file holds every spell open in its
# period, so it can change every month since its earliest admission, and the month before its
# period through readmissions (an admission in the period can readmit a discharge up to 29
# days earlier).
_MONTHS_SQL = {
    "apc": """select distinct b.file_id, m::date from (
                  select f.file_id, f.file_period,
                         least(date_trunc('month', min(r.admidate)), f.file_period - interval 1 month) as lo
                  from run_files f left join raw_apc r on r.file_id = f.file_id
                  group by f.file_id, f.file_period) b,
              generate_series(b.lo, b.file_period, interval 1 month) g(m)""",
    "reablement": "select distinct f.file_id, date_trunc('month', r.hosp_discharge_date) "
                  "from run_files f join raw_reablement r on r.file_id = f.file_id",
    "carehome": "select distinct f.file_id, date_trunc('month', r.admission_date) "
                "from run_files f join raw_carehome r on r.file_id = f.file_id",
    "plan": "select distinct f.file_id, r.period from run_files f join raw_plan r on r.file_id = f.file_id",
}


def _record_months(con, dataset: str) -> None:
    """A dataset without dated rows (population, orgs, changes) can change every month: NULL."""
    con.execute("insert into file_months "
                + _MONTHS_SQL.get(dataset, "select file_id, null from run_files"))


def _insert_quarantine(con, checked: str, rejects: str) -> None:
    con.execute(f"""
        insert into quarantine_rows
        select f.file_id, f.file_name, c.line_number - f.line_offset, c.rule, c.detail
        from {checked} c join run_files f on f.file_key = c.file_key where c.rule is not null
        union all
        select f.file_id, f.file_name, r.line_number, 'malformed_row',
               case when r.detail like '%INVALID ENCODING%'
                    then 'the line is not UTF-8 text (' || r.detail || '); the file must be saved as UTF-8'
                    else 'the line does not split into the header''s columns (' || r.detail || ')' end
        from {rejects} r join run_files f on f.file_key = r.file_key
    """)


def supersede(con, identities: list[str | None]) -> None:
    """A resubmission replaces the earlier file's rows entirely; its counts stay in the log.
    Of the loaded files of an identity, the one loaded last (the highest file_id) stays."""
    identities = sorted({i for i in identities if i is not None})
    if not identities:
        return
    old = con.execute(
        "select file_id, dataset from files where status = 'loaded' and identity in ("
        + ", ".join("?" for _ in identities) + ") "
        "qualify file_id < max(file_id) over (partition by identity)", identities).fetchall()
    for dataset in sorted({d for _, d in old}):
        ids = [f for f, d in old if d == dataset]
        con.execute(f"delete from raw_{dataset} where file_id in ({', '.join('?' for _ in ids)})", ids)
    if old:
        con.execute(f"update files set status = 'superseded' where file_id in "
                    f"({', '.join('?' for _ in old)})", [f for f, _ in old])


def ledger_of(item: LandingFile) -> tuple[str | None, str | None, str | None, str | None]:
    """(dataset, org_code, period, identity) of the file's row in `files`."""
    if item.name:
        name = item.name
        return name.dataset, name.org_code, name.period, "|".join(str(x) for x in name.identity)
    if item.published_file:
        pub = item.published_file
        return pub.dataset, pub.org_code, pub.period, pub.identity
    if item.published_dataset:
        return item.published_dataset, published.PUBLISHERS[item.published_dataset], None, None
    return None, None, None, None


def _record(con, entries: list[tuple[int, LandingFile, LoadResult, int, int]]) -> None:
    """The files' rows in `files`, each entry (file_id, item, result, invalid NHS numbers,
    missing person ids)."""
    insert_files_rows(con, [files_row(file_id, item, result, invalid=invalid, no_person=no_person)
                             for file_id, item, result, invalid, no_person in entries])


def record_one(con, file_id: int, item: LandingFile, result: LoadResult) -> LoadResult:
    _record(con, [(file_id, item, result, 0, 0)])
    return result


def files_row(file_id: int, item: LandingFile, result: LoadResult, *, invalid: int = 0,
               no_person: int = 0, ledger: tuple | None = None) -> list:
    """The file's row in `files`; every text in it is masked (display_name, withhold_numbers).
    The result takes the reason as masked (it is shown in the summary), dataset and period."""
    ledger = ledger or ledger_of(item)
    dataset, org_code, period, identity = (identifiers.withhold_numbers(v) for v in ledger)
    result.reason = identifiers.withhold_numbers(result.reason)
    result.dataset, result.period = ledger[0], ledger[2]
    return [file_id, item.file_name, item.sha256, dataset, org_code, period, identity,
            result.status, result.rows_in, result.rows_loaded, result.rows_quarantined,
            result.reason, invalid, no_person]


def insert_files_rows(con, rows: list[list]) -> None:
    """Rows of `files` in one statement: each statement costs milliseconds."""
    con.execute(
        "insert into files (file_id, file_name, sha256, dataset, org_code, period, identity, "
        "status, rows_in, rows_loaded, rows_quarantined, reason, invalid_nhs_numbers, "
        "missing_person_ids) values "
        + ", ".join("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" for _ in rows),
        [v for row in rows for v in row])
