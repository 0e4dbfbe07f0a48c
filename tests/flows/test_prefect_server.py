"""The deployments in prefect.yaml against a real `prefect server start` and a process worker.

One Prefect server (own PREFECT_HOME, free port), the work pool, `prefect --no-prompt deploy --all`
from the repo root, and a `prefect worker start` whose environment carries the JOINEDUP_* settings
(the flow-run subprocesses inherit it) are shared by the tests of this module. The tests trigger
runs with the `prefect` CLI as an operator would and read the outcome from the API and from the
DuckDB file. Every process started here is stopped in the fixture teardown, pass or fail.

Run alone with:  .venv/bin/python -m pytest tests/flows/test_prefect_server.py -q -s
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
POOL = "joinedup-local"
SAMPLE_MONTHS = 6            # 2024-04 .. 2024-09
SERVER_START_TIMEOUT = 180   # a fresh PREFECT_HOME migrates its SQLite database first
RUN_TIMEOUT = 240

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("prefect-server")]


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`. A process worker starts each flow run in a new session, so
    killing the worker's process group alone would leave a running flow run behind."""
    children, found, todo = _children_map(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM the process's group and the groups of all its descendants, then SIGKILL."""
    if proc.poll() is not None:
        return
    pids = [proc.pid] + _descendants(proc.pid)
    groups = set()
    for pid in pids:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    groups.discard(os.getpgrp())          # never signal pytest's own group
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for group in groups:
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=grace)
            if sig == signal.SIGTERM and not any(_alive(p) for p in pids[1:]):
                return
        except subprocess.TimeoutExpired:
            pass
    for pid in pids[1:]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=grace)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path.name}: no output)"
    return f"--- last lines of {path.name} ---\n" + "\n".join(
        path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Stack:
    api_url: str
    env: dict[str, str]
    logs: Path
    landing: Path
    db: Path
    reports: Path
    months: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        began = time.perf_counter()
        done = subprocess.run([PREFECT, *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        command = " ".join(a for a in args[:3] if not a.startswith("-"))
        self.timings.setdefault(f"prefect {command} (first call)", round(time.perf_counter() - began, 1))
        if check and done.returncode != 0:
            raise AssertionError(f"prefect {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def start(self, name: str, *args: str, env: dict | None = None) -> subprocess.Popen:
        # Started outside the checkout: the deployment's own working directory (recorded by
        # `prefect deploy`) is what makes its runs find the code, not where the worker starts.
        with open(self.logs / f"{name}.log", "w") as log:    # the child keeps its own copy
            proc = subprocess.Popen([PREFECT, *args], cwd=self.logs.parent, env=env or self.env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(proc)
        return proc

    def client(self):
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api_url}):
            return get_client(sync_client=True)

    def run_backfill(self, from_month: str, to_month: str, *extra: str) -> subprocess.CompletedProcess:
        return self.cli("deployment", "run", "backfill/backfill",
                        "--param", f"from_month={json.dumps(from_month)}",
                        "--param", f"to_month={json.dumps(to_month)}", *extra, check=False)

    def wait_for(self, run_id: UUID, timeout: float = RUN_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                run = client.read_flow_run(run_id)
                if run.state and run.state.is_final():
                    return run
                if time.monotonic() > deadline:
                    raise AssertionError(f"flow run {run_id} still {run.state and run.state.name} "
                                         f"after {timeout}s\n{_tail(self.logs / 'worker.log')}")
                time.sleep(1)


def _flow_run_id(done: subprocess.CompletedProcess) -> UUID:
    assert done.returncode == 0, f"deployment run failed:\n{done.stdout}\n{done.stderr}"
    match = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout)
    assert match, done.stdout
    return UUID(match.group(1))


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"prefect server exited with {proc.returncode}\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"prefect server not healthy after {timeout}s\n{_tail(log)}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Server, work pool, deployments and worker; torn down whatever happens."""
    from sample.generate import generate_landing

    base = tmp_path_factory.mktemp("prefect-server")
    home, logs = base / "prefect-home", base / "logs"
    home.mkdir()
    logs.mkdir()
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "JOINEDUP_"))}      # nothing from a developer's setup
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # A run that cannot get the deployment's concurrency slot is re-tried after this many
        # seconds (default 30); shorter keeps the test quick, it does not change the semantics.
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "5",
        "PREFECT_WORKER_QUERY_SECONDS": "2",        # default 10
        "COLUMNS": "200",                           # keep the CLI's UUID lines unwrapped
        "JOINEDUP_LANDING": str(base / "landing"),
        "JOINEDUP_DB": str(base / "data" / "joinedup.duckdb"),
        "JOINEDUP_REPORTS": str(base / "reports"),
        "JOINEDUP_PSEUDO_KEY": "prefect-server-e2e-key",
    })
    began = time.perf_counter()
    summary = generate_landing(base / "landing", seed=11, months=SAMPLE_MONTHS)
    s = Stack(api_url=api_url, env=env, logs=logs, landing=base / "landing",
              db=base / "data" / "joinedup.duckdb", reports=base / "reports", months=summary.months)
    s.timings["sample landing folder"] = round(time.perf_counter() - began, 1)
    try:
        began = time.perf_counter()
        server = s.start("server", "server", "start", "--host", "127.0.0.1", "--port", str(port))
        _wait_healthy(api_url, server, logs / "server.log", SERVER_START_TIMEOUT)
        s.timings["server start to /api/health (fresh PREFECT_HOME)"] = round(time.perf_counter() - began, 1)

        s.cli("work-pool", "create", POOL, "--type", "process")
        s.cli("--no-prompt", "deploy", "--all")
        # The monthly deployment's cron would fire on the 5th-11th at 07:30 London time; pause
        # it so a scheduled run can never join the test's runs on the same database.
        with s.client() as client:
            monthly = client.read_deployment_by_name("monthly/monthly")
            for schedule in client.read_deployment_schedules(monthly.id):
                client.update_deployment_schedule(monthly.id, schedule.id, active=False)

        s.start("worker", "worker", "start", "--pool", POOL)
        yield s
    finally:
        for proc in reversed(s.processes):          # worker first, then the server
            _stop(proc)
        print("\n[prefect server e2e] timings (s):")
        for name, seconds in s.timings.items():
            print(f"  {name:<55} {seconds:>6}")


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------

def test_deploy_registers_both_deployments_from_prefect_yaml(stack):
    with stack.client() as client:
        backfill = client.read_deployment_by_name("backfill/backfill")
        monthly = client.read_deployment_by_name("monthly/monthly")
        schedules = client.read_deployment_schedules(monthly.id)
    assert backfill.enforce_parameter_schema and monthly.enforce_parameter_schema
    assert backfill.work_pool_name == POOL and monthly.work_pool_name == POOL
    for deployment in (backfill, monthly):
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy.value == "ENQUEUE"
        assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory":
                                          {"directory": str(ROOT)}}]
    month = backfill.parameter_openapi_schema["properties"]["from_month"]
    assert month["pattern"] and month["description"].startswith("First month")
    assert backfill.parameter_openapi_schema["required"] == ["from_month", "to_month"]
    (schedule,) = schedules
    assert schedule.schedule.cron == "30 7 5-11 * 1-5"
    assert schedule.schedule.timezone == "Europe/London" and schedule.schedule.day_or is False


def test_backfill_deployment_run_builds_months_and_renders_reports(stack):
    import duckdb

    first, last = stack.months[0], stack.months[2]
    began = time.perf_counter()
    run_id = _flow_run_id(stack.run_backfill(first, last))
    run = stack.wait_for(run_id)
    stack.timings[f"backfill {first}..{last}: trigger to Completed"] = round(time.perf_counter() - began, 1)
    stack.timings[f"backfill {first}..{last}: flow run time (Running->end)"] = round(
        run.total_run_time.total_seconds(), 1)
    assert run.state.is_completed(), f"{run.state}\n{_tail(stack.logs / 'worker.log')}"
    assert run.parameters["from_month"] == first and run.parameters["to_month"] == last

    con = duckdb.connect(str(stack.db), read_only=True)
    try:
        built = {r[0] for r in con.execute(
            "select distinct strftime(period_month, '%Y-%m') from metric_values").fetchall()}
        runs = con.execute(
            "select run_id, status, parameters, months_built, files_loaded from run_log"
            " where flow = 'backfill'").fetchall()
    finally:
        con.close()
    assert {first, stack.months[1], last} <= built
    mine = [r for r in runs if json.loads(r[2])["from_month"] == first]
    assert len(mine) == 1, runs
    log_run_id, status, _, months_built, files_loaded = mine[0]
    assert status == "completed"
    assert sorted(f"{m:%Y-%m}" for m in months_built) == [first, stack.months[1], last]
    assert files_loaded > 0
    assert (stack.reports / "index.html").exists()

    # The Prefect run and the run_log row are the same run: its summary artifact names it.
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterId,
    )
    with stack.client() as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["run-summary"])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    assert any(f"run {log_run_id}" in (a.data or "") for a in artifacts)


def _backfill_run_count(client) -> int:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deployment = client.read_deployment_by_name("backfill/backfill")
    return len(client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))))


def test_a_bad_month_is_rejected_before_any_run_starts(stack):
    with stack.client() as client:
        before = _backfill_run_count(client)
    done = stack.run_backfill("2024-13", stack.months[0])
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Validation failed for field 'from_month'" in output and "2024-13" in output, output
    assert "Created flow run" not in output
    with stack.client() as client:
        assert _backfill_run_count(client) == before


def test_overlapping_backfills_queue_on_the_deployment_concurrency_limit(stack):
    """Two runs triggered back to back: one holds the slot, the other waits
    (AwaitingConcurrencySlot) and starts only after the first has finished. Both must complete:
    had they overlapped, the second writer would have failed on the DuckDB writer lock."""
    began = time.perf_counter()
    ids = [_flow_run_id(stack.run_backfill(month, month)) for month in stack.months[3:5]]
    runs = [stack.wait_for(run_id) for run_id in ids]
    stack.timings["two overlapping 1-month backfills: trigger to both Completed"] = round(
        time.perf_counter() - began, 1)
    assert all(r.state.is_completed() for r in runs), [r.state for r in runs]

    earlier, later = sorted(runs, key=lambda r: r.start_time)
    stack.timings["  gap: first end -> second start"] = round(
        (later.start_time - earlier.end_time).total_seconds(), 1)
    for r in (earlier, later):
        stack.timings[f"  1-month backfill {r.parameters['from_month']}: flow run time"] = round(
            r.total_run_time.total_seconds(), 1)
    assert earlier.end_time <= later.start_time, (
        f"runs overlapped: {earlier.start_time}-{earlier.end_time} and "
        f"{later.start_time}-{later.end_time}")
    with stack.client() as client:
        names = [s.name for s in client.read_flow_run_states(later.id)]
    assert "AwaitingConcurrencySlot" in names, names

    import duckdb
    con = duckdb.connect(str(stack.db), read_only=True)
    try:
        built = {r[0] for r in con.execute(
            "select distinct strftime(period_month, '%Y-%m') from metric_values").fetchall()}
        completed = con.execute(
            "select count(*) from run_log where flow = 'backfill' and status = 'completed'").fetchone()[0]
    finally:
        con.close()
    assert set(stack.months[3:5]) <= built
    assert completed >= 2


def test_a_monthly_run_and_a_backfill_take_turns_with_a_pool_limit_of_one(stack):
    """Each deployment's limit counts only its own runs: a monthly run and a backfill started
    together both open the database, and the second fails with DatabaseLocked (measured). A work
    pool limit of 1 (the documented setup step) makes the worker take them one at a time."""
    stack.cli("work-pool", "set-concurrency-limit", POOL, "1")
    try:
        began = time.perf_counter()
        monthly = _flow_run_id(stack.cli("deployment", "run", "monthly/monthly",
                                         "--param", f"month={json.dumps(stack.months[5])}", check=False))
        backfill = _flow_run_id(stack.run_backfill(stack.months[1], stack.months[1], "--param",
                                                   "force=true"))
        runs = [stack.wait_for(monthly), stack.wait_for(backfill)]
        stack.timings["monthly + backfill with pool limit 1: trigger to both Completed"] = round(
            time.perf_counter() - began, 1)
    finally:
        stack.cli("work-pool", "clear-concurrency-limit", POOL, check=False)
    assert all(r.state.is_completed() for r in runs), [(r.state.name, r.state.message) for r in runs]
    earlier, later = sorted(runs, key=lambda r: r.start_time)
    assert earlier.end_time <= later.start_time
