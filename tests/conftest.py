"""Shared fixtures: hand-made extract writers, a generated sample, the Prefect test harness."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.contract import check_database

ROOT = Path(__file__).resolve().parents[1]
# Published files the tests read, copied with their SOURCE.md and licence (tests/data/README.md)
TEST_DATA = ROOT / "tests" / "data"
# The workspace beside a checkout (its contract checker, data whose licence keeps it out of the
# project). Optional: nothing in `make test` needs it; JOINEDUP_SHARED points elsewhere, and
# JOINEDUP_SHARED=/nonexistent runs the suite as a clone with nothing beside it does.
SHARED = Path(os.environ.get("JOINEDUP_SHARED") or ROOT.parent / "shared")
SHARED_DATA = SHARED / "data"
SHARED_CONTRACT_CHECK = SHARED / "tools" / "contract-check"

# Tests never write to a developer's own Prefect database, and never phone home.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def write_csv(path: Path, header: str, *rows: str) -> Path:
    """Write a small CSV extract from a header line and row lines, as a sender would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join((header,) + rows) + "\n")
    return path


def run_contract_check(db: Path) -> subprocess.CompletedProcess:
    """The project's own output-contract check (tests/contract.py) on a database file, as a
    process result: returncode 0 with a summary, or 1 with one problem a line."""
    problems, summary = check_database(db)
    return subprocess.CompletedProcess(args=["contract", str(db)], returncode=1 if problems else 0,
                                       stdout="\n".join(problems) if problems else summary, stderr="")


def run_shared_contract_check(db: Path) -> subprocess.CompletedProcess:
    """The workspace's own checker, when there is one beside the checkout (skips otherwise)."""
    if not SHARED_CONTRACT_CHECK.exists():
        pytest.skip(f"no shared contract checker at {SHARED_CONTRACT_CHECK}")
    return subprocess.run([sys.executable, str(SHARED_CONTRACT_CHECK), str(db)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """A throwaway Prefect API for tests that run real flows."""
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def sample_landing(tmp_path_factory) -> Path:
    """A generated 24-month landing folder (fixed seed), shared read-only by tests."""
    from sample.generate import generate_landing

    landing = tmp_path_factory.mktemp("sample") / "landing"
    generate_landing(landing, seed=7, months=24)
    return landing
