"""Measuring a joinedup run from outside: wall time and peak memory of its whole process tree.

`run_measured(args)` starts a command and samples the resident memory (RSS) of it and every
descendant (chart workers included) from /proc every 0.2 s, and returns its wall time and the
peak of the tree's summed RSS. Each figure the national benchmark reports is measured this way,
in a fresh process, so imports and start-up are counted as a user would see them.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SAMPLE_SECONDS = 0.2


@dataclass
class Measured:
    seconds: float
    peak_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str

    @property
    def peak_gib(self) -> float:
        return self.peak_rss_bytes / 1024 ** 3


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        # the command name (field 2) is in parentheses and may hold spaces
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and all its descendants."""
    children, total, todo = _children(), 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            with open(f"/proc/{current}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def run_measured(args: list[str], *, env: dict | None = None, cwd: Path | None = None,
                 log_to: Path | None = None) -> Measured:
    """Run `args`, sampling its process tree's RSS; stdout and stderr kept (or written to
    `log_to`, for a long run whose progress lines are worth reading)."""
    peak = 0
    began = time.perf_counter()
    out = open(log_to, "w") if log_to else subprocess.PIPE  # noqa: SIM115 (closed below)
    process = subprocess.Popen(args, env=env, cwd=cwd, stdout=out,
                               stderr=subprocess.STDOUT if log_to else subprocess.PIPE, text=True)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_bytes(process.pid))
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    if log_to:
        out.close()
        stdout, stderr = Path(log_to).read_text(), ""
    return Measured(seconds, peak, process.returncode, stdout or "", stderr or "")


def python(code: str, *args: str) -> list[str]:
    """A command running `code` in this interpreter (the project's virtual environment)."""
    return [sys.executable, "-c", code, *args]


def joinedup(*args: str) -> list[str]:
    """The joinedup CLI, as `.venv/bin/joinedup` runs it."""
    return python("import sys; from flows.cli import app; sys.argv[0] = 'joinedup'; app()", *args)
