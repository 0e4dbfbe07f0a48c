"""Which published layout a file holds, judged by its header row (never its name), and reading
it with that layout's parser."""
from __future__ import annotations

from pathlib import Path

from flows.errors import FileRejected
from flows.ingest.published import ae, discharge, ons_population
from flows.ingest.published.common import (
    _HEAD_BYTES,
    _HEADER_SEARCH_RECORDS,
    PublishedFile,
    _decode,
    _raw_bytes,
    _read_failure,
    _records,
    _shown,
)

# Each layout's module, in the order a header is tried against them.
LAYOUTS = {"nhse_ae": ae, "nhse_discharge": discharge, "ons_population": ons_population}


def _layout_of(headers: list[str]) -> str | None:
    """The dataset a header row belongs to, or None. Never raises."""
    try:
        return next((name for name, layout in LAYOUTS.items() if layout.matches(headers)), None)
    except FileRejected:
        return None


def _find_header(records: list[list[str]]) -> tuple[int, str] | None:
    for i, rec in enumerate(records[:_HEADER_SEARCH_RECORDS]):
        if not any(v.strip() for v in rec):
            continue
        dataset = _layout_of(rec)
        if dataset:
            return i, dataset
    return None


# A sheet saved from Excel as "Unicode text" or in a European locale is tab- or ;-separated.
_DELIMITERS = (",", "\t", ";")


def _table(text: str) -> tuple[list[list[str]], tuple[int, str] | None]:
    """The records and the recognised header (position, dataset), or None: comma-separated
    first, then the other delimiters. Raises FileRejected when no delimiter gives a header and
    the text is not even readable as comma-separated."""
    comma, error = [], None
    for delimiter in _DELIMITERS:
        if delimiter != "," and delimiter not in text:
            continue
        try:
            records = _records(text, delimiter)
        except FileRejected as rejected:
            error = error or rejected
            continue
        found = _find_header(records)
        if found:
            return records, found
        if delimiter == ",":
            comma = records
    if error and not comma:
        raise error
    return comma, None


def detect_published(path: Path) -> str | None:
    """The dataset a published file holds, judged by its header layout (not its name), or None.

    Never raises: whatever is wrong with the file (damaged compression, undecodable bytes, an
    empty or binary file, a file that vanished), it is simply not a published layout here; the
    loader then rejects it with its own reason."""
    try:
        data = _raw_bytes(Path(path), _HEAD_BYTES)
        text, _ = _decode(data, partial=True)
        lines = text.splitlines(keepends=True)
        if len(data) >= _HEAD_BYTES and len(lines) > 1:
            lines = lines[:-1]                      # drop a line cut at the read limit
        found = _table("".join(lines[: _HEADER_SEARCH_RECORDS * 4]))[1]
    except Exception:           # noqa: BLE001 - a sniffer's answer to any damage is "not mine"
        return None
    return found[1] if found else None


def _read_table(path: Path) -> tuple[list[list[str]], tuple[int, str] | None, str]:
    """Records, recognised header and encoding. Any failure to read is a FileRejected naming
    the file, whatever raised it (I/O, damaged gzip, a CSV the csv module cannot parse)."""
    try:
        text, encoding = _decode(_raw_bytes(path))
        records, found = _table(text)
    except Exception as exc:    # noqa: BLE001 - every cause becomes one plain rejection
        raise _read_failure(path, exc) from None
    return records, found, encoding


def data_records(path: Path) -> int:
    """Data records after the recognised header: what a rejected published file counts as its
    rows (0 when the file cannot be read or no known header is found)."""
    try:
        records, found, _ = _read_table(Path(path))
    except FileRejected:
        return 0
    return len(records) - found[0] - 1 if found else 0


def read_published(path: Path, *, year: int | None = None) -> PublishedFile:
    """Parse a published file recognised by its header.

    `year` gives the mid-year of an ONS population table when neither its title lines nor its
    file name say it. Raises FileRejected(rule, detail) when the file cannot be read, its layout
    is not recognised, a required column is missing or its month cannot be read from its rows.
    """
    path = Path(path)
    records, found, encoding = _read_table(path)
    if not any(any(v.strip() for v in rec) for rec in records):
        raise FileRejected("unknown_layout", f"{_shown(path)} is empty: no header, no rows")
    if found is None:
        raise FileRejected("unknown_layout", f"{_shown(path)}: the header matches no published layout "
                           "(NHS England A&E monthly, discharge sitrep, ONS mid-year estimates)")
    index, dataset = found
    preamble = [" ".join(v.strip() for v in rec if v.strip()) for rec in records[:index]]
    headers, data = records[index], records[index + 1:]
    notes = [f"read as {encoding}"] if encoding != "utf-8" else []
    if index:
        notes.append(f"{index} title line(s) above the header skipped")
    try:
        if dataset == "nhse_ae":
            result = ae.read(headers, data)
        elif dataset == "nhse_discharge":
            result = discharge.read(headers, data)
        else:
            result = ons_population.read(headers, data, preamble, path.name, year)
    except FileRejected:
        raise
    except Exception as exc:    # noqa: BLE001 - one odd file is rejected, it never stops a run
        raise FileRejected("unreadable", f"{_shown(path)} could not be parsed as {dataset}: "
                           f"{type(exc).__name__}: {exc}") from None
    if result.rows_in != result.rows_loaded + len(result.quarantined) + result.check_rows:
        raise FileRejected("unreadable", f"{_shown(path)}: its {result.rows_in} records could not all "
                           "be accounted for as loaded, quarantined or checks; not loaded")
    result.notes[:0] = notes
    return result
