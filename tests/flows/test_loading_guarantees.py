"""The loading guarantees of spec/extracts.md §1, §2 ("Precise rules for loading") and §4, checked
on generated corpora with every kind of fault mixed in and through the real CLI:

1. every file's rows are accounted for (rows in = loaded + quarantined), and the contract holds;
2. no NHS number reaches the database, the logs or the reports;
3. NHS numbers without JOINEDUP_PSEUDO_KEY stop the run with one line and load nothing;
4. a run killed with SIGKILL mid-load, then run again, ends where an uninterrupted run does;
5. one writer at a time: a second run fails at once naming the holder, or waits with --wait;
6. a landing folder of only broken files is reported, not a Python traceback.

The hand-made, check-by-eye loader cases live in tests/unit/test_loader.py.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tests.conftest import ROOT, run_contract_check

KEY = "loading-guarantees-key"
HOLD_LOCK = Path(__file__).with_name("hold_lock.py")
ALL_STATUSES = {"loaded", "superseded", "duplicate", "rejected"}
RAW_TABLES = ("raw_apc", "raw_reablement", "raw_carehome", "raw_population", "raw_plan",
              "raw_orgs", "raw_nhse_ae", "raw_nhse_discharge", "raw_ons_population")
# Whole files the faulty corpus adds that must be rejected (sample/generate.py `write_faults`).
REJECTED_MARKERS = ("_missing_column", "_no_person_column", "_corrupt")


# ------------------------------------------------------------------------------ helpers


def cli_command(*args) -> list[str]:
    script = Path(sys.executable).with_name("joinedup")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "flows.cli"]
    return base + [str(a) for a in args]


def cli_env(key: str | None = KEY) -> dict[str, str]:
    """The CLI's environment: no joinedup setting leaks in from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOINEDUP_")}
    env.update(JOINEDUP_ORCHESTRATION="direct", COLUMNS="400", NO_COLOR="1", TERM="dumb")
    if key:
        env["JOINEDUP_PSEUDO_KEY"] = key
    return env


def cli(*args, key: str | None = KEY, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), env=cli_env(key), cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def paths(root: Path, name: str) -> tuple[Path, Path, Path]:
    """(landing, db, reports) under a fresh folder."""
    base = root / name
    base.mkdir(parents=True, exist_ok=True)
    return base / "landing", base / "j.duckdb", base / "reports"


def generate(landing: Path, **kwargs):
    from sample.generate import generate_landing

    return generate_landing(landing, **kwargs)


def query(db: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def rounded(rows: list[tuple]) -> list[tuple]:
    """Floats to 12 significant digits: parallel sums may differ in the last bits."""
    return [tuple(float(f"{v:.12g}") if isinstance(v, float) else v for v in row) for row in rows]


def contract_state(db: Path) -> dict[str, list[tuple]]:
    """What the contract publishes of a database, in a stable order (§4)."""
    return {
        "load_log": query(db, "select * from load_log order by all"),
        "quarantine": query(db, "select * from quarantine order by all"),
        "metric_values": rounded(query(db, "select * from metric_values order by all")),
    }


def assert_ledger_consistent(con, *, written_rows: dict[str, int] | None = None) -> list[tuple]:
    """Every file's rows accounted for; §1, §2 "Precise rules for loading" and §4."""
    log = con.execute("select file_name, status, rows_in, rows_loaded, rows_quarantined, reason "
                      "from load_log").fetchall()
    # per file by its id (a name may arrive twice); load_log and quarantine are views over these
    ledger = con.execute("select file_id, file_name, status, rows_in, rows_loaded, rows_quarantined, "
                         "reason from files order by file_id").fetchall()
    assert sorted(log) == sorted(row[1:] for row in ledger), "load_log is not the files ledger"
    quarantined = Counter(dict(con.execute(
        "select file_id, count(*) from quarantine_rows group by file_id").fetchall()))
    problems = []
    for file_id, name, status, rows_in, loaded, quarantine, reason in ledger:
        where = f"{name} ({status})"
        if status not in ALL_STATUSES:
            problems.append(f"{where}: unknown status")
        if rows_in != loaded + quarantine or min(rows_in, loaded, quarantine) < 0:
            problems.append(f"{where}: rows_in {rows_in} != {loaded} loaded + {quarantine} quarantined")
        if quarantined[file_id] != quarantine:
            problems.append(f"{where}: {quarantined[file_id]} quarantine rows, ledger says {quarantine}")
        if status == "rejected":
            if loaded != 0:
                problems.append(f"{where}: a rejected file loaded {loaded} rows")
            if not (reason or "").strip():
                problems.append(f"{where}: rejected with no reason")
            if quarantine != rows_in:
                problems.append(f"{where}: readable rows of a rejected file are not all quarantined")
        elif reason is not None:
            problems.append(f"{where}: reason {reason!r} on a file that was not rejected")
        if status == "duplicate" and (rows_in, loaded, quarantine) != (0, 0, 0):
            problems.append(f"{where}: a duplicate has counts {rows_in}/{loaded}/{quarantine}")
        if written_rows is not None and status != "duplicate" and rows_in != written_rows[name]:
            problems.append(f"{where}: rows_in {rows_in}, but the file holds {written_rows[name]} rows")
    # quarantined line numbers are data-line numbers of the file, each at most once
    bad_lines = con.execute("""
        select f.file_name, count(*) from quarantine_rows q join files f using (file_id)
        where q.line_number is null or q.line_number < 1 or q.line_number > f.rows_in
        group by all""").fetchall()
    repeated = con.execute("select file_name, line_number from quarantine_rows group by file_id, "
                           "file_name, line_number having count(*) > 1 limit 5").fetchall()
    problems += [f"{n}: {c} quarantine rows with a line number outside 1..rows_in" for n, c in bad_lines]
    problems += [f"{n}: line {line} quarantined twice" for n, line in repeated]
    # raw rows: a loaded file keeps exactly rows_loaded rows; superseded, rejected, duplicate none
    for dataset, in con.execute("select distinct dataset from files where dataset is not null").fetchall():
        mismatched = con.execute(f"""
            select f.file_name, f.status, f.rows_loaded, count(r.file_id)
            from files f left join raw_{dataset} r using (file_id)
            where f.dataset = ? group by all
            having count(r.file_id) <> case when f.status = 'loaded' then f.rows_loaded else 0 end
        """, [dataset]).fetchall()
        problems += [f"{n} ({s}): {got} raw rows, expected {want if s == 'loaded' else 0}"
                     for n, s, want, got in mismatched]
    # no row outlives its file's ledger row (a half-committed file would leave some behind)
    for table in RAW_TABLES + ("quarantine_rows", "file_months", "published_checks"):
        orphans = con.execute(f"select count(*) from {table} where file_id not in "
                              "(select file_id from files)").fetchone()[0]
        if orphans:
            problems.append(f"{table}: {orphans} rows of a file that is not in the ledger")
    assert not problems, "\n".join(problems[:30])
    return [row[1:] for row in ledger]


def raw_rows_by_file(db: Path) -> list[tuple]:
    """How many rows each table holds per file name."""
    return sorted(
        (table, *row) for table in RAW_TABLES + ("quarantine_rows",)
        for row in query(db, f"select coalesce(f.file_name, '(not in the ledger)'), count(*) "
                             f"from {table} t left join files f using (file_id) group by all"))


# NHS numbers: ten digits (optionally written 3-3-4), not part of a longer number or a decimal.
_DIGIT_RUN = re.compile(r"(?<![0-9.])[0-9]{10,}(?![0-9])")
_SPACED = re.compile(r"(?<![0-9.])([0-9]{3})[ -]([0-9]{3})[ -]([0-9]{4})(?![0-9])")
_MAY_HOLD_ONE = r"[0-9]{10}|[0-9]{3}[ -][0-9]{3}[ -][0-9]{4}"


def nhs_numbers_in(text: str, numbers: set[str]) -> set[str]:
    """Which of `numbers` occur in `text`, as a number of their own or inside a longer digit run."""
    found = set()
    for match in _DIGIT_RUN.finditer(text):
        run = match.group()
        found |= {run[i:i + 10] for i in range(len(run) - 9)} & numbers
    found |= {"".join(m.groups()) for m in _SPACED.finditer(text)} & numbers
    return found


def corpus_nhs_numbers(landing: Path) -> set[str]:
    """Every ten-digit NEWNHSNO value written in the corpus (valid or not), from CSV, CSV.GZ and
    Parquet files alike; unreadable files are skipped."""
    numbers: set[str] = set()
    for path in sorted(landing.iterdir()):
        name = path.name.lower()
        try:
            if name.endswith(".parquet"):
                frame = pl.read_parquet(path)
                cols = [c for c in frame.columns if c.strip().upper() == "NEWNHSNO"]
                values = [v for c in cols for v in frame[c].cast(pl.String).to_list()]
            else:
                opener = gzip.open if name.endswith(".gz") else open
                with opener(path, "rb") as handle:
                    text = handle.read().decode("utf-8-sig")
                rows = csv.reader(io.StringIO(text))
                header = [h.strip().upper() for h in next(rows, [])]
                if "NEWNHSNO" not in header:
                    continue
                at = header.index("NEWNHSNO")
                values = [r[at] for r in rows if len(r) > at]
        except (OSError, EOFError, UnicodeDecodeError, pl.exceptions.PolarsError):
            continue
        numbers |= {v.strip() for v in values
                    if v and re.fullmatch(r"[0-9]{10}", v.strip()) and len(set(v.strip())) > 1}
    return numbers


def nhs_numbers_in_database(db: Path, numbers: set[str]) -> dict[str, set[str]]:
    """Every column of every table and view, cast to text; {"table.column": numbers found}."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        columns = con.execute("""
            select table_name, column_name from information_schema.columns
            where table_catalog = current_database() order by all""").fetchall()
        assert columns, "the database has no tables"
        found = {}
        for table, column in columns:
            values = con.execute(
                f'select distinct v from (select "{column}"::varchar as v from "{table}") '
                f"where regexp_matches(v, '{_MAY_HOLD_ONE}')").fetchall()
            hits = set().union(*(nhs_numbers_in(v, numbers) for v, in values)) if values else set()
            if hits:
                found[f"{table}.{column}"] = hits
        return found
    finally:
        con.close()


def nhs_numbers_in_files(files, numbers: set[str]) -> dict[str, set[str]]:
    found = {}
    for path in files:
        hits = nhs_numbers_in(Path(path).read_bytes().decode("latin-1"), numbers)
        if hits:
            found[str(path)] = hits
    return found


@pytest.fixture(scope="module")
def faulty_corpus(tmp_path_factory):
    """The generated corpus with every kind of fault and format mixed in (read-only)."""
    landing = tmp_path_factory.mktemp("faulty") / "landing"
    summary = generate(landing, seed=11, months=6, faults=True, formats=True)
    return landing, summary


@pytest.fixture(scope="module")
def small_landing(tmp_path_factory):
    """Two clean months: files that hold NEWNHSNO, quick to load (read-only)."""
    landing = tmp_path_factory.mktemp("small") / "landing"
    summary = generate(landing, seed=3, months=2, faults=False, formats=False)
    return landing, summary


@pytest.fixture
def no_joinedup_env(monkeypatch):
    for name in [n for n in os.environ if n.startswith("JOINEDUP_")]:
        monkeypatch.delenv(name)


# ------------------------------------------------------------------------------ 1. ledger


@pytest.mark.e2e
def test_faulty_corpus_accounts_for_every_row_and_passes_the_contract(faulty_corpus, tmp_path,
                                                                      monkeypatch, no_joinedup_env):
    from flows.db import connect
    from flows.ingest.loader import load_landing
    from flows.monthly import call_plain, run_job
    from flows.months import month_range, parse_month
    from flows.settings import load_settings

    landing, summary = faulty_corpus
    db, reports = tmp_path / "j.duckdb", tmp_path / "reports"
    con = connect(db)
    try:
        result = load_landing(con, landing, pseudo_key=KEY)
        log = assert_ledger_consistent(con, written_rows=summary.rows)
    finally:
        con.close()

    names = [row[0] for row in log]
    assert sorted(names) == sorted(p.name for p in landing.iterdir()), "every file is in load_log once"
    assert [r.file_name for r in result.results] == [n for n in names]
    statuses = {name: status for name, status, *_ in log}
    assert set(statuses.values()) == ALL_STATUSES, Counter(statuses.values())
    expected_rejected = {n for n in names if any(m in n for m in REJECTED_MARKERS)} | {
        n for n in names if n.startswith("admissions_") or re.search(r"_\d{6}\.csv$|-13\.csv$", n)}
    assert {n for n, s in statuses.items() if s == "rejected"} == expected_rejected
    assert any(s == "loaded" and q > 0 for _, s, _, _, q, _ in log), "faulty rows were quarantined"
    unreadable = [row for row in log if "_corrupt" in row[0]]
    assert unreadable and all(row[2] == 0 for row in unreadable), unreadable

    # the full build loads nothing new and leaves the ledger as it was
    monkeypatch.setenv("JOINEDUP_PSEUDO_KEY", KEY)
    first, last = summary.months[0], summary.months[-1]
    settings = load_settings(landing=landing, db=db, reports=reports)
    record = run_job(flow_name="backfill", months=month_range(parse_month(first), parse_month(last)),
                     settings=settings, parameters={}, call=call_plain, include_stale=True)
    assert record.load.results == []
    assert record.build.months_built, "the build made figures"
    check = run_contract_check(db)
    assert check.returncode == 0, check.stdout + check.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert assert_ledger_consistent(con, written_rows=summary.rows) == log
    finally:
        con.close()


# ------------------------------------------------------------------------------ 2. NHS numbers


def test_the_nhs_number_scanner_finds_what_it_should():
    numbers = {"9434765919", "9990000018"}
    assert nhs_numbers_in("a,9434765919,b", numbers) == {"9434765919"}
    assert nhs_numbers_in("R0A99900000181", numbers) == {"9990000018"}
    assert nhs_numbers_in("943 476 5919 and 999-000-0018", numbers) == numbers
    assert nhs_numbers_in("0.94347659190 12345", numbers) == set()


@pytest.mark.e2e
def test_no_nhs_number_reaches_the_database_the_logs_or_the_reports(faulty_corpus, tmp_path):
    landing, summary = faulty_corpus
    numbers = corpus_nhs_numbers(landing)
    assert len(numbers) > 1000, "the corpus holds NHS numbers to look for"
    assert "9990000017" in numbers, "the corpus's invalid NHS numbers are looked for too"
    some_csv = next(p for p in sorted(landing.glob("apc_*.csv")))
    assert nhs_numbers_in_files([some_csv], numbers), "the scanner finds them where they are"

    _, db, reports = paths(tmp_path, "run")
    run = cli("run", "--month", summary.months[-1], "--landing", landing, "--db", db,
              "--reports", reports)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (reports / "index.html").exists()

    leaks = {}
    leaks |= {f"stdout/stderr: {k}": v for k, v in
              {"stdout": nhs_numbers_in(run.stdout, numbers),
               "stderr": nhs_numbers_in(run.stderr, numbers)}.items() if v}
    report_files = [p for p in reports.rglob("*") if p.is_file()]
    assert len(report_files) > 10
    leaks |= nhs_numbers_in_files(report_files, numbers)
    leaks |= nhs_numbers_in_database(db, numbers)
    # the raw bytes of the database and anything else the run left beside it (wal, lock)
    leaks |= nhs_numbers_in_files([p for p in db.parent.iterdir() if p.is_file()], numbers)
    assert not leaks, {k: sorted(v)[:3] for k, v in leaks.items()}


# ------------------------------------------------------------------------------ 3. key missing


def test_nhs_numbers_without_a_key_stop_the_run_with_one_line(small_landing, tmp_path):
    landing, summary = small_landing
    _, db, reports = paths(tmp_path, "nokey")
    run = cli("run", "--month", summary.months[-1], "--landing", landing, "--db", db,
              "--reports", reports, key=None)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert "JOINEDUP_PSEUDO_KEY" in lines[0] and "export JOINEDUP_PSEUDO_KEY=" in lines[0], lines[0]
    assert not reports.exists() or not any(reports.rglob("*.html"))
    if db.exists():
        assert query(db, "select count(*) from files") == [(0,)]
        for table in RAW_TABLES + ("quarantine_rows",):
            assert query(db, f"select count(*) from {table}") == [(0,)], table


# ------------------------------------------------------------------------------ 4. SIGKILL

# Kill points, by how far the run's write-ahead log has got (progress, not wall time, so they hold
# on a slow machine). The files of a batch commit together (a file the batch cannot take commits on
# its own), so the WAL grows batch by batch while the extracts load (the schema and code lists
# alone are ~70 KB; the first months of apc extracts take it to ~8 MB); DuckDB then checkpoints it
# into the database file (here: after about 40 of the 70 files) and it starts again from empty. A
# run is killed as soon as its WAL reaches the point, i.e. while it is loading the next batch.
#   middle:            several months of apc extracts are in, before any checkpoint
#   after checkpoint:  the database file holds a checkpoint and the WAL has grown again
# ("early", (False, 150_000): just after the reference data, is a third point; it adds a full
# run's time for little more coverage.)
KILL_POINTS = {"middle": (False, 4_000_000), "after checkpoint": (True, 300_000)}


class Watched:
    """A CLI run whose WAL is watched until it reaches its kill point."""

    def __init__(self, db: Path, proc: subprocess.Popen, after_checkpoint: bool, wal: int):
        self.db, self.proc, self.after_checkpoint, self.wal = db, proc, after_checkpoint, wal
        self.largest, self.checkpointed = 0, False

    def reached(self) -> bool:
        size = _wal_bytes(self.db)
        if size < self.largest:
            self.checkpointed = True
        self.largest = max(self.largest, size)
        return size >= self.wal and self.checkpointed == self.after_checkpoint


def _wal_bytes(db: Path) -> int:
    try:
        return db.with_name(db.name + ".wal").stat().st_size
    except FileNotFoundError:
        return 0


def _backfill(landing: Path, month: str, db: Path, log: str = "run") -> subprocess.Popen:
    """Start `joinedup backfill` of one month into `db`; its output goes to files beside it."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.parent / f"{log}.out", "w") as out, open(db.parent / f"{log}.err", "w") as err:
        return subprocess.Popen(
            cli_command("backfill", "--from", month, "--to", month, "--landing", landing,
                        "--db", db, "--reports", db.parent / "reports"),
            env=cli_env(), cwd=ROOT, stdout=out, stderr=err)


def _finish(proc: subprocess.Popen, db: Path, log: str = "run", timeout: float = 300) -> None:
    assert proc.wait(timeout=timeout) == 0, (db.parent / f"{log}.err").read_text()[-3000:]


@pytest.mark.e2e
def test_a_run_killed_mid_load_then_run_again_ends_as_an_uninterrupted_run(tmp_path):
    landing = tmp_path / "landing"
    summary = generate(landing, seed=5, months=8, faults=True, formats=True)
    files = len(list(landing.iterdir()))
    month = summary.months[-1]

    reference_db = tmp_path / "reference" / "j.duckdb"
    reference = _backfill(landing, month, reference_db)
    runs = {}
    for name, point in KILL_POINTS.items():
        db = tmp_path / name.replace(" ", "-") / "j.duckdb"
        runs[name] = Watched(db, _backfill(landing, month, db), *point)
    pending, deadline = dict(runs), time.monotonic() + 300
    while pending:
        for name, run in list(pending.items()):
            if run.reached():
                os.kill(run.proc.pid, signal.SIGKILL)
                assert run.proc.wait(timeout=30) == -signal.SIGKILL
                del pending[name]
            elif run.proc.poll() is not None:
                pytest.fail(f"the {name} run ended ({run.proc.returncode}) before its kill point: "
                            + (run.db.parent / "run.err").read_text()[-2000:])
        assert time.monotonic() < deadline, "the runs never reached their kill points"
        time.sleep(0.005)

    # what a killed run left behind is itself consistent, and it was killed mid-load
    for name, run in runs.items():
        db = run.db
        snapshot = tmp_path / f"{name}-snapshot".replace(" ", "-")
        snapshot.mkdir()
        for part in db.parent.glob(db.name + "*"):
            shutil.copy(part, snapshot / part.name)
        con = duckdb.connect(str(snapshot / db.name), read_only=True)
        try:
            seen = con.execute("select count(*) from files").fetchone()[0]
            assert 0 < seen < files, f"{name}: killed after {seen} of {files} files, not mid-load"
            assert assert_ledger_consistent(con, written_rows=summary.rows)
        finally:
            con.close()

    # run again, in the killed run's database, to completion
    again = {name: _backfill(landing, month, run.db, "again") for name, run in runs.items()}
    _finish(reference, reference_db)
    expected = contract_state(reference_db)
    expected_raw = raw_rows_by_file(reference_db)
    assert expected["metric_values"] and expected["quarantine"]
    for name, proc in again.items():
        db = runs[name].db
        _finish(proc, db, "again")
        got = contract_state(db)
        for view in expected:
            assert got[view] == expected[view], f"{name}: {view} differs from an uninterrupted run"
        assert raw_rows_by_file(db) == expected_raw, f"{name}: raw rows differ"
        check = run_contract_check(db)
        assert check.returncode == 0, check.stdout + check.stderr


# ------------------------------------------------------------------------------ 5. one writer


def _fds_of(pid: int) -> set[str]:
    try:
        return {os.readlink(p) for p in Path(f"/proc/{pid}/fd").iterdir()}
    except OSError:
        return set()


@pytest.mark.e2e
@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc to see the lock wait")
def test_one_writer_a_second_run_fails_at_once_or_waits_with_wait(small_landing, tmp_path):
    from flows.lock import lock_path, read_holder

    landing, summary = small_landing
    _, db, reports = paths(tmp_path, "lock")
    month = summary.months[-1]
    args = ("run", "--month", month, "--landing", landing, "--db", db, "--reports", reports)
    first = cli(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    before = contract_state(db)
    runs_before = query(db, "select count(*) from run_log")[0][0]

    holder = subprocess.Popen([sys.executable, str(HOLD_LOCK), str(db)], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "holding"
        held_by = read_holder(lock_path(db))
        assert held_by["pid"] == holder.pid

        busy = cli(*args, timeout=120)
        assert holder.poll() is None, "the holder still holds the lock: the run did not wait"
        assert busy.returncode != 0
        assert "Traceback" not in busy.stderr
        lines = [line for line in busy.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, busy.stderr
        assert str(holder.pid) in lines[0] and HOLD_LOCK.name in lines[0], lines[0]
        assert held_by["started"] in lines[0], lines[0]
        assert "--wait" in lines[0]
        assert query(db, "select count(*) from run_log")[0][0] == runs_before
        assert contract_state(db) == before

        with open(tmp_path / "wait.out", "w") as out, open(tmp_path / "wait.err", "w") as err:
            waiting = subprocess.Popen(cli_command(*args, "--wait", 5), env=cli_env(), cwd=ROOT,
                                       stdout=out, stderr=err)
        lock = str(lock_path(db))
        deadline = time.monotonic() + 60
        while lock not in _fds_of(waiting.pid):   # it has opened the lock file: it is waiting
            assert waiting.poll() is None, (tmp_path / "wait.err").read_text()
            assert time.monotonic() < deadline, "the waiting run never reached the lock"
            time.sleep(0.02)
        time.sleep(2)
        assert waiting.poll() is None, "the run stopped waiting before the holder let go"
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
        assert waiting.wait(timeout=300) == 0, (tmp_path / "wait.err").read_text()[-3000:]
        assert "Traceback" not in (tmp_path / "wait.err").read_text()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()

    assert query(db, "select count(*) from run_log")[0][0] == runs_before + 1
    assert contract_state(db) == before
    check = run_contract_check(db)
    assert check.returncode == 0, check.stdout + check.stderr


# ------------------------------------------------------------------------------ 6. broken files


def test_a_landing_folder_of_only_broken_files_is_reported_not_a_traceback(small_landing, tmp_path):
    source, summary = small_landing
    landing, db, reports = paths(tmp_path, "broken")
    landing.mkdir()
    apc = sorted(source.glob("apc_*.csv"))[0]
    period = apc.stem.split("_")[2]
    lines = apc.read_text().splitlines()
    header = lines[0].split(",")
    drop = header.index("STARTAGE")
    missing = [",".join(v for i, v in enumerate(line.split(",")) if i != drop) for line in lines[:21]]
    broken = {
        f"apc_R0A_{period.replace('-', '')}.csv": "\n".join(lines[:11]) + "\n",     # bad name
        f"admissions_R0A_{period}.csv": "\n".join(lines[:12]) + "\n",               # unknown dataset
        f"apc_R0A_{period[:4]}-13.csv": "\n".join(lines[:13]) + "\n",               # not a month
        "notes.txt": "not an extract\n",                                            # bad extension
        f"apc_RM3_{period}_missing_column.csv": "\n".join(missing) + "\n",          # missing column
        f"apc_RWW_{period}.csv.gz": os.urandom(512),                                # garbage gz
        f"carehome_E08000003_{period}.parquet": b"PAR1" + os.urandom(256),          # garbage parquet
        f"reablement_E08000009_{period}.csv": "",                                   # empty file
        f"carehome_E08000009_{period}.csv": b"\xff\xfe\x00L\x00A\x00_\x00C\x00\n",  # not UTF-8
        f"Monthly-AE-{period}.csv.gz": os.urandom(300),                             # garbage, no name
    }
    for name, data in broken.items():
        (landing / name).write_bytes(data if isinstance(data, bytes) else data.encode())

    run = cli("run", "--month", period, "--landing", landing, "--db", db, "--reports", reports)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    for name in broken:
        assert name in run.stderr, f"{name} is not in the run's report:\n{run.stderr}"
    assert "No report rendered" in run.stdout or "Report:" in run.stdout, run.stdout
    log = query(db, "select file_name, status, rows_in, rows_loaded, rows_quarantined, reason "
                    "from load_log")
    assert sorted(row[0] for row in log) == sorted(broken)
    assert all(status == "rejected" and reason for _, status, *_, reason in log), \
        "\n".join(map(str, log))
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert_ledger_consistent(con)
    finally:
        con.close()
