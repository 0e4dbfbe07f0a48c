"""Progress of a long run as log lines, for when standard error is not a terminal (cron, CI,
a container's log): where the run is, at most one line per step every `interval` seconds, on
standard output (standard error keeps only the one line that says why a run failed).

On a terminal the CLI shows Rich progress bars instead (flows/cli.py, `RichProgress`); both
receive the same calls from the run (`pipeline.Progress`): files loaded, months built. The
report step's per-month lines (pages rendered and unchanged) come from the `joinedup.report`
logger, which this handler shows too.
"""
from __future__ import annotations

import logging
import sys
import time

from flows.pipeline import Progress

LOGGER = "joinedup"
INTERVAL_SECONDS = 10.0


class IntervalLogProgress(Progress):
    """Logs each step's start and end, and how far it has got every `interval` seconds."""

    LABELS = {"load": "loading extracts", "plan": "planning", "build": "building months",
              "report": "rendering reports"}

    def __init__(self, interval: float = INTERVAL_SECONDS, stream=None, clock=time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.log = logging.getLogger(f"{LOGGER}.progress")
        self.stream = stream
        self.handler: logging.Handler | None = None
        self.steps: dict[str, dict] = {}

    def __enter__(self) -> IntervalLogProgress:
        logger = logging.getLogger(LOGGER)
        self.level = logger.level
        logger.setLevel(logging.INFO)
        # standard output: standard error carries only the one line saying why a run failed
        self.handler = logging.StreamHandler(self.stream or sys.stdout)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(self.handler)
        self.propagate, logger.propagate = logger.propagate, False
        return self

    def __exit__(self, *exc) -> None:
        logger = logging.getLogger(LOGGER)
        logger.setLevel(self.level)
        if self.handler:
            logger.removeHandler(self.handler)
            logger.propagate = self.propagate
            self.handler = None

    def begin(self, step: str, total: int | None = None) -> None:
        now = self.clock()
        self.steps[step] = {"total": total, "done": 0, "began": now, "logged": now}
        of = f" ({total})" if total else ""
        self.log.info("%s%s: started", self.LABELS.get(step, step), of)

    def advance(self, step: str, label: str = "") -> None:
        state = self.steps.setdefault(step, {"total": None, "done": 0, "began": self.clock(),
                                             "logged": self.clock()})
        state["done"] += 1
        now = self.clock()
        if now - state["logged"] >= self.interval:
            state["logged"] = now
            of = f" of {state['total']}" if state["total"] else ""
            self.log.info("%s: %d%s done after %.0fs%s", self.LABELS.get(step, step), state["done"],
                          of, now - state["began"], f", last {label}" if label else "")

    def end(self, step: str) -> None:
        state = self.steps.pop(step, None)
        if state is None:
            return
        self.log.info("%s: finished, %d done in %.1fs", self.LABELS.get(step, step), state["done"],
                      self.clock() - state["began"])
