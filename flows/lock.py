"""One writer per database: a lock file next to it names the holder (pid, command, start time)."""
from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from flows.errors import DatabaseLocked

POLL_SECONDS = 0.2


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


@contextmanager
def writer_lock(db: Path, *, wait_seconds: float = 0):
    """Hold the database's writer lock, waiting at most `wait_seconds` for another run."""
    path = lock_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:   # closing releases the flock; the stale holder text is harmless
        _acquire(handle, path, wait_seconds)
        _write_holder(handle)
        yield


def _acquire(handle, path: Path, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise DatabaseLocked(_busy_message(path, wait_seconds)) from None
            time.sleep(POLL_SECONDS)


def _write_holder(handle) -> None:
    holder = {
        "pid": os.getpid(),
        "command": " ".join(sys.argv) or sys.executable,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(holder))
    handle.flush()


def read_holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _busy_message(path: Path, wait_seconds: float) -> str:
    holder = read_holder(path)
    who = (f"pid {holder.get('pid', '?')} ({holder.get('command', '?')}), "
           f"started {holder.get('started', '?')}")
    waited = f" after waiting {wait_seconds:g}s" if wait_seconds else ""
    return (f"the database is in use by another joinedup run: {who}{waited}. "
            "Wait for it to finish, or set JOINEDUP_LOCK_WAIT / --wait to wait for it.")
