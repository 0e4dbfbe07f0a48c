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
