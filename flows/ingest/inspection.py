"""Step 2, inspect: hash each new file, parse its name, check its gzip stream whole, read its
header; nothing here stops the run (a failure is kept on the item and rejects that file)."""
from __future__ import annotations

import hashlib
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import duckdb

from flows.errors import FileRejected, PseudoKeyMissing
from flows.ingest import published
from flows.ingest.naming import (
    FileName,
    display_name,
    parse_file_name,
)
from flows.ingest.reading import header_of, plain_cause


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
    batch: BatchPart | None = None          # its part of the batch judged at once (judging.py)

    @property
    def file_name(self) -> str:
        """The name as stored and shown: readable, never an NHS number (see display_name)."""
        return display_name(self.path.name)


def sha256_of(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


# The digest recorded for an entry whose bytes are never read (a link) or cannot be read.
NO_BYTES = hashlib.sha256(b"").digest()


HASH_THREADS = 2     # hashlib releases the GIL: a national folder's 2.4 GB in 1.2 s, not 3.2 s


def hash_files(paths: list[Path]) -> dict[Path, tuple[os.stat_result, bytes] | Exception]:
    """Each file's stat and SHA-256, hashed on HASH_THREADS threads; a file that cannot be
    read maps to its error, which `inspect` turns into the file's rejection."""
    def one(path: Path):
        try:
            stat = path.stat()   # before hashing: a file changed meanwhile is hashed again next run
            return stat, sha256_of(path)
        except Exception as error:      # noqa: BLE001 - rejects this file only, in inspect
            return error
    with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
        return dict(zip(paths, pool.map(one, paths)))


def inspect(con: duckdb.DuckDBPyConnection, path: Path,
            hashed: tuple[os.stat_result, bytes] | Exception) -> LandingFile:
    """Take the file's stat and hash (`hashed`, its `hash_files` entry), parse its name and
    read its header, without loading it.

    Nothing here stops the run: a step that fails, however it fails, leaves the reason on the
    item and the file is rejected with it when its turn comes to load.
    """
    item = LandingFile(path, NO_BYTES, stage="reading it to compute its SHA-256")
    try:
        if isinstance(hashed, Exception):
            raise hashed
        stat, item.sha256 = hashed
        item.size, item.mtime_ns = stat.st_size, stat.st_mtime_ns
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
