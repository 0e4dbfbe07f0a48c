"""The one place configuration is read: each setting is a flag and an environment variable."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    default: str | None
    help: str


SETTINGS = [
    Setting("landing", "JOINEDUP_LANDING", "data/landing", "Folder the extracts arrive in."),
    Setting("db", "JOINEDUP_DB", "data/joinedup.duckdb", "The DuckDB database file."),
    Setting("reports", "JOINEDUP_REPORTS", "reports", "Folder the reports are written to."),
    Setting("pseudo_key", "JOINEDUP_PSEUDO_KEY", None,
            "Secret key for pseudonymising NHS numbers; required when a file holds NEWNHSNO."),
    Setting("lock_wait", "JOINEDUP_LOCK_WAIT", "0",
            "Seconds to wait for another joinedup run to release the database (0: fail at once)."),
    Setting("report_workers", "JOINEDUP_REPORT_WORKERS", "2",
            "Report pages rendered in parallel (bounded worker count)."),
]
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    landing: Path
    db: Path
    reports: Path
    pseudo_key: str | None
    lock_wait: float
    report_workers: int


def setting_value(name: str, flag_value: str | os.PathLike | None = None) -> str | None:
    """The flag wins over the environment variable, which wins over the default."""
    if flag_value is not None:
        return str(flag_value)
    spec = _BY_NAME[name]
    return os.environ.get(spec.env) or spec.default


def load_settings(**flags) -> Settings:
    """Resolve every setting from flags (None = not given) and the environment."""
    value = {s.name: setting_value(s.name, flags.get(s.name)) for s in SETTINGS}
    return Settings(
        landing=Path(value["landing"]),
        db=Path(value["db"]),
        reports=Path(value["reports"]),
        pseudo_key=value["pseudo_key"],
        lock_wait=float(value["lock_wait"]),
        report_workers=max(1, int(value["report_workers"])),
    )


# ---- DuckDB resources --------------------------------------------------------------------------
# How much memory DuckDB may use and where it spills beyond that. Read when a connection opens
# (flows/db.py), so every command and flow gets them without a flag.
DUCKDB_MEMORY_ENV = "JOINEDUP_DUCKDB_MEMORY"
DUCKDB_TEMP_ENV = "JOINEDUP_DUCKDB_TEMP"
# At most this much by default, and at most half of the machine's memory: chart workers, Python
# and the operating system's file cache need the rest.
DUCKDB_MEMORY_CAP_BYTES = 4 * 1024 ** 3


def _physical_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def duckdb_memory_limit() -> str:
    """JOINEDUP_DUCKDB_MEMORY (a DuckDB size, e.g. `6GB` or `512MB`),
    else the smaller of 4 GiB and half the machine's memory."""
    value = os.environ.get(DUCKDB_MEMORY_ENV, "").strip()
    if value:
        return value
    physical = _physical_memory_bytes()
    limit = min(DUCKDB_MEMORY_CAP_BYTES, physical // 2) if physical else DUCKDB_MEMORY_CAP_BYTES
    return f"{limit // 1024 ** 2}MB"


def duckdb_temp_directory(db_path: Path | str) -> Path:
    """JOINEDUP_DUCKDB_TEMP, else `<database>.tmp` next to the database file (the same disk)."""
    value = os.environ.get(DUCKDB_TEMP_ENV, "").strip()
    return Path(value) if value else Path(f"{db_path}.tmp")
