"""Step 1, scan: what is in the landing folder, in the order it loads, and which files may be new
(a file with the size and modification time it had when hashed is not read again)."""
from __future__ import annotations

import os
import re
import stat as stat_kind
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from flows.db import relation_exists
from flows.ingest.inspection import LandingFile
from flows.ingest.naming import (
    PERIODIC_DATASETS,
    REFERENCE_DATASETS,
    display_name,
    parse_file_name,
)

# Reference data loads first so that every periodic file can be checked against it.
DATASET_ORDER = {name: i for i, name in enumerate(REFERENCE_DATASETS[::-1] + PERIODIC_DATASETS)}
_NATURAL = re.compile(r"(\d+)")

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
