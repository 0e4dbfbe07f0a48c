"""A long run not on a terminal logs where it is at intervals (flows/progress_log.py)."""
from __future__ import annotations

import io
import logging

from flows.progress_log import IntervalLogProgress


def test_progress_is_logged_at_intervals_when_not_on_a_terminal():
    now = [0.0]
    stream = io.StringIO()
    with IntervalLogProgress(interval=10, stream=stream, clock=lambda: now[0]) as progress:
        progress.begin("load")
        for k in range(30):
            now[0] += 1
            progress.advance("load", f"file{k}.csv")
        progress.end("load")
    lines = stream.getvalue().splitlines()
    assert "loading extracts: started" in lines[0]
    assert [line.split(" ", 1)[1] for line in lines[1:4]] == [
        "loading extracts: 10 done after 10s, last file9.csv",
        "loading extracts: 20 done after 20s, last file19.csv",
        "loading extracts: 30 done after 30s, last file29.csv"]
    assert "finished, 30 done" in lines[-1]
    assert not logging.getLogger("joinedup").handlers        # removed again
