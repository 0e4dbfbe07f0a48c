"""Load landing files into DuckDB: one transaction per file, every input row accounted for.

For each new file: parse its name, read it (CSV, gzipped CSV or Parquet) as text, check its
columns, apply the dataset's row rules in one SQL pass, pseudonymise NHS numbers, then write the
loaded rows, the quarantined rows and the file's ledger row in a single transaction.

A file whose name does not parse may be one NHS England or ONS published (flows/published.py):
when its header matches a published layout it loads into raw_nhse_ae, raw_nhse_discharge or
raw_ons_population with the same guarantees (one transaction, every row loaded or quarantined,
duplicates by SHA-256, a newer file of the same identity supersedes the older), and the file's
own totals are checked against its rows in `published_checks`.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from flows import identifiers, published
from flows.datasets import DATASETS, Dataset
from flows.db import relation_exists
from flows.errors import FileRejected, PseudoKeyMissing
from flows.naming import PERIODIC_DATASETS, REFERENCE_DATASETS, FileName, month_start, parse_file_name
from flows.rules import build_checked_sql

# Reference data loads first so that every periodic file can be checked against it.
DATASET_ORDER = {name: i for i, name in enumerate(REFERENCE_DATASETS[::-1] + PERIODIC_DATASETS)}
_NATURAL = re.compile(r"(\d+)")


@dataclass
class LandingFile:
    path: Path
    sha256: bytes
    size: int = 0              # size and modification time when it was hashed
    mtime_ns: int = 0
    name: FileName | None = None
    name_error: FileRejected | None = None
    columns: list[str] | None = None
    read_error: str | None = None
    published_dataset: str | None = None    # the published layout its header matches
    published_file: published.PublishedFile | None = None   # set once it is read
    batch: tuple[int, int, int] | None = None   # (file_key, rows read, malformed): judged in a batch

    @property
    def file_name(self) -> str:
        return self.path.name


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


@dataclass
class LoadSummary:
    results: list[LoadResult] = field(default_factory=list)


# ---------------------------------------------------------------- discovering files


def landing_files(landing: Path) -> list[Path]:
    """Data files in the landing folder, in the order they must load (see `_load_order`)."""
    if not landing.is_dir():
        return []
    paths = [p for p in landing.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(paths, key=_load_order)


def _load_order(path: Path) -> tuple:
    """Reference data first, then each dataset by period and organisation; an original before
    its resubmissions (free text in natural order: _v2 before _v10).

    The order depends only on names, so a folder loads the same whatever order its files
    arrived in.
    """
    try:
        name = parse_file_name(path.name)
    except FileRejected:
        return (9, "", "", "", (), path.name)
    # (0, number) sorts before (1, text), so mixed free texts compare without a TypeError
    free = tuple((0, int(t), "") if t.isdigit() else (1, 0, t.lower())
                 for t in _NATURAL.split(name.free_text or "") if t)
    return (DATASET_ORDER[name.dataset], name.period or name.edition or "", name.dataset,
            name.org_code.upper(), (name.free_text is not None,) + free, path.name)


def sha256_of(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


def inspect(con: duckdb.DuckDBPyConnection, path: Path) -> LandingFile:
    """Hash the file, parse its name and read its header, without loading it."""
    stat = path.stat()       # before hashing: a file changed meanwhile is hashed again next run
    item = LandingFile(path, sha256_of(path), stat.st_size, stat.st_mtime_ns)
    try:
        item.name = parse_file_name(path.name)
    except FileRejected as rejected:
        item.name_error = rejected
        item.published_dataset = published.detect_published(path)
    try:
        item.columns = header_of(con, path)
    except duckdb.Error as error:
        item.read_error = first_line(error)
    return item


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:300]


def seen_files(con: duckdb.DuckDBPyConnection) -> set[tuple[str, bytes]]:
    """(name, SHA-256) of every file seen before: the same name and bytes again is not news."""
    return set(con.execute("select file_name, sha256 from files").fetchall())


def files_to_inspect(con: duckdb.DuckDBPyConnection, landing: Path,
                     seen: set[tuple[str, bytes]]) -> list[Path]:
    """Landing files that may be new: every file except those with the name, size and
    modification time they had when hashed, if that hash was seen."""
    known = {}
    if relation_exists(con, "landing_stats"):
        known = {(name, size, mtime): digest for name, size, mtime, digest in con.execute(
            "select file_name, size_bytes, mtime_ns, sha256 from landing_stats").fetchall()}
    paths = []
    for path in landing_files(landing):
        stat = path.stat()
        digest = known.get((path.name, stat.st_size, stat.st_mtime_ns))
        if digest is None or (path.name, digest) not in seen:
            paths.append(path)
    return paths


def remember_stats(con: duckdb.DuckDBPyConnection, items: list[LandingFile]) -> None:
    """Record the size and modification time of files whose hash is now in `files`."""
    if items:       # one statement for many files: each statement costs milliseconds
        con.execute("insert or replace into landing_stats values "
                    + ", ".join("(?, ?, ?, ?)" for _ in items),
                    [v for i in items for v in (i.file_name, i.size, i.mtime_ns, i.sha256)])


def require_pseudo_key(items: list[LandingFile], pseudo_key: str | None) -> None:
    """Stop before loading anything when NHS numbers arrive and there is no key for them."""
    if pseudo_key:
        return
    holders = [i.file_name for i in items
               if i.columns and "NEWNHSNO" in {c.strip().upper() for c in i.columns}]
    if holders:
        raise PseudoKeyMissing(
            f"{holders[0]}{f' and {len(holders) - 1} more files' if len(holders) > 1 else ''} "
            "hold NHS numbers (NEWNHSNO) but JOINEDUP_PSEUDO_KEY is not set, so they cannot be "
            "pseudonymised; nothing was loaded. Set it to your organisation's secret key, e.g. "
            "`export JOINEDUP_PSEUDO_KEY=...` (keep the same key for every run), and run again.")


# ---------------------------------------------------------------- reading


def _reader_sql(path: Path, *, header_only: bool = False) -> str:
    """A DuckDB table expression that reads the file with every column as text."""
    lower = path.name.lower()
    quoted = str(path).replace("'", "''")
    if lower.endswith(".parquet"):
        return f"read_parquet('{quoted}', file_row_number = true)"
    rejects = "" if header_only else ", store_rejects = true, rejects_limit = 0"
    return (f"read_csv('{quoted}', delim = ',', quote = '\"', escape = '\"', "
            f"auto_detect = false{rejects}{_csv_columns(path)})")


def _parquet_as_text(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """Each Parquet column as the text a CSV would hold: a date-time at midnight as its date
    (writers store dates as timestamps), and a whole float as an integer (pandas writes an
    integer column with gaps as float64, so an age 70 arrives as 70.0)."""
    exprs = []
    for name, type_ in con.execute(f"select column_name, column_type from (describe select * "
                                   f"from {_reader_sql(path, header_only=True)})").fetchall():
        if name == "file_row_number":
            continue
        col = '"' + name.replace('"', '""') + '"'
        if type_.startswith("TIMESTAMP") or type_ == "DATE":
            text = (f"case when {col}::date = {col} then strftime({col}::date, '%Y-%m-%d') "
                    f"else {col}::varchar end")
        elif type_ in ("DOUBLE", "FLOAT") or type_.startswith("DECIMAL"):
            text = (f"coalesce(case when {col} = trunc({col}) then try_cast({col} as hugeint)::varchar end, "
                    f"{col}::varchar)")
        else:
            text = f"{col}::varchar"
        exprs.append(f"{text} as {col}")
    return ", ".join(exprs)


def _csv_columns(path: Path) -> str:
    """Column names from the header line, so the CSV reader never has to guess them."""
    names = _csv_header(path)
    if not names:
        raise duckdb.InvalidInputException(
            "its first line is empty: the header row must be the first line"
            if _has_text_after_first_line(path) else "the file is empty: it has no header row")
    seen: dict[str, int] = {}
    cols = []
    for position, name in enumerate(names, start=1):
        # DuckDB needs a name for every column and compares names ignoring case; an empty
        # name (a trailing comma in the header) is a column the contract does not use
        name = name or f"__unnamed_{position}"
        seen[name.upper()] = seen.get(name.upper(), 0) + 1
        unique = name if seen[name.upper()] == 1 else f"{name}__{seen[name.upper()]}"
        cols.append(f"'{unique.replace(chr(39), chr(39) * 2)}': 'VARCHAR'")
    return ", skip = 1, header = false, columns = {" + ", ".join(cols) + "}"


def _opener(path: Path):
    return gzip.open if path.name.lower().endswith(".gz") else open


def _has_text_after_first_line(path: Path) -> bool:
    try:
        with _opener(path)(path, "rb") as handle:
            handle.readline(1 << 20)
            return handle.read(1 << 16).strip() != b""
    except (OSError, EOFError):
        return False


def _csv_header(path: Path) -> list[str]:
    opener = _opener(path)
    try:
        with opener(path, "rb") as handle:
            raw = handle.readline(1 << 20)
    except (OSError, EOFError) as error:
        raise duckdb.IOException(f"cannot read the file: {error}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise duckdb.InvalidInputException("the header is not UTF-8 text") from None
    if "\r" in text.rstrip("\r\n"):
        raise duckdb.InvalidInputException(
            "its lines end in a carriage return only (an old Mac format); save it with LF or "
            "CRLF line endings")
    try:
        row = next(csv.reader(io.StringIO(text)), [])
    except csv.Error as error:
        raise duckdb.InvalidInputException(f"the header line cannot be read: {error}") from None
    return [c.strip() for c in row]


def header_of(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    if path.name.lower().endswith(".parquet"):
        rel = con.execute(f"select * from {_reader_sql(path, header_only=True)} limit 0")
        return [d[0] for d in rel.description if d[0] != "file_row_number"]
    return _csv_header(path)


def read_into_src(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[int, int]:
    """Read the file into temp table `src` (line_number + text columns) and `src_rejects`.

    Returns (rows read, malformed lines). Lines the CSV parser cannot split into the header's
    columns go to `src_rejects` with their data-line number.
    """
    # The CSV reader appends to these temporary tables; start each file with them empty.
    drop_working_tables(con)
    if path.name.lower().endswith(".parquet"):
        con.execute(f"create temp table src as select file_row_number + 1 as line_number, "
                    f"{_parquet_as_text(con, path)} from {_reader_sql(path)}")
        con.execute("create temp table src_rejects (line_number bigint, detail varchar)")
    else:
        con.execute(f"create temp table src as select row_number() over () as line_number, * "
                    f"from {_reader_sql(path)}")
        _collect_rejects(con)
    read = con.execute("select count(*) from src").fetchone()[0]
    bad = con.execute("select count(*) from src_rejects").fetchone()[0]
    return read, bad


def drop_working_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The temporary tables a load works in hold rows as read, NHS numbers included."""
    con.execute("drop table if exists src; drop table if exists src_rejects; "
                "drop table if exists reject_errors; drop table if exists reject_scans; "
                "drop table if exists checked")


def _collect_rejects(con: duckdb.DuckDBPyConnection) -> None:
    """Copy the parser's rejects (temporary) and renumber good rows around them."""
    con.execute("""
        create temp table src_rejects as
        select line - 1 as line_number,
               string_agg(distinct error_type, ', ') as detail
        from reject_errors group by line
    """)
    if con.execute("select count(*) from src_rejects").fetchone()[0] == 0:
        return
    # Good rows were numbered 1..n in file order; shift each past the rejected lines before it.
    con.execute("""
        create or replace temp table src as
        with lines as (
            select l as line_number, row_number() over (order by l) as seq
            from range(1, (select count(*) from src) + (select count(*) from src_rejects) + 1) t(l)
            where l not in (select line_number from src_rejects)
        )
        select lines.line_number, src.* exclude (line_number)
        from src join lines on src.line_number = lines.seq
    """)


# ---------------------------------------------------------------- judging files in batches
#
# Planning the row-rule query costs about as much as running it on a month's file of one
# provider (0.1-0.4 s), and a national folder holds thousands of such files. So consecutive
# files of one dataset are read one by one into one working table and judged by one query;
# each file is then still written in its own transaction (`_load_rows`), from its part of
# the result. A file that cannot be read or lacks a column is left out of the batch and takes
# the one-file path, which says why.

BATCH_BYTES = 256 * 1024 ** 2      # file bytes judged at once, at most
BATCH_MEMORY_SHARE = 32            # ... and at most this fraction of DuckDB's memory limit
BATCH_FILES = 500
BATCH_TABLES = ("batch_src", "batch_rejects", "checked_batch")
_SIZE = re.compile(r"([0-9.]+)\s*([KMGT]?)(i?)B", re.IGNORECASE)


def batch_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """How many bytes of files to judge at once: the text, its typed copy and the query's
    working memory must fit well within the memory limit, or the query fails instead of
    spilling (a window and a join over the batch)."""
    match = _SIZE.fullmatch(str(con.execute("select current_setting('memory_limit')").fetchone()[0]).strip())
    if not match:
        return BATCH_BYTES
    number, unit, binary = match.groups()
    limit = float(number) * (1024 if binary else 1000) ** "BKMGT".index(unit.upper() or "B")
    return max(1, min(BATCH_BYTES, int(limit // BATCH_MEMORY_SHARE)))


def _batches(items: list[LandingFile], limit: int = BATCH_BYTES) -> list[list[LandingFile]]:
    """Consecutive files of the same dataset, up to `limit` bytes and BATCH_FILES each."""
    batches: list[list[LandingFile]] = []
    size = 0
    for item in items:
        dataset = item.name.dataset if item.name else None
        last = batches[-1] if batches else None
        if (last and dataset and last[0].name and last[0].name.dataset == dataset
                and size + item.size <= limit and len(last) < BATCH_FILES):
            last.append(item)
            size += item.size
        else:
            batches.append([item])
            size = item.size
    return batches


def _batchable(item: LandingFile) -> bool:
    return bool(item.name and not item.name_error and not item.read_error
                and not item.published_dataset and item.name.dataset in DATASETS)


def drop_batch_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The batch's working tables hold rows as read, NHS numbers included."""
    con.execute("; ".join(f"drop table if exists {t}" for t in BATCH_TABLES))


def _judge_batch(con: duckdb.DuckDBPyConnection, items: list[LandingFile],
                 pseudo_key: str | None) -> None:
    """Read the batch's files into `batch_src` (contract column names, text) and judge every
    row in one query into `checked_batch`; mark each file read with its key and counts."""
    candidates = [i for i in items if _batchable(i)]
    if len(candidates) < 2:
        return
    dataset = DATASETS[candidates[0].name.dataset]
    columns = list(dict.fromkeys([c.name for c in dataset.columns] + list(dataset.person_columns)))
    drop_batch_tables(con)
    con.execute("create temp table batch_src (file_key integer, file_org varchar, file_period date, "
                "line_number bigint, " + ", ".join(f'"{c}" varchar' for c in columns) + ")")
    con.execute("create temp table batch_rejects (file_key integer, line_number bigint, detail varchar)")
    for key, item in enumerate(candidates):
        try:
            read, malformed = read_into_src(con, item.path)
            _check_columns(con, item)
        except (duckdb.Error, FileRejected):
            continue            # its own load reads it again and records why it is rejected
        colmap = _column_map(con)
        values = ", ".join(f'src."{colmap[c]}"' if c in colmap else "null" for c in columns)
        con.execute(f"insert into batch_src select ?, ?, ?, line_number, {values} from src",
                    [key, item.name.org_code, item.name.period_start])
        con.execute("insert into batch_rejects select ?, line_number, detail from src_rejects", [key])
        item.batch = (key, read, malformed)
    drop_working_tables(con)
    sql = build_checked_sql(dataset, {c: c for c in columns}, org_code=None, period_start=None,
                            code_lists=_code_lists(con, dataset), batched=True, source="batch_src")
    params = {k: v for k, v in identifiers.key_parameters(pseudo_key).items() if f"${k}" in sql}
    # ordered by file, so that each file's part is read from its own row groups
    con.execute(f"create temp table checked_batch as select * from ({sql}) order by file_key, line_number",
                params)
    con.execute("drop table batch_src")


def _checked_from_batch(con: duckdb.DuckDBPyConnection, key: int) -> None:
    """`checked` and `src_rejects` of one file of the batch, as its one-file load makes them."""
    con.execute("create temp table checked as select * exclude (file_key) from checked_batch "
                "where file_key = ?", [key])
    con.execute("drop table if exists src_rejects")
    con.execute("create temp table src_rejects as select line_number, detail from batch_rejects "
                "where file_key = ?", [key])


# ---------------------------------------------------------------- loading one file


def load_landing(con: duckdb.DuckDBPyConnection, landing: Path, *, pseudo_key: str | None,
                 on_file: Callable[[LoadResult], None] | None = None) -> LoadSummary:
    """Load every new file in the landing folder; return what happened to each."""
    seen = seen_files(con)
    items = [inspect(con, p) for p in files_to_inspect(con, landing, seen)]
    new = [i for i in items if (i.file_name, i.sha256) not in seen]
    remember_stats(con, [i for i in items if (i.file_name, i.sha256) in seen])   # e.g. touched
    require_pseudo_key([i for i in new if not i.name_error], pseudo_key)
    summary = LoadSummary()
    for batch in _batches(new, batch_bytes(con)):
        try:
            _judge_batch(con, batch, pseudo_key)
            for item in batch:
                result = load_file(con, item, pseudo_key=pseudo_key)
                drop_working_tables(con)
                summary.results.append(result)
                if on_file:
                    on_file(result)
        finally:
            drop_batch_tables(con)
        # after the batch's files are committed (a file whose stats are lost to a crash is
        # only hashed again next run)
        remember_stats(con, batch)
    return summary


def load_file(con: duckdb.DuckDBPyConnection, item: LandingFile, *,
              pseudo_key: str | None) -> LoadResult:
    """Load one file in one transaction; a rejected file records why and loads nothing."""
    con.execute("begin transaction")
    try:
        result = _load_in_transaction(con, item, pseudo_key)
        con.execute("commit")
        return result
    except BaseException:
        con.execute("rollback")
        raise


def _load_in_transaction(con, item: LandingFile, pseudo_key: str | None) -> LoadResult:
    file_id = con.execute("select nextval('file_ids')").fetchone()[0]
    if _is_duplicate(con, item):
        return _record(con, file_id, item, LoadResult(item.file_name, "duplicate"))
    if item.published_dataset:
        return _load_published(con, file_id, item)
    if item.batch:      # read, checked and judged with its batch (`_judge_batch`)
        return _load_rows(con, file_id, item, item.batch[1] + item.batch[2], pseudo_key)
    try:
        _check_file(item)
        rows_in, malformed = read_into_src(con, item.path)
    except FileRejected as rejected:
        return _reject(con, file_id, item, rejected)
    except duckdb.Error as error:
        # A failed read aborts the transaction; start a clean one to record the rejection.
        con.execute("rollback")
        con.execute("begin transaction")
        return _reject(con, file_id, item, FileRejected("unreadable", first_line(error)))
    try:
        _check_columns(con, item)
    except FileRejected as rejected:
        return _reject(con, file_id, item, rejected, rows_readable=True)
    return _load_rows(con, file_id, item, rows_in + malformed, pseudo_key)


# What a person can do about each reason a whole file is rejected.
REJECTION_ADVICE = {
    "file_name": "rename it <dataset>_<org_code>_<YYYY-MM>[_<text>].csv, .csv.gz or .parquet "
                 "and put it in the landing folder again",
    "missing_column": "ask the sender for the file with every required column "
                      "(the contract, section 2), then put it in the landing folder again",
    "duplicate_column": "ask the sender to resend it with each column once",
    "unreadable": "check it is a UTF-8 CSV (optionally gzipped) or a Parquet file, and ask the "
                  "sender to resend it",
}


def rejection_reason(rejected: FileRejected) -> str:
    """The rule, what is wrong, and what to do about it."""
    advice = REJECTION_ADVICE.get(rejected.rule)
    return f"{rejected.rule}: {rejected.detail}" + (f"; to fix: {advice}" if advice else "")


def _is_duplicate(con, item: LandingFile) -> bool:
    """The same bytes as a file that loaded. Not a rejected file's bytes: they may come back
    under a corrected name, as the rejection advises. Not an empty return (header only) for
    another organisation or month either: it is a delivery of its own, with nothing in it."""
    identity = _ledger(item)[3]
    return con.execute(
        "select count(*) from files where sha256 = ? and status in ('loaded', 'superseded') "
        "and (rows_in > 0 or identity is not distinct from ?)",
        [item.sha256, identity]).fetchone()[0] > 0


def _check_file(item: LandingFile) -> None:
    if item.read_error:
        raise FileRejected("unreadable", item.read_error)
    if item.name_error:
        raise item.name_error


def _check_columns(con, item: LandingFile) -> None:
    dataset = DATASETS[item.name.dataset]
    names = [re.sub(r"__\d+$", "", n).strip().upper() for n in _column_map(con).values()]
    have = set(names)
    missing = [c for c in dataset.required if c not in have]
    if dataset.person_required and not have & set(dataset.person_columns):
        missing.append(" or ".join(dataset.person_columns))
    if missing:
        separator = next((s for s in (";", "\t", "|") if len(names) == 1 and s in names[0]), None)
        hint = (f" (the header is one column holding {separator!r}: the file looks separated by "
                f"{separator!r}; the contract asks for commas)") if separator else ""
        raise FileRejected("missing_column", f"required column {', '.join(missing)} is missing{hint}")
    duplicated = sorted({c for c in have if names.count(c) > 1})
    if duplicated:
        raise FileRejected("duplicate_column", f"column {', '.join(duplicated)} appears twice")


def _reject(con, file_id: int, item: LandingFile, rejected: FileRejected, *,
            rows_readable: bool = False) -> LoadResult:
    """A rejected file loads nothing; readable rows are all quarantined under its reason."""
    rows = 0
    if rows_readable:
        rows = _quarantine_all(con, file_id, item, rejected)
    elif item.name_error and not item.read_error:
        rows = _quarantine_unnamed(con, file_id, item, rejected)
    result = LoadResult(item.file_name, "rejected", rows, 0, rows, rejection_reason(rejected))
    return _record(con, file_id, item, result)


def _quarantine_unnamed(con, file_id: int, item: LandingFile, rejected: FileRejected) -> int:
    """A file with a bad name may still be readable: keep its rows for reprocessing."""
    try:
        read_into_src(con, item.path)
    except duckdb.Error:
        return 0
    return _quarantine_all(con, file_id, item, rejected)


def _quarantine_all(con, file_id: int, item: LandingFile, rejected: FileRejected) -> int:
    """Every row read from a rejected file, kept under the file's reason; returns the count."""
    con.execute("insert into quarantine_rows select ?, ?, line_number, ?, ? from "
                "(select line_number from src union all select line_number from src_rejects)",
                [file_id, item.file_name, rejected.rule, f"file rejected: {rejected.detail}"])
    return con.execute("select count(*) from quarantine_rows where file_id = ?",
                       [file_id]).fetchone()[0]


def _load_rows(con, file_id: int, item: LandingFile, rows_in: int,
               pseudo_key: str | None) -> LoadResult:
    dataset = DATASETS[item.name.dataset]
    period_start = item.name.period_start
    con.execute("drop table if exists checked")
    if item.batch:
        _checked_from_batch(con, item.batch[0])
    else:
        sql = build_checked_sql(dataset, _column_map(con), org_code=item.name.org_code,
                                period_start=period_start, code_lists=_code_lists(con, dataset))
        params = {k: v for k, v in identifiers.key_parameters(pseudo_key).items() if f"${k}" in sql}
        con.execute("create temp table checked as " + sql, params)
    _insert_raw(con, dataset, file_id, period_start)
    _record_months(con, dataset.name, file_id, period_start)
    _insert_quarantine(con, file_id, item.file_name)
    loaded, quarantined, invalid, no_person = con.execute("""
        select count(*) filter (where rule is null), count(*) filter (where rule is not null),
               count(*) filter (where rule is null and nhs_number_invalid),
               count(*) filter (where rule is null and person_id is null)
        from checked""").fetchone()
    quarantined += con.execute("select count(*) from src_rejects").fetchone()[0]
    _supersede(con, item)
    result = LoadResult(item.file_name, "loaded", rows_in, loaded, quarantined,
                        dataset=dataset.name, period=item.name.period)
    return _record(con, file_id, item, result, invalid=invalid, no_person=no_person)


def _code_lists(con, dataset: Dataset) -> dict[str, list[str]]:
    """The valid codes of each coded column, read from the sql/reference code-list tables."""
    return {c.codes: [r[0] for r in con.execute(
                f"select distinct upper(trim(code)) from ref_{c.codes} order by 1").fetchall()]
            for c in dataset.columns if c.codes}


def _column_map(con) -> dict[str, str]:
    """Upper-cased, trimmed contract name -> the column's name in `src`."""
    names = [d[0] for d in con.execute("select * from src limit 0").description]
    return {n.strip().upper(): n for n in names if n != "line_number"}


def _insert_raw(con, dataset: Dataset, file_id: int, period_start: date | None) -> None:
    table = f"raw_{dataset.name}"
    columns = [d[0] for d in con.execute(f"select * from {table} limit 0").description]
    values = [c for c in columns if c not in ("file_id", "period")]
    # A periodic extract's rows carry the file's period; a plan row carries its own PERIOD.
    period = ["period"] if "period" in columns else []
    period_value = ["PERIOD_DATE"] if dataset.name == "plan" else ["?"] if period else []
    con.execute(
        f"insert into {table} (file_id, {', '.join(period + values)}) "
        f"select ?, {', '.join(period_value + values)} from checked where rule is null "
        "order by line_number",
        [file_id] + ([period_start] if period_value == ["?"] else []))


# Which months a file can change. An apc file holds every spell open in its period, so it can
# change every month since its earliest admission, and the month before its period through
# readmissions (an admission in the period can readmit a discharge up to 29 days earlier).
_MONTHS_SQL = {
    "apc": """select distinct m::date from (
                  select least(date_trunc('month', min(admidate)), ?::date - interval 1 month) as lo
                  from raw_apc where file_id = ?) b,
              generate_series(b.lo, ?::date, interval 1 month) g(m)""",
    "reablement": "select distinct date_trunc('month', hosp_discharge_date) "
                  "from raw_reablement where file_id = ?",
    "carehome": "select distinct date_trunc('month', admission_date) from raw_carehome where file_id = ?",
    "plan": "select distinct period from raw_plan where file_id = ?",
}


def _record_months(con, dataset: str, file_id: int, period_start: date | None) -> None:
    if dataset not in _MONTHS_SQL:
        con.execute("insert into file_months values (?, null)", [file_id])
        return
    params = [period_start, file_id, period_start] if dataset == "apc" else [file_id]
    con.execute(f"insert into file_months select ?, * from ({_MONTHS_SQL[dataset]})",
                [file_id] + params)


def _insert_quarantine(con, file_id: int, file_name: str) -> None:
    con.execute("""
        insert into quarantine_rows
        select ?, ?, line_number, rule, detail from checked where rule is not null
        union all
        select ?, ?, line_number, 'malformed_row',
               case when detail like '%INVALID ENCODING%'
                    then 'the line is not UTF-8 text (' || detail || '); the file must be saved as UTF-8'
                    else 'the line does not split into the header''s columns (' || detail || ')' end
        from src_rejects
    """, [file_id, file_name, file_id, file_name])


def _supersede(con, item: LandingFile) -> None:
    """A resubmission replaces the earlier file's rows entirely; its counts stay in the log."""
    _supersede_identity(con, item.name.dataset, "|".join(str(x) for x in item.name.identity))


def _supersede_identity(con, dataset: str, identity: str) -> None:
    old = [r[0] for r in con.execute(
        "select file_id from files where identity = ? and status = 'loaded'", [identity]).fetchall()]
    for file_id in old:
        con.execute(f"delete from raw_{dataset} where file_id = ?", [file_id])
        con.execute("update files set status = 'superseded' where file_id = ?", [file_id])


def _ledger(item: LandingFile) -> tuple[str | None, str | None, str | None, str | None]:
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


def _record(con, file_id: int, item: LandingFile, result: LoadResult, *, invalid: int = 0,
            no_person: int = 0) -> LoadResult:
    dataset, org_code, period, identity = _ledger(item)
    con.execute(
        "insert into files (file_id, file_name, sha256, dataset, org_code, period, identity, "
        "status, rows_in, rows_loaded, rows_quarantined, reason, invalid_nhs_numbers, "
        "missing_person_ids) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [file_id, item.file_name, item.sha256, dataset, org_code, period, identity,
         result.status, result.rows_in, result.rows_loaded, result.rows_quarantined,
         result.reason, invalid, no_person])
    result.dataset, result.period = dataset, period
    return result


# ---------------------------------------------------------------- published files


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
    _supersede_identity(con, pub.dataset, pub.identity)
    result = LoadResult(item.file_name, "loaded", pub.rows_in, pub.rows_loaded + pub.check_rows,
                        len(pub.quarantined))
    return _record(con, file_id, item, result)


def _reject_published(con, file_id: int, item: LandingFile, rejected: FileRejected) -> LoadResult:
    """A published file that cannot be loaded: its data records (if readable) are quarantined."""
    rows = published.data_records(item.path)
    con.execute("insert into quarantine_rows select ?, ?, l, ?, ? from range(1, ? + 1) t(l)",
                [file_id, item.file_name, rejected.rule, f"file rejected: {rejected.detail}", rows])
    result = LoadResult(item.file_name, "rejected", rows, 0, rows, rejection_reason(rejected))
    return _record(con, file_id, item, result)


def _insert_published_rows(con, file_id: int, pub: published.PublishedFile) -> None:
    table = f"raw_{pub.dataset}"
    types = dict(con.execute(f"select column_name, column_type from (describe {table})").fetchall())
    columns = [c for c in pub.rows.columns if c in types]
    con.register("published_rows", pub.rows.to_arrow())
    try:
        con.execute(
            f"insert into {table} (file_id, {', '.join(columns)}) select ?, "
            + ", ".join(f'"{c}"::{types[c]}' for c in columns)
            + " from published_rows order by line_number", [file_id])
    finally:
        con.unregister("published_rows")


def _record_published_months(con, file_id: int, pub: published.PublishedFile) -> None:
    """The months the rows cover; none (ONS population): every month, like `population`."""
    months = [month_start(p) for p in pub.periods] or [None]
    con.executemany("insert into file_months values (?, ?)", [[file_id, m] for m in months])


def _insert_published_checks(con, file_id: int, pub: published.PublishedFile) -> None:
    rows = [[file_id, c["check"], c.get("column"), _as_count(c.get("published")),
             _as_count(c.get("computed")), bool(c["ok"]), _check_detail(c)] for c in pub.checks]
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
