"""Shared fixtures: hand-made extract writers, a generated sample, the Prefect test harness."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CONTRACT_CHECK = SHARED / "tools" / "contract-check"

# Tests never write to a developer's own Prefect database, and never phone home.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def write_csv(path: Path, header: str, *rows: str) -> Path:
    """Write a small CSV extract from a header line and row lines, as a sender would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join((header,) + rows) + "\n")
    return path


def run_contract_check(db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CONTRACT_CHECK), str(db)],
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
    from flows.sample import generate_landing

    landing = tmp_path_factory.mktemp("sample") / "landing"
    generate_landing(landing, seed=7, months=24)
    return landing
