"""Step 3, read: a landing file as text for DuckDB (CSV, gzipped CSV or Parquet), its header, and
what went wrong in words a person can read."""
from __future__ import annotations

import csv
import gzip
import io
import os
import re
import shutil
import tempfile
import zlib
from pathlib import Path

import duckdb

from flows.db import relation_exists
from flows.ingest.naming import (
    display_name,
)

# DuckDB reads a path as a glob pattern (x[1].csv would read x1.csv; y*.csv every y...csv) and
# cannot take one that is not UTF-8. Such a file is read through a link with a plain name in a
# private folder of joinedup's own, so DuckDB opens exactly that file.
_GLOB_OR_UNSAFE = re.compile(r"[*?\[\]{}'\\\x00-\x1f\x7f]")
_aliases: dict[str, str] = {}


def duckdb_path(path: Path) -> str:
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


# The sender's columns are held in `src` under positional names (c1, c2, ...), and their
# names as written in `src_columns`: a sender's column called line_number, file_row_number or
# rule is then just another column, never one of joinedup's own.
def src_column(position: int) -> str:
    return f"c{position}"


def _reader_sql(path: Path, *, header_only: bool = False, row_numbers: bool = True) -> str:
    """A DuckDB table expression that reads the file with every column as text."""
    if path.name.lower().endswith(".parquet"):
        quoted = duckdb_path(path).replace("'", "''")
        numbered = ", file_row_number = true" if row_numbers and not header_only else ""
        return f"read_parquet('{quoted}'{numbered})"
    return csv_reader_sql([path], _csv_width(path))


def csv_reader_sql(paths: list[Path], width: int, *, filename: bool = False) -> str:
    """read_csv of files whose header line has `width` columns, in the contract's dialect
    (nothing guessed from the data): every column as text under its position's name, lines
    that do not split into the columns in the reject tables. `filename`: each row says which
    file it came from (several files read at once)."""
    quoted = ", ".join("'" + duckdb_path(p).replace("'", "''") + "'" for p in paths)
    cols = ", ".join(f"'{src_column(position)}': 'VARCHAR'" for position in range(1, width + 1))
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
        exprs.append(f"{text} as {src_column(position)}")
    return ", ".join(exprs)


def _csv_width(path: Path) -> int:
    """How many columns the header line names, so the CSV reader never has to guess them."""
    names = _csv_header(path)
    if not names:
        raise duckdb.InvalidInputException(
            "its first line is empty: the header row must be the first line"
            if _has_text_after_first_line(path) else "the file is empty: it has no header row")
    return len(names)


def file_opener(path: Path):
    return gzip.open if path.name.lower().endswith(".gz") else open


def _has_text_after_first_line(path: Path) -> bool:
    try:
        with file_opener(path)(path, "rb") as handle:
            handle.readline(1 << 20)
            return handle.read(1 << 16).strip() != b""
    except (OSError, EOFError, zlib.error):
        return False


def _csv_header(path: Path) -> list[str]:
    opener = file_opener(path)
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
        _reject_lines_inside_an_open_quote(con, path)
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


# The parser's errors for a quote that opens a value and never closes
QUOTE_ERRORS = ("UNTERMINATED QUOTE", "UNQUOTED VALUE")


def _reject_lines_inside_an_open_quote(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """A quote that never closes makes the parser read every later line as text inside one
    value: those lines are neither rows nor rejects. They are counted in the file itself and
    each is quarantined, naming the line the quote opened on, so every line is accounted for."""
    if not relation_exists(con, "reject_errors"):
        return
    opened = con.execute("select min(line) - 1 from reject_errors where error_type in ?",
                         [list(QUOTE_ERRORS)]).fetchone()[0]
    if opened is None:
        return
    accounted = con.execute("select (select count(*) from src) + (select count(*) from src_rejects)"
                            ).fetchone()[0]
    lines = _data_lines(path)
    if lines > accounted:
        con.execute("insert into src_rejects select l, ? from range(?, ?) t(l)",
                    [f"inside the quote opened on line {opened} and never closed, so read as part "
                     "of that line's value", accounted + 1, lines + 1])


def _data_lines(path: Path) -> int:
    """Lines after the header that hold any text (the parser skips blank ones)."""
    with file_opener(path)(path, "rb") as handle:
        handle.readline()
        return sum(1 for line in handle if line.strip())


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
