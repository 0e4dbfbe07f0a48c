"""Load landing files into DuckDB: one transaction per file, every input row accounted for.

For each new file: parse its name, read it (CSV, gzipped CSV or Parquet) as text, check its
columns, apply the dataset's row rules in one SQL pass, pseudonymise NHS numbers, then write the
loaded rows, the quarantined rows and the file's ledger row in a single transaction.

A file whose name does not parse may be one NHS England or ONS published (flows/ingest/published/):
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
import logging
import os
import re
import shutil
import stat as stat_kind
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import duckdb

from flows.db import relation_exists, rollback_quietly
from flows.errors import FileRejected, PseudoKeyMissing
from flows.ingest import identifiers, published
from flows.ingest.datasets import DATASETS, Dataset
from flows.ingest.naming import (
    PERIODIC_DATASETS,
    REFERENCE_DATASETS,
    FileName,
    display_name,
    parse_file_name,
)
from flows.ingest.rules import build_checked_sql
from flows.months import month_start

log = logging.getLogger("joinedup.loader")

# Reference data loads first so that every periodic file can be checked against it.
DATASET_ORDER = {name: i for i, name in enumerate(REFERENCE_DATASETS[::-1] + PERIODIC_DATASETS)}
_NATURAL = re.compile(r"(\d+)")


class BatchPart(NamedTuple):
    """A file's rows in the judged batch (`checked_batch`)."""
    key: int                # file_key
    rows: int               # rows read
    malformed: int          # lines the CSV parser rejected (in `batch_rejects`)
    line_offset: int = 0    # line_number in the batch - the line's number in the file


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
    # Why the file is rejected before anything reads it (a link, a file that cannot be hashed)
    rejection: FileRejected | None = None
    stage: str = "inspecting it"            # what the loader was doing, for a failure's reason
    batch: BatchPart | None = None          # its part of the batch judged at once (`_judge_batch`)

    @property
    def file_name(self) -> str:
        """The name as stored and shown: readable, never an NHS number (see display_name)."""
        return display_name(self.path.name)


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
    # Entries of the landing folder that are not files to load: kind -> names (display form)
    skipped: dict[str, list[str]] = field(default_factory=dict)


# ---------------------------------------------------------------- discovering files

# What is skipped without a record in `files`, by kind, as the run summary names them.
SKIPPED_KINDS = ("hidden", "folder", "special")


@dataclass
class LandingScan:
    files: list[Path] = field(default_factory=list)     # regular files, in load order
    links: list[Path] = field(default_factory=list)     # symbolic links: rejected, never followed
    skipped: dict[str, list[str]] = field(default_factory=dict)


def scan_landing(landing: Path) -> LandingScan:
    """Sort the landing folder's entries by what they are, without following any link.

    Hidden entries (a name starting with '.', such as editor and sync files), sub-folders and
    special files (FIFOs, sockets, devices: opening a FIFO would wait forever) are skipped and
    counted; a symbolic link is rejected, so nothing outside the folder is ever read.
    """
    scan = LandingScan()
    if not landing.is_dir():
        return scan
    for path in landing.iterdir():
        try:
            mode = path.lstat().st_mode
        except OSError:
            continue            # gone since the folder was listed
        if path.name.startswith("."):
            kind = "hidden"
        elif stat_kind.S_ISLNK(mode):
            scan.links.append(path)
            continue
        elif stat_kind.S_ISDIR(mode):
            kind = "folder"
        elif stat_kind.S_ISREG(mode):
            scan.files.append(path)
            continue
        else:
            kind = "special"
        scan.skipped.setdefault(kind, []).append(display_name(path.name))
    scan.files.sort(key=_load_order)
    scan.links.sort(key=lambda p: os.fsencode(p.name))
    for names in scan.skipped.values():
        names.sort()
    return scan


def landing_files(landing: Path) -> list[Path]:
    """Data files in the landing folder, in the order they must load (see `_load_order`)."""
    return scan_landing(landing).files


def _load_order(path: Path) -> tuple:
    """Reference data first, then each dataset by period and organisation; an original before
    its resubmissions (free text in natural order: _v2 before _v10).

    The order depends only on names, so a folder loads the same whatever order its files
    arrived in.
    """
    try:
        name = parse_file_name(path.name)
    except Exception:   # noqa: BLE001 - a name that cannot be parsed loads last (and is rejected)
        return (9, "", "", "", (), os.fsencode(path.name))
    # (0, number) sorts before (1, text), so mixed free texts compare without a TypeError
    free = tuple((0, int(t), "") if t.isdigit() else (1, 0, t.lower())
                 for t in _NATURAL.split(name.free_text or "") if t)
    return (DATASET_ORDER[name.dataset], name.period or name.edition or "", name.dataset,
            name.org_code.upper(), (name.free_text is not None,) + free, os.fsencode(path.name))


def sha256_of(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


# The digest recorded for an entry whose bytes are never read (a link) or cannot be read.
_NO_BYTES = hashlib.sha256(b"").digest()


def inspect(con: duckdb.DuckDBPyConnection, path: Path) -> LandingFile:
    """Hash the file, parse its name and read its header, without loading it.

    Nothing here stops the run: a step that fails, however it fails, leaves the reason on the
    item and the file is rejected with it when its turn comes to load.
    """
    item = LandingFile(path, _NO_BYTES, stage="reading it to compute its SHA-256")
    try:
        stat = path.stat()   # before hashing: a file changed meanwhile is hashed again next run
        item.sha256, item.size, item.mtime_ns = sha256_of(path), stat.st_size, stat.st_mtime_ns
        item.stage = "reading its name"
        try:
            item.name = parse_file_name(path.name)
        except FileRejected as rejected:
            item.name_error = rejected
        item.stage = "checking its gzip stream"
        damage = gzip_damage(path)
        if damage:      # nothing reads it further, as a published file or as an extract
            item.rejection = FileRejected("unreadable", damage)
            return item
        if item.name_error:
            item.stage = "checking whether it is a file NHS England or ONS publish"
            item.published_dataset = published.detect_published(path)
    except Exception as error:      # noqa: BLE001 - any failure rejects this file only
        item.rejection = failure_rejection(item, error)
        return item
    item.stage = "reading its header"
    try:
        item.columns = header_of(con, path)
    except Exception as error:      # noqa: BLE001 - zlib.error, RuntimeError, MemoryError ...
        item.read_error = plain_cause(error, path)
    return item


def inspect_link(path: Path, landing: Path) -> LandingFile:
    """A symbolic link is rejected without reading what it points to."""
    try:
        target = os.readlink(path)
        folder = os.path.normpath(landing.absolute())
        inside = os.path.dirname(os.path.normpath(os.path.join(folder, target))) == folder
    except (OSError, ValueError):
        target, inside = "", False
    where = "to another file in the landing folder" if inside else "outside the landing folder"
    digest = hashlib.sha256(b"symlink\0" + os.fsencode(target)).digest()
    item = LandingFile(path, digest)
    item.rejection = FileRejected(
        "symbolic_link", f"it is a symbolic link (pointing {where}); links are never followed")
    return item


def gzip_damage(path: Path) -> str | None:
    """What is wrong with a .gz file's compressed stream, or None when it is whole.

    DuckDB's reader does not check a gzip member's CRC, so a damaged stream can decompress to
    plausible rows; the whole stream is checked here first (in C, at disk speed), and a file
    that fails is rejected rather than loaded with altered values.
    """
    if not path.name.lower().endswith(".gz"):
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read(1 << 20)
            if not data:
                return "the file is empty: it holds no gzip data"
            while data:
                inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)   # gzip header and CRC
                while data and not inflater.eof:
                    inflater.decompress(data, 1 << 22)   # output capped: a gzip bomb stays small
                    data = inflater.unconsumed_tail or handle.read(1 << 20)
                if not inflater.eof:
                    return "the gzip data is cut short: the file ends before its stream does"
                # another gzip member may follow (concatenated .gz files are valid)
                data = inflater.unused_data.lstrip(b"\0") or handle.read(1 << 20)
    except zlib.error as error:
        return f"the gzip data is damaged ({error}); compress the CSV again and resend it"
    return None


def failure_rejection(item: LandingFile, error: BaseException) -> FileRejected:
    """An unexpected failure, as the rejection of the one file it happened to."""
    return FileRejected("load_failed", f"{item.file_name} could not be loaded: something went "
                        f"wrong while {item.stage}: {plain_cause(error, item.path)}; nothing from "
                        "it was loaded")


# DuckDB reads a path as a glob pattern (x[1].csv would read x1.csv; y*.csv every y...csv) and
# cannot take one that is not UTF-8. Such a file is read through a link with a plain name in a
# private folder of joinedup's own, so DuckDB opens exactly that file.
_GLOB_OR_UNSAFE = re.compile(r"[*?\[\]{}'\\\x00-\x1f\x7f]")
_aliases: dict[str, str] = {}


def _duckdb_path(path: Path) -> str:
    """The path to give DuckDB for this file: its own, or a plain-named link to it."""
    text = str(path.absolute())
    try:
        text.encode("utf-8")
        if not _GLOB_OR_UNSAFE.search(text):
            return text
    except UnicodeEncodeError:
        pass
    if text not in _aliases:
        folder = _aliases.setdefault("", tempfile.mkdtemp(prefix="joinedup-read-"))
        lower = path.name.lower()
        ext = next((e for e in (".csv.gz", ".parquet", ".gz") if lower.endswith(e)), ".csv")
        alias = os.path.join(folder, f"file{len(_aliases)}{ext}")
        os.symlink(os.fsencode(text), alias)
        _aliases[text] = alias
    return _aliases[text]


def remove_aliases() -> None:
    """Remove the links made for DuckDB (the files themselves are untouched)."""
    folder = _aliases.pop("", None)
    _aliases.clear()
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


# An absolute path in an error message: only its last part (a file name) is kept.
_ABSOLUTE_PATH = re.compile(r"""(?:^|(?<=[\s'"(\[=:]))/(?:[^\s'"/]+/)+([^\s'"/]*)""")


def first_line(error: BaseException, path: Path | None = None) -> str:
    """The first line of an error's message, with no server path and no NHS number."""
    text = str(error).strip()
    if path is not None:     # the file's own path first: its folder may hold spaces
        text = text.replace(str(path.absolute()), path.name).replace(str(path), path.name)
    line = text.splitlines()[0] if text else ""
    return display_name(_ABSOLUTE_PATH.sub(lambda m: m.group(1), line), limit=300)


# What went wrong, in words, for errors whose own message says little to a person.
_PLAIN_CAUSES = (
    (("zlib.error", "BadGzipFile", "EOFError"),
     "the gzip data is damaged or cut short (compress the CSV again and resend it)"),
    (("UnicodeDecodeError", "UnicodeEncodeError"), "it holds text that is not UTF-8"),
    (("MemoryError",), "it is too large to load in the memory available"),
)


def plain_cause(error: BaseException, path: Path | None = None) -> str:
    """An error as a person can read it: what happened and its own first line (with file
    names only, never a server path, and no number that could be an NHS number)."""
    kind = type(error).__name__
    qualified = f"{type(error).__module__}.{kind}"
    for kinds, words in _PLAIN_CAUSES:
        if kind in kinds or qualified in kinds:
            return f"{words} ({kind}: {first_line(error, path)})" if str(error).strip() else words
    if isinstance(error, RuntimeError) and "bad_cast" in str(error):
        return "the database could not handle its name or contents as text"
    if isinstance(error, OSError) and error.strerror:
        return f"the file could not be opened or read ({error.strerror.lower()})"
    detail = first_line(error, path)
    if isinstance(error, duckdb.Error):
        if "magic bytes" in detail or "too small to be a Parquet file" in detail:
            return f"the Parquet file is damaged, cut short or not Parquet at all ({detail})"
        return detail or kind   # DuckDB's first line already says what kind of error it is
    return f"{kind}: {detail}" if detail else kind


def seen_files(con: duckdb.DuckDBPyConnection) -> set[tuple[str, bytes]]:
    """(name, SHA-256) of every file seen before: the same name and bytes again is not news."""
    return set(con.execute("select file_name, sha256 from files").fetchall())


def files_to_inspect(con: duckdb.DuckDBPyConnection, landing: Path,
                     seen: set[tuple[str, bytes]], scan: LandingScan | None = None) -> list[Path]:
    """Landing files that may be new: every file except those with the name, size and
    modification time they had when hashed, if that hash was seen."""
    known = {}
    if relation_exists(con, "landing_stats"):
        known = {(name, size, mtime): digest for name, size, mtime, digest in con.execute(
            "select file_name, size_bytes, mtime_ns, sha256 from landing_stats").fetchall()}
    paths = []
    for path in (scan or scan_landing(landing)).files:
        try:
            stat = path.stat()
        except OSError:
            continue            # gone since the folder was listed
        name = display_name(path.name)
        digest = known.get((name, stat.st_size, stat.st_mtime_ns))
        if digest is None or (name, digest) not in seen:
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


# The sender's columns are held in `src` under positional names (c1, c2, ...), and their
# names as written in `src_columns`: a sender's column called line_number, file_row_number or
# rule is then just another column, never one of joinedup's own.
def _src_column(position: int) -> str:
    return f"c{position}"


def _reader_sql(path: Path, *, header_only: bool = False, row_numbers: bool = True) -> str:
    """A DuckDB table expression that reads the file with every column as text."""
    if path.name.lower().endswith(".parquet"):
        quoted = _duckdb_path(path).replace("'", "''")
        numbered = ", file_row_number = true" if row_numbers and not header_only else ""
        return f"read_parquet('{quoted}'{numbered})"
    return _csv_reader_sql([path], _csv_width(path))


def _csv_reader_sql(paths: list[Path], width: int, *, filename: bool = False) -> str:
    """read_csv of files whose header line has `width` columns, in the contract's dialect
    (nothing guessed from the data): every column as text under its position's name, lines
    that do not split into the columns in the reject tables. `filename`: each row says which
    file it came from (several files read at once)."""
    quoted = ", ".join("'" + _duckdb_path(p).replace("'", "''") + "'" for p in paths)
    cols = ", ".join(f"'{_src_column(position)}': 'VARCHAR'" for position in range(1, width + 1))
    return (f"read_csv([{quoted}], delim = ',', quote = '\"', escape = '\"', auto_detect = false, "
            f"store_rejects = true, rejects_limit = 0, skip = 1, header = false, "
            f"columns = {{{cols}}}{', filename = true' if filename else ''})")


def _parquet_columns(con: duckdb.DuckDBPyConnection, path: Path) -> list[tuple[str, str]]:
    """(name, type) of each column of a Parquet file, as the sender named them."""
    return con.execute(f"select column_name, column_type from (describe select * "
                       f"from {_reader_sql(path, header_only=True)})").fetchall()


def _parquet_as_text(columns: list[tuple[str, str]]) -> str:
    """Each Parquet column as the text a CSV would hold: a date-time at midnight as its date
    (writers store dates as timestamps), and a whole float as an integer (pandas writes an
    integer column with gaps as float64, so an age 70 arrives as 70.0)."""
    exprs = []
    for position, (name, type_) in enumerate(columns, start=1):
        col = '"' + name.replace('"', '""') + '"'
        if type_.startswith("TIMESTAMP") or type_ == "DATE":
            text = (f"case when {col}::date = {col} then strftime({col}::date, '%Y-%m-%d') "
                    f"else {col}::varchar end")
        elif type_ in ("DOUBLE", "FLOAT") or type_.startswith("DECIMAL"):
            text = (f"coalesce(case when {col} = trunc({col}) then try_cast({col} as hugeint)::varchar end, "
                    f"{col}::varchar)")
        else:
            text = f"{col}::varchar"
        exprs.append(f"{text} as {_src_column(position)}")
    return ", ".join(exprs)


def _csv_width(path: Path) -> int:
    """How many columns the header line names, so the CSV reader never has to guess them."""
    names = _csv_header(path)
    if not names:
        raise duckdb.InvalidInputException(
            "its first line is empty: the header row must be the first line"
            if _has_text_after_first_line(path) else "the file is empty: it has no header row")
    return len(names)


def _opener(path: Path):
    return gzip.open if path.name.lower().endswith(".gz") else open


def _has_text_after_first_line(path: Path) -> bool:
    try:
        with _opener(path)(path, "rb") as handle:
            handle.readline(1 << 20)
            return handle.read(1 << 16).strip() != b""
    except (OSError, EOFError, zlib.error):
        return False


def _csv_header(path: Path) -> list[str]:
    opener = _opener(path)
    try:
        with opener(path, "rb") as handle:
            raw = handle.readline(1 << 20)
    except (OSError, EOFError, zlib.error) as error:
        raise duckdb.IOException(f"cannot read the file: {plain_cause(error, path)}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise duckdb.InvalidInputException(_not_text(raw)) from None
    if "\r" in text.rstrip("\r\n"):
        raise duckdb.InvalidInputException(
            "its lines end in a carriage return only (an old Mac format); save it with LF or "
            "CRLF line endings")
    try:
        row = next(csv.reader(io.StringIO(text)), [])
    except csv.Error as error:
        raise duckdb.InvalidInputException(f"the header line cannot be read: {error}") from None
    return [c.strip() for c in row]


def _not_text(start: bytes) -> str:
    """Why a first line is not UTF-8 text, in the words of what it probably is."""
    if start[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "the file is UTF-16 text (Excel's 'Unicode text'); save it as CSV UTF-8"
    if start[:4] == b"PK\x03\x04":
        return "the file is a zip archive or an Excel workbook, not a CSV; save the sheet as CSV UTF-8"
    if start[:4] == b"PAR1":
        return "the file is Parquet: name it .parquet"
    return "the header is not UTF-8 text (saved in another encoding, or not a text file)"


def header_of(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    if path.name.lower().endswith(".parquet"):
        return [name for name, _ in _parquet_columns(con, path)]
    return _csv_header(path)


def read_into_src(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[int, int]:
    """Read the file into temp table `src` (line_number + text columns c1..cn), its column
    names into `src_columns` (position, header) and bad lines into `src_rejects`.

    Returns (rows read, malformed lines). Lines the CSV parser cannot split into the header's
    columns go to `src_rejects` with their data-line number.
    """
    # The CSV reader appends to these temporary tables; start each file with them empty.
    drop_working_tables(con)
    if path.name.lower().endswith(".parquet"):
        columns = _parquet_columns(con, path)
        headers = [name for name, _ in columns]
        _read_parquet_into_src(con, path, columns)
        con.execute("create temp table src_rejects (line_number bigint, detail varchar)")
    else:
        headers = _csv_header(path)
        con.execute(f"create temp table src as select row_number() over () as line_number, * "
                    f"from {_reader_sql(path)}")
        _collect_rejects(con)
    con.execute("create temp table src_columns (position integer, header varchar)")
    con.executemany("insert into src_columns values (?, ?)",
                    [[i, h.strip()] for i, h in enumerate(headers, start=1)])
    read = con.execute("select count(*) from src").fetchone()[0]
    bad = con.execute("select count(*) from src_rejects").fetchone()[0]
    return read, bad


def _read_parquet_into_src(con, path: Path, columns: list[tuple[str, str]]) -> None:
    """Rows numbered in file order. DuckDB's file_row_number option cannot be used when the
    file has a column of that name; the rows are then numbered by their order of insertion
    (kept, as preserve_insertion_order is on)."""
    if all(name.lower() != "file_row_number" for name, _ in columns):
        con.execute(f"create temp table src as select file_row_number + 1 as line_number, "
                    f"{_parquet_as_text(columns)} from {_reader_sql(path)}")
        return
    con.execute(f"create temp table src_unnumbered as select {_parquet_as_text(columns)} "
                f"from {_reader_sql(path, row_numbers=False)}")
    con.execute("create temp table src as select row_number() over (order by rowid) as line_number, * "
                "from src_unnumbered")
    con.execute("drop table src_unnumbered")


def drop_working_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The temporary tables a load works in hold rows as read, NHS numbers included."""
    con.execute("drop table if exists src; drop table if exists src_rejects; "
                "drop table if exists reject_errors; drop table if exists reject_scans; "
                "drop table if exists checked; drop table if exists src_columns; "
                "drop table if exists src_unnumbered")


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
    return bool(item.name and not item.name_error and not item.read_error and not item.rejection
                and not item.published_dataset and item.name.dataset in DATASETS)


def _judge_batch_or_not(con, items: list[LandingFile], pseudo_key: str | None) -> None:
    """Judging a batch in one query only saves time: if it fails in any way, each file of the
    batch is read and judged on its own, where a failure rejects that file alone."""
    try:
        _judge_batch(con, items, pseudo_key)
    except Exception:   # noqa: BLE001 - the files' own loads say what is wrong with them
        log.debug("batch of %d files judged file by file instead", len(items), exc_info=True)
        for item in items:
            item.batch = None
        _quietly(drop_batch_tables, con)
        _quietly(drop_working_tables, con)


def _quietly(step, con) -> None:
    """Drop working tables; a failure only leaves temp tables that go with the connection."""
    try:
        step(con)
    except duckdb.Error:
        pass


def _plan_metric_ids(dataset: Dataset) -> list[str] | None:
    """For a plan, the metric ids joinedup has (a row naming another is quarantined)."""
    return metric_ids() if dataset.name == "plan" else None


def drop_batch_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The batch's working tables hold rows as read, NHS numbers included."""
    con.execute("; ".join(f"drop table if exists {t}" for t in BATCH_TABLES))


def _judge_batch(con: duckdb.DuckDBPyConnection, items: list[LandingFile],
                 pseudo_key: str | None) -> None:
    """Judge every row of the batch's files in one query into `checked_batch` (with each row's
    `file_key`); mark each file judged with its key and counts.

    CSV files whose header lines are alike are read by one read_csv of them all, inside the
    query, so their text is never copied; a file the parser finds a malformed line in is left
    to its own load (which numbers the lines around it). Other files (Parquet, a file a shared
    read cannot take) are read one by one into `batch_src` first."""
    candidates = [i for i in items if _batchable(i)]
    if len(candidates) < 2:
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
    sources = ["select * from batch_src"] + [_shared_read_sql(shape, [i for _, i in members], columns)
                                              for shape, members in shared.items()]
    sql = build_checked_sql(dataset, {c: c for c in columns}, org_code=None, period_start=None,
                            code_lists=_code_lists(con, dataset), metric_ids=_plan_metric_ids(dataset),
                            batched=True, source="(" + " union all ".join(sources) + ")")
    params = {k: v for k, v in identifiers.key_parameters(pseudo_key).items() if f"${k}" in sql}
    con.execute(f"create temp table checked_batch as {sql}", params)
    _count_shared_reads(con, [m for members in shared.values() for m in members])
    con.execute("drop table batch_src")


def _read_into_batch(con, key: int, item: LandingFile, columns: list[str]) -> None:
    """One file read on its own (`read_into_src`) and copied into `batch_src`."""
    try:
        read, malformed = read_into_src(con, item.path)
        _check_columns(con, item)
    except Exception:   # noqa: BLE001 - its own load reads it again and says why it fails
        return
    colmap = _column_map(con)
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
        with _opener(item.path)(item.path, "rb") as handle:
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
                     for v in (_duckdb_path(item.path), key, item.name.org_code, item.name.period_start)])


def _shared_read_sql(shape: tuple, paths: list[LandingFile], columns: list[str]) -> str:
    """The rows of files of one shape, as `batch_src` holds them, but numbered through the read:
    rows come in file order, and in order within each file, so a file's first row has the
    lowest number (see BatchPart.line_offset)."""
    headers = shape[0]
    colmap: dict[str, str] = {}
    for position, header in enumerate(headers, start=1):
        colmap.setdefault(header.upper(), _src_column(position))
    values = ", ".join(f'r."{colmap[c]}" as "{c}"' if c in colmap else f'null as "{c}"' for c in columns)
    reader = _csv_reader_sql([i.path for i in paths], len(headers), filename=True)
    return (f"select f.file_key, f.file_org, f.file_period, "
            f"r.seq as line_number, {values} "
            f"from (select row_number() over () as seq, * from {reader}) as r "
            f"join batch_files as f on f.path = r.filename")


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
        if _duckdb_path(item.path) not in malformed:
            count, first = rows.get(key, (0, 1))
            item.batch = BatchPart(key, count, 0, first - 1)


def _checked_from_batch(con: duckdb.DuckDBPyConnection, part: BatchPart) -> None:
    """`checked` and `src_rejects` of one file of the batch, as its one-file load makes them."""
    con.execute("create temp table checked as select * exclude (file_key) "
                "replace (line_number - ? as line_number) from checked_batch where file_key = ?",
                [part.line_offset, part.key])
    con.execute("drop table if exists src_rejects")
    con.execute("create temp table src_rejects as select line_number, detail from batch_rejects "
                "where file_key = ?", [part.key])


# ---------------------------------------------------------------- loading one file


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
    items = [inspect(con, p) for p in files_to_inspect(con, landing, seen, scan)]
    items += [inspect_link(p, landing) for p in scan.links]
    new = [i for i in items if (i.file_name, i.sha256) not in seen]
    remember_stats(con, [i for i in items if (i.file_name, i.sha256) in seen])   # e.g. touched
    require_pseudo_key([i for i in new if not i.name_error], pseudo_key)
    summary = LoadSummary(skipped=scan.skipped)
    for batch in _batches(new, batch_bytes(con)):
        _judge_batch_or_not(con, batch, pseudo_key)
        for results in _load_batch(con, batch, pseudo_key):
            for result in results:
                summary.results.append(result)
                if on_file:
                    on_file(result)
        _quietly(drop_batch_tables, con)
    return summary


def _load_batch(con, batch: list[LandingFile], pseudo_key: str | None):
    """Load the batch's files in order: each run of consecutive judged files in one
    transaction (`_write_run`), any other file in its own (`_load_one`). Yields the results
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
    return item.sha256, _ledger(item)[3] if empty else None


def _load_one(con, item: LandingFile, pseudo_key: str | None) -> LoadResult:
    """One file in its own transaction, then its landing stats (only a cache)."""
    result = _load_guarded(con, item, pseudo_key)
    try:
        drop_working_tables(con)
        if item.sha256 != _NO_BYTES:
            remember_stats(con, [item])
    except duckdb.Error:
        pass     # only a cache: the file is hashed again next run
    return result


def _write_run_or_each(con, run: list[LandingFile], pseudo_key: str | None) -> list[LandingFile]:
    """Write a run of judged files in one transaction; a commit costs far more than writing a
    month's file of one provider. If anything fails, the run is rolled back and each file is
    written in its own transaction, where a failure rejects that file alone."""
    con.execute("begin transaction")
    try:
        results = _write_run(con, run)
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
        ledger = _ledger(item)
    except Exception:   # noqa: BLE001
        ledger = (None, None, None, None)
    result.dataset, result.period = ledger[0], ledger[2]
    try:
        rollback_quietly(con)
        con.execute("begin transaction")
        file_id = con.execute("select nextval('file_ids')").fetchone()[0]
        _insert_files_rows(con, [_files_row(file_id, item, result, ledger=ledger)])
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
        return _record_one(con, file_id, item, LoadResult(item.file_name, "duplicate"))
    if item.published_dataset:
        item.stage = "reading it as a file NHS England or ONS publish"
        return _load_published(con, file_id, item)
    item.stage = "reading it"
    if item.batch:      # read, checked and judged with its batch (`_judge_batch`)
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
        _check_columns(con, item)
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
    identity = _ledger(item)[3]
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


def _check_columns(con, item: LandingFile) -> None:
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
    return _record_one(con, file_id, item, result)


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
        _checked_from_batch(con, item.batch)
    else:
        sql = build_checked_sql(dataset, _column_map(con), org_code=item.name.org_code,
                                period_start=item.name.period_start,
                                code_lists=_code_lists(con, dataset),
                                metric_ids=_plan_metric_ids(dataset))
        params = {k: v for k, v in identifiers.key_parameters(pseudo_key).items() if f"${k}" in sql}
        con.execute("create temp table checked as " + sql, params)
    return _write_judged(con, [(BatchPart(0, rows_in, 0), file_id, item)],
                         checked="(select 0 as file_key, * from checked)",
                         rejects="(select 0 as file_key, * from src_rejects)")[0]


def _write_run(con, run: list[LandingFile]) -> list[LoadResult]:
    """Write the judged files of a run (see `_write_run_or_each`) from `checked_batch`."""
    ids = sorted(r[0] for r in con.execute(
        "select nextval('file_ids') from range(?)", [len(run)]).fetchall())
    files = [(item.batch, file_id, item) for file_id, item in zip(ids, run)]
    return _write_judged(con, files, checked="checked_batch", rejects="batch_rejects")


def _write_judged(con, files: list[tuple[BatchPart, int, LandingFile]], *, checked: str,
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
    _supersede(con, [_ledger(item)[3] for _, _, item in files])
    return [result for _, _, result, _, _ in entries]


def _code_lists(con, dataset: Dataset) -> dict[str, list[str]]:
    """The valid codes of each coded column, read from the sql/reference code-list tables."""
    return {c.codes: [r[0] for r in con.execute(
                f"select distinct upper(trim(code)) from ref_{c.codes} order by 1").fetchall()]
            for c in dataset.columns if c.codes}


def metric_ids() -> list[str]:
    """The metric ids joinedup has: those in the headers of sql/metrics/*.sql, local metrics
    (one more SQL file) included. Read at call time, so a metric added is known at once."""
    from flows.models import runner  # the model reader; imported here as it is needed only for plans

    return sorted({m.header["metric_id"] for m in runner.load_project().metrics
                   if m.header.get("metric_id")})


def _column_map(con) -> dict[str, str]:
    """Upper-cased, trimmed name as the sender wrote it -> the column's name in `src`.
    The first of two columns with the same name wins (the file is rejected for it anyway)."""
    columns: dict[str, str] = {}
    for position, header in con.execute(
            "select position, header from src_columns order by position").fetchall():
        columns.setdefault(header.upper(), _src_column(position))
    return columns


def _insert_raw(con, dataset: Dataset, checked: str) -> None:
    """The rows of each file in `run_files` that load, in file and line order."""
    table = f"raw_{dataset.name}"
    columns = [d[0] for d in con.execute(f"select * from {table} limit 0").description]
    values = [c for c in columns if c not in ("file_id", "period")]
    # A periodic extract's rows carry the file's period; a plan row carries its own PERIOD.
    period = ["period"] if "period" in columns else []
    period_value = (["c.PERIOD_DATE"] if dataset.name == "plan" else ["f.file_period"] if period else [])
    con.execute(
        f"insert into {table} (file_id, {', '.join(period + values)}) "
        f"select f.file_id, {', '.join(period_value + [_line_number(v) for v in values])} "
        f"from {checked} c join run_files f on f.file_key = c.file_key where c.rule is null "
        "order by f.file_id, c.line_number")


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


def _supersede(con, identities: list[str | None]) -> None:
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


def _record(con, entries: list[tuple[int, LandingFile, LoadResult, int, int]]) -> None:
    """The files' rows in `files`, each entry (file_id, item, result, invalid NHS numbers,
    missing person ids)."""
    _insert_files_rows(con, [_files_row(file_id, item, result, invalid=invalid, no_person=no_person)
                             for file_id, item, result, invalid, no_person in entries])


def _record_one(con, file_id: int, item: LandingFile, result: LoadResult) -> LoadResult:
    _record(con, [(file_id, item, result, 0, 0)])
    return result


def _files_row(file_id: int, item: LandingFile, result: LoadResult, *, invalid: int = 0,
               no_person: int = 0, ledger: tuple | None = None) -> list:
    """The file's row in `files`; every text in it is masked (display_name, withhold_numbers).
    The result takes the reason as masked (it is shown in the summary), dataset and period."""
    ledger = ledger or _ledger(item)
    dataset, org_code, period, identity = (identifiers.withhold_numbers(v) for v in ledger)
    result.reason = identifiers.withhold_numbers(result.reason)
    result.dataset, result.period = ledger[0], ledger[2]
    return [file_id, item.file_name, item.sha256, dataset, org_code, period, identity,
            result.status, result.rows_in, result.rows_loaded, result.rows_quarantined,
            result.reason, invalid, no_person]


def _insert_files_rows(con, rows: list[list]) -> None:
    """Rows of `files` in one statement: each statement costs milliseconds."""
    con.execute(
        "insert into files (file_id, file_name, sha256, dataset, org_code, period, identity, "
        "status, rows_in, rows_loaded, rows_quarantined, reason, invalid_nhs_numbers, "
        "missing_person_ids) values "
        + ", ".join("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" for _ in rows),
        [v for row in rows for v in row])


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
    result = LoadResult(item.file_name, "loaded", pub.rows_in, pub.rows_loaded + pub.check_rows,
                        len(pub.quarantined))
    _record_one(con, file_id, item, result)
    _supersede(con, [pub.identity])
    return result


def _reject_published(con, file_id: int, item: LandingFile, rejected: FileRejected) -> LoadResult:
    """A published file that cannot be loaded: its data records (if readable) are quarantined."""
    rows = published.data_records(item.path)
    con.execute("insert into quarantine_rows select ?, ?, l, ?, ? from range(1, ? + 1) t(l)",
                [file_id, item.file_name, rejected.rule, f"file rejected: {rejected.detail}", rows])
    result = LoadResult(item.file_name, "rejected", rows, 0, rows, rejection_reason(rejected))
    return _record_one(con, file_id, item, result)


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


# ---------------------------------------------------------------- the run summary

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
