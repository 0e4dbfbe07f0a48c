"""Step 4, judge: the dataset's row rules (flows/ingest/rules.py) over the rows of one file, or of
a batch of files at once.

Planning the row-rule query costs about as much as running it on a month's file of one provider
(0.1-0.4 s), and a national folder holds thousands of such files. So consecutive files of one
dataset are judged by one query: CSV files whose headers are alike are read by one read_csv
inside it, others (Parquet, a file a shared read cannot take) one by one into `batch_src`.
A file that cannot be read or lacks a column is left out of the batch and takes the one-file
path, which says why.
"""
from __future__ import annotations

import logging
import re
import zlib

import duckdb

from flows.db import relation_exists
from flows.errors import FileRejected
from flows.ingest import identifiers
from flows.ingest.datasets import DATASETS, Dataset
from flows.ingest.inspection import BatchPart, LandingFile
from flows.ingest.reading import (
    csv_reader_sql,
    drop_working_tables,
    duckdb_path,
    file_opener,
    read_into_src,
    src_column,
)
from flows.ingest.rules import build_checked_sql

log = logging.getLogger("joinedup.loader")

BATCH_BYTES = 256 * 1024 ** 2      # file bytes judged at once, at most
BATCH_MEMORY_SHARE = 32            # ... and at most this fraction of DuckDB's memory limit
BATCH_FILES = 500
BATCH_TABLES = ("batch_src", "batch_rejects", "batch_files", "checked_batch", "run_files")
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


def batches_of(items: list[LandingFile], limit: int = BATCH_BYTES) -> list[list[LandingFile]]:
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
    return bool(item.name and not item.name_error and not item.read_error and not item.rejection
                and not item.published_dataset and item.name.dataset in DATASETS)


def judge_batch_or_not(con, items: list[LandingFile], pseudo_key: str | None) -> None:
    """Judging a batch in one query only saves time: if it fails in any way, each file of the
    batch is read and judged on its own, where a failure rejects that file alone."""
    try:
        _judge_batch(con, items, pseudo_key)
    except Exception:   # noqa: BLE001 - the files' own loads say what is wrong with them
        log.debug("batch of %d files judged file by file instead", len(items), exc_info=True)
        for item in items:
            item.batch = None
        quietly(drop_batch_tables, con)
        quietly(drop_working_tables, con)


def quietly(step, con) -> None:
    """Drop working tables; a failure only leaves temp tables that go with the connection."""
    try:
        step(con)
    except duckdb.Error:
        pass


def plan_metric_ids(dataset: Dataset) -> list[str] | None:
    """For a plan, the metric ids joinedup has (a row naming another is quarantined)."""
    return metric_ids() if dataset.name == "plan" else None


def metric_ids() -> list[str]:
    """The metric ids joinedup has: those in the headers of sql/metrics/*.sql, local metrics
    (one more SQL file) included. Read at call time, so a metric added is known at once."""
    from flows.models import runner  # the model reader; imported here as it is needed only for plans

    return sorted({m.header["metric_id"] for m in runner.load_project().metrics
                   if m.header.get("metric_id")})


def code_lists(con, dataset: Dataset) -> dict[str, list[str]]:
    """The valid codes of each coded column, read from the sql/reference code-list tables."""
    return {c.codes: [r[0] for r in con.execute(
                f"select distinct upper(trim(code)) from ref_{c.codes} order by 1").fetchall()]
            for c in dataset.columns if c.codes}


def column_map(con) -> dict[str, str]:
    """Upper-cased, trimmed name as the sender wrote it -> the column's name in `src`.
    The first of two columns with the same name wins (the file is rejected for it anyway)."""
    columns: dict[str, str] = {}
    for position, header in con.execute(
            "select position, header from src_columns order by position").fetchall():
        columns.setdefault(header.upper(), src_column(position))
    return columns


def drop_batch_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The batch's working tables hold rows as read, NHS numbers included."""
    shared = [r[0] for r in con.execute("select table_name from duckdb_tables() where temporary "
                                        "and table_name like 'shared\\_read\\_%' escape '\\'").fetchall()]
    con.execute("; ".join(f"drop table if exists {t}" for t in [*BATCH_TABLES, *shared]))


def _judge_batch(con: duckdb.DuckDBPyConnection, items: list[LandingFile],
                 pseudo_key: str | None) -> None:
    """Judge every row of the batch's files in one query into `checked_batch` (with each row's
    `file_key`); mark each file judged with its key and counts.

    CSV files whose header lines are alike are read by one read_csv of them all, inside the
    query, so their text is never copied; a file the parser finds a malformed line in is left
    to its own load (which numbers the lines around it). Other files (Parquet, a file a shared
    read cannot take) are read one by one into `batch_src` first."""
    candidates = [i for i in items if _batchable(i)]
    if not candidates:
        return
    dataset = DATASETS[candidates[0].name.dataset]
    columns = list(dict.fromkeys([c.name for c in dataset.columns] + list(dataset.person_columns)))
    drop_batch_tables(con)
    con.execute("create temp table batch_src (file_key integer, file_org varchar, file_period date, "
                "line_number bigint, " + ", ".join(f'"{c}" varchar' for c in columns) + ")")
    con.execute("create temp table batch_rejects (file_key integer, line_number bigint, detail varchar)")
    shared: dict[tuple, list[tuple[int, LandingFile]]] = {}
    for key, item in enumerate(candidates):
        shape = _shared_read_shape(dataset, item)
        if shape:
            shared.setdefault(shape, []).append((key, item))
        else:
            _read_into_batch(con, key, item, columns)
    drop_working_tables(con)
    _register_batch_files(con, [m for members in shared.values() for m in members])
    sources = ["select * from batch_src"] + [_shared_read(con, n, shape, [i for _, i in members], columns)
                                              for n, (shape, members) in enumerate(shared.items())]
    sql = build_checked_sql(dataset, {c: c for c in columns}, org_code=None, period_start=None,
                            code_lists=code_lists(con, dataset), metric_ids=plan_metric_ids(dataset),
                            batched=True, source="(" + " union all ".join(sources) + ")")
    params = {k: v for k, v in identifiers.key_parameters(pseudo_key).items() if f"${k}" in sql}
    con.execute(f"create temp table checked_batch as {sql}", params)
    _count_shared_reads(con, [m for members in shared.values() for m in members])
    for table in ["batch_src"] + [f"shared_read_{n}" for n in range(len(shared))]:
        con.execute(f"drop table {table}")      # rows as read, NHS numbers included


def _read_into_batch(con, key: int, item: LandingFile, columns: list[str]) -> None:
    """One file read on its own (`read_into_src`) and copied into `batch_src`."""
    try:
        read, malformed = read_into_src(con, item.path)
        check_columns(con, item)
    except Exception:   # noqa: BLE001 - its own load reads it again and says why it fails
        return
    colmap = column_map(con)
    values = ", ".join(f'src."{colmap[c]}"' if c in colmap else "null" for c in columns)
    con.execute(f"insert into batch_src select ?, ?, ?, line_number, {values} from src",
                [key, item.name.org_code, item.name.period_start])
    con.execute("insert into batch_rejects select ?, line_number, detail from src_rejects", [key])
    item.batch = BatchPart(key, read, malformed)


def _shared_read_shape(dataset: Dataset, item: LandingFile) -> tuple | None:
    """What a CSV file's read depends on (its header as written, compression, line ending):
    files of one shape are read by one read_csv. None: read the file on its own (Parquet, or
    a header that lacks a column, which its own load reports)."""
    lower = item.path.name.lower()
    if lower.endswith(".parquet") or not item.columns:
        return None
    try:
        _require_columns(dataset, item.columns)
        with file_opener(item.path)(item.path, "rb") as handle:
            crlf = handle.readline(1 << 20).endswith(b"\r\n")
    except (FileRejected, OSError, EOFError, zlib.error):
        return None
    return tuple(item.columns), lower.endswith(".gz"), crlf


def _register_batch_files(con, members: list[tuple[int, LandingFile]]) -> None:
    """`batch_files`: the path DuckDB reads each file by, with its key, organisation, period."""
    con.execute("create temp table batch_files (path varchar, file_key integer, file_org varchar, "
                "file_period date)")
    if members:
        con.execute("insert into batch_files values " + ", ".join("(?, ?, ?, ?)" for _ in members),
                    [v for key, item in members
                     for v in (duckdb_path(item.path), key, item.name.org_code, item.name.period_start)])


def _shared_read(con, n: int, shape: tuple, paths: list[LandingFile], columns: list[str]) -> str:
    """Read the files of one shape into the temp table `shared_read_<n>` and return the SQL of
    their rows as `batch_src` holds them, numbered by the table's rowid.

    A CREATE TABLE AS keeps the rows in read order (file order, and line order within each
    file) while the files are read in parallel; numbering them inside the query instead
    (`row_number() over ()`) kept the read on one thread, and cost more than this copy. A
    file's first row has the lowest number (see BatchPart.line_offset)."""
    headers = shape[0]
    colmap: dict[str, str] = {}
    for position, header in enumerate(headers, start=1):
        colmap.setdefault(header.upper(), src_column(position))
    table = f"shared_read_{n}"
    con.execute(f"create or replace temp table {table} as select * from "
                f"{csv_reader_sql([i.path for i in paths], len(headers), filename=True)}")
    values = ", ".join(f'r."{colmap[c]}" as "{c}"' if c in colmap else f'null as "{c}"' for c in columns)
    return (f"select f.file_key, f.file_org, f.file_period, "
            f"r.rowid + 1 as line_number, {values} "
            f"from {table} as r join batch_files as f on f.path = r.filename")


def _count_shared_reads(con, members: list[tuple[int, LandingFile]]) -> None:
    """Mark each file of a shared read judged, with its count of rows; a file with a line
    the parser rejected is left to its own load."""
    if not members:
        return
    malformed = {path for (path,) in con.execute(
        "select distinct s.file_path from reject_errors e join reject_scans s "
        "on e.scan_id = s.scan_id and e.file_id = s.file_id").fetchall()} if relation_exists(
        con, "reject_errors") else set()
    rows = {key: (count, first) for key, count, first in con.execute(
        "select file_key, count(*), min(line_number) from checked_batch group by 1").fetchall()}
    for key, item in members:
        if duckdb_path(item.path) not in malformed:
            count, first = rows.get(key, (0, 1))
            item.batch = BatchPart(key, count, 0, first - 1)


def checked_from_batch(con: duckdb.DuckDBPyConnection, part: BatchPart) -> None:
    """`checked` and `src_rejects` of one file of the batch, as its one-file load makes them."""
    con.execute("create temp table checked as select * exclude (file_key) "
                "replace (line_number - ? as line_number) from checked_batch where file_key = ?",
                [part.line_offset, part.key])
    con.execute("drop table if exists src_rejects")
    con.execute("create temp table src_rejects as select line_number, detail from batch_rejects "
                "where file_key = ?", [part.key])


def check_columns(con, item: LandingFile) -> None:
    _require_columns(DATASETS[item.name.dataset], [h for (h,) in con.execute(
        "select header from src_columns order by position").fetchall()])


def _require_columns(dataset: Dataset, headers: list[str]) -> None:
    """The header (names as written, trimmed) has every required column, each once."""
    names = [h.upper() for h in headers]
    have = set(names)
    missing = [c for c in dataset.required if c not in have]
    if dataset.person_required and not have & set(dataset.person_columns):
        missing.append(" or ".join(dataset.person_columns))
    if missing:
        separator = next((s for s in (";", "\t", "|") if len(names) == 1 and s in names[0]), None)
        hint = (f" (the header is one column holding {separator!r}: the file looks separated by "
                f"{separator!r}; the contract asks for commas)") if separator else ""
        raise FileRejected("missing_column", f"required column {', '.join(missing)} is missing{hint}")
    duplicated = sorted({c for c in have if c and names.count(c) > 1})
    if duplicated:
        raise FileRejected("duplicate_column", f"column {', '.join(duplicated)} appears twice")
