"""Load landing files into DuckDB: every input row accounted for, one file's failure rejecting
that file alone.

The steps, each in its module: scan the landing folder (landing.py), inspect each new file
(inspection.py: hash, name, gzip stream, header), read it as text (reading.py), judge its rows
by the dataset's rules (judging.py, rules.py: consecutive files of a dataset in one query) and
write them (writing.py). Here they are put in order: a run of judged files is written in one
transaction, and anything else, or a run that fails, one file per transaction, where any
failure rejects that file with a reason naming it.

A file whose name does not parse may be one NHS England or ONS published (flows/ingest/published/):
when its header matches a published layout it loads into raw_nhse_ae, raw_nhse_discharge or
raw_ons_population with the same guarantees (one transaction, every row loaded or quarantined,
duplicates by SHA-256, a newer file of the same identity supersedes the older), and the file's
own totals are checked against its rows in `published_checks`.
"""
from __future__ import annotations

import logging
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from flows.db import rollback_quietly
from flows.errors import FileRejected
from flows.ingest import identifiers, published
from flows.ingest.datasets import DATASETS
from flows.ingest.inspection import (
    NO_BYTES,
    BatchPart,
    LandingFile,
    failure_rejection,
    hash_files,
    inspect,
    inspect_link,
    require_pseudo_key,
)
from flows.ingest.judging import (
    batch_bytes,
    batches_of,
    check_columns,
    checked_from_batch,
    code_lists,
    column_map,
    drop_batch_tables,
    judge_batch_or_not,
    plan_metric_ids,
    quietly,
)
from flows.ingest.landing import SKIPPED_KINDS, files_to_inspect, remember_stats, scan_landing, seen_files
from flows.ingest.reading import drop_working_tables, plain_cause, read_into_src, remove_aliases
from flows.ingest.rules import build_checked_sql
from flows.ingest.writing import (
    LoadResult,
    files_row,
    insert_files_rows,
    ledger_of,
    record_one,
    supersede,
    write_judged,
    write_run,
)
from flows.months import month_start

log = logging.getLogger("joinedup.loader")


@dataclass
class LoadSummary:
    results: list[LoadResult] = field(default_factory=list)
    # Entries of the landing folder that are not files to load: kind -> names (display form)
    skipped: dict[str, list[str]] = field(default_factory=dict)


def load_landing(con: duckdb.DuckDBPyConnection, landing: Path, *, pseudo_key: str | None,
                 on_file: Callable[[LoadResult], None] | None = None) -> LoadSummary:
    """Load every new file in the landing folder; return what happened to each.

    One file's failure, of whatever kind, rejects that file alone: the others still load.
    """
    try:
        return _load_new_files(con, landing, pseudo_key, on_file)
    finally:
        remove_aliases()


def _load_new_files(con, landing: Path, pseudo_key: str | None, on_file) -> LoadSummary:
    scan = scan_landing(landing)
    seen = seen_files(con)
    paths = files_to_inspect(con, landing, seen, scan)
    hashed = hash_files(paths)
    items = [inspect(con, p, hashed[p]) for p in paths]
    items += [inspect_link(p, landing) for p in scan.links]
    new = [i for i in items if (i.file_name, i.sha256) not in seen]
    remember_stats(con, [i for i in items if (i.file_name, i.sha256) in seen])   # e.g. touched
    require_pseudo_key([i for i in new if not i.name_error], pseudo_key)
    summary = LoadSummary(skipped=scan.skipped)
    for batch in batches_of(new, batch_bytes(con)):
        judge_batch_or_not(con, batch, pseudo_key)
        for results in _load_batch(con, batch, pseudo_key):
            for result in results:
                summary.results.append(result)
                if on_file:
                    on_file(result)
        quietly(drop_batch_tables, con)
    return summary


def _load_batch(con, batch: list[LandingFile], pseudo_key: str | None):
    """Load the batch's files in order: each run of consecutive judged files in one
    transaction (`write_run`), any other file in its own (`_load_one`). Yields the results
    of each step as it is committed."""
    together = {id(i) for i in _writable_together(con, batch)}
    run: list[LandingFile] = []
    for item in batch:
        if id(item) in together:
            run.append(item)
            continue
        if run:
            yield _write_run_or_each(con, run, pseudo_key)
            run = []
        yield [_load_one(con, item, pseudo_key)]
    if run:
        yield _write_run_or_each(con, run, pseudo_key)


def _writable_together(con, batch: list[LandingFile]) -> list[LandingFile]:
    """Judged files that no other file of the batch or before can make a duplicate (see
    `_is_duplicate`), so that none of them depends on another written in the same transaction:
    bytes seen in no loaded file and in no other file of the batch. Header-only files of
    different identities may share their bytes: each is a delivery of its own."""
    judged = [i for i in batch if i.batch]
    if not judged:
        return []
    known = set(con.execute(
        "select distinct sha256, case when rows_in > 0 then null else identity end from files "
        "where status in ('loaded', 'superseded') and sha256 in ("
        + ", ".join("?" for _ in judged) + ")", [i.sha256 for i in judged]).fetchall())
    copies = Counter(_copy_key(i) for i in judged)
    unjudged = {i.sha256 for i in batch if not i.batch}
    return [i for i in judged
            if _copy_key(i) not in known and copies[_copy_key(i)] == 1 and i.sha256 not in unjudged]


def _copy_key(item: LandingFile) -> tuple[bytes, str | None]:
    """Files with the same key are duplicates of each other: the bytes, and for a file with no
    rows its identity too."""
    empty = item.batch.rows + item.batch.malformed == 0
    return item.sha256, ledger_of(item)[3] if empty else None


def _load_one(con, item: LandingFile, pseudo_key: str | None) -> LoadResult:
    """One file in its own transaction, then its landing stats (only a cache)."""
    result = _load_guarded(con, item, pseudo_key)
    try:
        drop_working_tables(con)
        if item.sha256 != NO_BYTES:
            remember_stats(con, [item])
    except duckdb.Error:
        pass     # only a cache: the file is hashed again next run
    return result


def _write_run_or_each(con, run: list[LandingFile], pseudo_key: str | None) -> list[LoadResult]:
    """Write a run of judged files in one transaction; a commit costs far more than writing a
    month's file of one provider. If anything fails, the run is rolled back and each file is
    written in its own transaction, where a failure rejects that file alone."""
    con.execute("begin transaction")
    try:
        results = write_run(con, run)
        remember_stats(con, run)
        con.execute("commit")
        return results
    except Exception:   # noqa: BLE001 - the files' own loads say what is wrong with them
        log.debug("run of %d files written one by one instead", len(run), exc_info=True)
        rollback_quietly(con)
    return [_load_one(con, item, pseudo_key) for item in run]


def _load_guarded(con, item: LandingFile, pseudo_key: str | None) -> LoadResult:
    """Load one file; anything that goes wrong (a damaged gzip stream, a DuckDB internal
    error, a bug) rejects the file with a reason naming it and the cause."""
    try:
        return load_file(con, item, pseudo_key=pseudo_key)
    except Exception as error:      # noqa: BLE001 - one file never stops the run
        return _record_failure(con, item, error)


def _record_failure(con, item: LandingFile, error: Exception) -> LoadResult:
    """The file is rejected (rule `load_failed`) and nothing from it is kept."""
    reason = rejection_reason(failure_rejection(item, error))
    result = LoadResult(item.file_name, "rejected", reason=identifiers.withhold_numbers(reason))
    try:
        ledger = ledger_of(item)
    except Exception:   # noqa: BLE001
        ledger = (None, None, None, None)
    result.dataset, result.period = ledger[0], ledger[2]
    try:
        rollback_quietly(con)
        con.execute("begin transaction")
        file_id = con.execute("select nextval('file_ids')").fetchone()[0]
        insert_files_rows(con, [files_row(file_id, item, result, ledger=ledger)])
        con.execute("commit")
    except Exception:   # noqa: BLE001 - the database refused even that: the summary still says
        rollback_quietly(con)
    return result


def load_file(con: duckdb.DuckDBPyConnection, item: LandingFile, *,
              pseudo_key: str | None) -> LoadResult:
    """Load one file in one transaction; a rejected file records why and loads nothing."""
    con.execute("begin transaction")
    try:
        result = _load_in_transaction(con, item, pseudo_key)
        con.execute("commit")
        return result
    except BaseException:
        rollback_quietly(con)
        raise


def _load_in_transaction(con, item: LandingFile, pseudo_key: str | None) -> LoadResult:
    file_id = con.execute("select nextval('file_ids')").fetchone()[0]
    if item.rejection:
        return _reject(con, file_id, item, item.rejection)
    if _is_duplicate(con, item):
        return record_one(con, file_id, item, LoadResult(item.file_name, "duplicate"))
    if item.published_dataset:
        item.stage = "reading it as a file NHS England or ONS publish"
        return _load_published(con, file_id, item)
    item.stage = "reading it"
    if item.batch:      # read, checked and judged with its batch (judging.py)
        return _load_rows(con, file_id, item, item.batch.rows + item.batch.malformed, pseudo_key)
    try:
        _check_file(item)
        rows_in, malformed = read_into_src(con, item.path)
    except FileRejected as rejected:
        return _reject(con, file_id, item, rejected)
    except (duckdb.Error, OSError, EOFError, zlib.error, UnicodeError) as error:
        # A failed read aborts the transaction; start a clean one to record the rejection.
        _restart_transaction(con)
        return _reject(con, file_id, item, FileRejected("unreadable", plain_cause(error, item.path)))
    item.stage = "checking its columns"
    try:
        check_columns(con, item)
    except FileRejected as rejected:
        return _reject(con, file_id, item, rejected, rows_readable=True)
    item.stage = "checking and writing its rows"
    return _load_rows(con, file_id, item, rows_in + malformed, pseudo_key)


def _restart_transaction(con) -> None:
    rollback_quietly(con)
    con.execute("begin transaction")


# What a person can do about each reason a whole file is rejected.
REJECTION_ADVICE = {
    "file_name": "rename it <dataset>_<org_code>_<YYYY-MM>[_<text>].csv, .csv.gz or .parquet "
                 "and put it in the landing folder again",
    "missing_column": "ask the sender for the file with every required column "
                      "(the contract, section 2), then put it in the landing folder again",
    "duplicate_column": "ask the sender to resend it with each column once",
    "unreadable": "check it is a UTF-8 CSV (optionally gzipped) or a Parquet file, and ask the "
                  "sender to resend it",
    "symbolic_link": "put the file itself in the landing folder, not a link to it",
    "load_failed": "check the file opens and is the extract the contract describes, then put it "
                   "in the landing folder again; if it does, report the reason to whoever "
                   "supports joinedup",
}

# Rules whose reason starts with the file's name: the whole file, not a row, could not be read.
_NAMED_RULES = ("unreadable", "symbolic_link")


def rejection_reason(rejected: FileRejected) -> str:
    """The rule, what is wrong, and what to do about it."""
    advice = REJECTION_ADVICE.get(rejected.rule)
    return f"{rejected.rule}: {rejected.detail}" + (f"; to fix: {advice}" if advice else "")


def _is_duplicate(con, item: LandingFile) -> bool:
    """The same bytes as a file that loaded. Not a rejected file's bytes: they may come back
    under a corrected name, as the rejection advises. Not an empty return (header only) for
    another organisation or month either: it is a delivery of its own, with nothing in it."""
    identity = ledger_of(item)[3]
    return con.execute(
        "select count(*) from files where sha256 = ? and status in ('loaded', 'superseded') "
        "and (rows_in > 0 or identity is not distinct from ?)",
        [item.sha256, identity]).fetchone()[0] > 0


def _check_file(item: LandingFile) -> None:
    if item.name_error and item.read_error:
        raise item.name_error       # the name is the first thing to put right
    if item.read_error:
        raise FileRejected("unreadable", item.read_error)
    if item.name_error:
        raise item.name_error


def _reject(con, file_id: int, item: LandingFile, rejected: FileRejected, *,
            rows_readable: bool = False) -> LoadResult:
    """A rejected file loads nothing; readable rows are all quarantined under its reason."""
    if rejected.rule in _NAMED_RULES and not rejected.detail.startswith(item.file_name):
        rejected = FileRejected(rejected.rule, f"{item.file_name}: {rejected.detail}")
    rows = 0
    if rows_readable:
        rows = _quarantine_all(con, file_id, item, rejected)
    elif item.name_error and not item.read_error and not item.rejection:
        rows = _quarantine_unnamed(con, file_id, item, rejected)
    result = LoadResult(item.file_name, "rejected", rows, 0, rows, rejection_reason(rejected))
    return record_one(con, file_id, item, result)


def _quarantine_unnamed(con, file_id: int, item: LandingFile, rejected: FileRejected) -> int:
    """A file with a bad name may still be readable: keep its rows for reprocessing."""
    try:
        read_into_src(con, item.path)
    except Exception:   # noqa: BLE001 - unreadable as well: the name's reason is the one given
        _restart_transaction(con)
        return 0
    return _quarantine_all(con, file_id, item, rejected)


def _quarantine_all(con, file_id: int, item: LandingFile, rejected: FileRejected) -> int:
    """Every row read from a rejected file, kept under the file's reason; returns the count."""
    con.execute("insert into quarantine_rows select ?, ?, line_number, ?, ? from "
                "(select line_number from src union all select line_number from src_rejects)",
                [file_id, item.file_name, rejected.rule,
                 identifiers.withhold_numbers(f"file rejected: {rejected.detail}")])
    return con.execute("select count(*) from quarantine_rows where file_id = ?",
                       [file_id]).fetchone()[0]


def _load_rows(con, file_id: int, item: LandingFile, rows_in: int,
               pseudo_key: str | None) -> LoadResult:
    dataset = DATASETS[item.name.dataset]
    con.execute("drop table if exists checked")
    if item.batch:
        checked_from_batch(con, item.batch)
    else:
        sql = build_checked_sql(dataset, column_map(con), org_code=item.name.org_code,
                                period_start=item.name.period_start,
                                code_lists=code_lists(con, dataset),
                                metric_ids=plan_metric_ids(dataset))
        params = {k: v for k, v in identifiers.key_parameters(pseudo_key).items() if f"${k}" in sql}
        con.execute("create temp table checked as " + sql, params)
    return write_judged(con, [(BatchPart(0, rows_in, 0), file_id, item)],
                         checked="(select 0 as file_key, * from checked)",
                         rejects="(select 0 as file_key, * from src_rejects)")[0]


def _load_published(con, file_id: int, item: LandingFile) -> LoadResult:
    """Load a file NHS England or ONS published (recognised by its header) in the caller's
    transaction. The check rows (NHS England's TOTAL row) count as loaded: their values are kept
    in `published_checks`, so rows_in = rows_loaded + rows_quarantined holds."""
    try:
        pub = published.read_published(item.path)
    except FileRejected as rejected:
        return _reject_published(con, file_id, item, rejected)
    item.published_file = pub
    _insert_published_rows(con, file_id, pub)
    _record_published_months(con, file_id, pub)
    _insert_published_checks(con, file_id, pub)
    _insert_published_quarantine(con, file_id, item.file_name, pub)
    result = LoadResult(item.file_name, "loaded", pub.rows_in, pub.rows_loaded + pub.check_rows,
                        len(pub.quarantined))
    record_one(con, file_id, item, result)
    supersede(con, [pub.identity])
    return result


def _reject_published(con, file_id: int, item: LandingFile, rejected: FileRejected) -> LoadResult:
    """A published file that cannot be loaded: its data records (if readable) are quarantined."""
    rows = published.data_records(item.path)
    con.execute("insert into quarantine_rows select ?, ?, l, ?, ? from range(1, ? + 1) t(l)",
                [file_id, item.file_name, rejected.rule, f"file rejected: {rejected.detail}", rows])
    result = LoadResult(item.file_name, "rejected", rows, 0, rows, rejection_reason(rejected))
    return record_one(con, file_id, item, result)


def _insert_published_rows(con, file_id: int, pub: published.PublishedFile) -> None:
    table = f"raw_{pub.dataset}"
    types = dict(con.execute(f"select column_name, column_type from (describe {table})").fetchall())
    columns = [c for c in pub.rows.columns if c in types]
    con.register("published_rows", pub.rows.to_arrow())
    try:
        # a published name or code is text a sender wrote: stored with any NHS number withheld
        con.execute(
            f"insert into {table} (file_id, {', '.join(columns)}) select ?, "
            + ", ".join(identifiers.withhold_numbers_sql(f'"{c}"::varchar') if types[c] == "VARCHAR"
                        else f'"{c}"::{types[c]}' for c in columns)
            + " from published_rows order by line_number", [file_id])
    finally:
        con.unregister("published_rows")


def _record_published_months(con, file_id: int, pub: published.PublishedFile) -> None:
    """The months the rows cover; none (ONS population): every month, like `population`."""
    months = [month_start(p) for p in pub.periods] or [None]
    con.executemany("insert into file_months values (?, ?)", [[file_id, m] for m in months])


def _insert_published_checks(con, file_id: int, pub: published.PublishedFile) -> None:
    rows = [[file_id, c["check"], identifiers.withhold_numbers(c.get("column")),
             _as_count(c.get("published")), _as_count(c.get("computed")), bool(c["ok"]),
             identifiers.withhold_numbers(_check_detail(c))] for c in pub.checks]
    if rows:
        con.executemany("insert into published_checks values (?, ?, ?, ?, ?, ?, ?)", rows)


def _as_count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check_detail(check: dict) -> str | None:
    """The parser's detail; a value that is not a count (e.g. a month) is spelled out here."""
    parts = [check["detail"]] if check.get("detail") else []
    if any(check.get(k) is not None and _as_count(check.get(k)) is None for k in ("published", "computed")):
        parts.append(f"published {check.get('published')}, computed {check.get('computed')}")
    return "; ".join(parts) or None


def _insert_published_quarantine(con, file_id: int, file_name: str,
                                 pub: published.PublishedFile) -> None:
    if pub.quarantined:
        con.executemany("insert into quarantine_rows values (?, ?, ?, ?, ?)",
                        [[file_id, file_name, line, rule, identifiers.withhold_numbers(detail)]
                         for line, rule, detail in pub.quarantined])


_SKIPPED_WORDS = {"hidden": ("hidden file", "hidden files"), "folder": ("sub-folder", "sub-folders"),
                  "special": ("FIFO or other special file", "FIFOs or other special files")}


def skipped_summary(summary: LoadSummary) -> str | None:
    """One line on what in the landing folder was skipped (not loaded, not in `files`)."""
    parts = []
    for kind in SKIPPED_KINDS:
        names = summary.skipped.get(kind, [])
        if names:
            one, many = _SKIPPED_WORDS[kind]
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            parts.append(f"{len(names)} {one if len(names) == 1 else many} ({shown})")
    return "Skipped in the landing folder: " + "; ".join(parts) if parts else None
