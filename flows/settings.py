"""The one place configuration is read: each setting is a flag and an environment variable."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from flows.errors import SettingsError


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
    Setting("spc_min_points", "JOINEDUP_SPC_MIN_POINTS", "12",
            "SPC: a rebase group needs this many used (final) months for a mean and limits."),
    Setting("spc_fix_after", "JOINEDUP_SPC_FIX_AFTER", None,
            "SPC: fix each group's mean and limits after its first N used months (unset: off)."),
    Setting("spc_screen_outliers", "JOINEDUP_SPC_SCREEN_OUTLIERS", "false",
            "SPC: leave moving ranges of 3.267 x their mean or more out of the mean moving range."),
    Setting("duckdb_memory", "JOINEDUP_DUCKDB_MEMORY", None,
            "DuckDB's memory limit, e.g. 6GB (unset: the smaller of 4 GiB and half the RAM)."),
    Setting("duckdb_temp", "JOINEDUP_DUCKDB_TEMP", None,
            "Folder DuckDB spills to past its memory limit (unset: <database>.tmp beside it)."),
    Setting("orchestration", "JOINEDUP_ORCHESTRATION", "auto",
            "How the CLI runs the job: auto (a Prefect flow run when a Prefect API is configured), "
            "prefect (always a flow run) or direct (in-process, no Prefect API)."),
]
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    landing: Path
    db: Path
    reports: Path
    pseudo_key: str | None
    lock_wait: float


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
    )


@dataclass(frozen=True)
class SpcSettings:
    """The statistical process control rules' settings: the SQL view metric_spc reads them as
    DuckDB variables and the methodology appendix prints them, so the two cannot disagree."""
    min_points: int = 12
    fix_after: int | None = None
    screen_outliers: bool = False

    def variables(self) -> dict[str, object]:
        """DuckDB variable name -> value, as sql/marts/metric_spc.sql reads them."""
        return {"spc_min_points": self.min_points, "spc_fix_after": self.fix_after,
                "spc_screen_outliers": self.screen_outliers}


def _positive_int(name: str, text: str | None) -> int | None:
    if text is None or text.strip().lower() in ("", "off", "none", "0"):
        return None
    value = int(text)
    if value < 1:
        raise ValueError(f"{_BY_NAME[name].env} must be a positive whole number, not {text}")
    return value


ORCHESTRATION_MODES = ("auto", "prefect", "direct")


def orchestration_mode() -> str:
    """JOINEDUP_ORCHESTRATION, checked: a mistyped mode fails at once rather than running direct."""
    mode = setting_value("orchestration").strip().lower()
    if mode not in ORCHESTRATION_MODES:
        raise SettingsError(f"{_BY_NAME['orchestration'].env} must be one of "
                            f"{', '.join(ORCHESTRATION_MODES)}, not {mode!r}")
    return mode


def load_spc_settings() -> SpcSettings:
    """SPC settings from the environment (JOINEDUP_SPC_*), else the defaults."""
    min_points = _positive_int("spc_min_points", setting_value("spc_min_points"))
    screen = (setting_value("spc_screen_outliers") or "false").strip().lower()
    return SpcSettings(
        min_points=min_points or 1,
        fix_after=_positive_int("spc_fix_after", setting_value("spc_fix_after")),
        screen_outliers=screen in ("1", "true", "yes", "on"),
    )


def apply_spc_settings(con, spc: SpcSettings | None = None) -> SpcSettings:
    """Set the SPC settings as DuckDB variables on a connection (metric_spc reads them)."""
    spc = spc or load_spc_settings()
    for name, value in spc.variables().items():
        if value is None:
            con.execute(f"reset variable {name}")
        else:
            con.execute(f"set variable {name} = ?", [value])
    return spc
# ---- DuckDB resources --------------------------------------------------------------------------
# How much memory DuckDB may use and where it spills beyond that. Read when a connection opens
# (flows/db.py), so every command and flow gets them without a flag.
DUCKDB_MEMORY_ENV = _BY_NAME["duckdb_memory"].env
DUCKDB_TEMP_ENV = _BY_NAME["duckdb_temp"].env
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
