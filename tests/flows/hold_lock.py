"""Test helper: hold joinedup's writer lock on a database until a line (or EOF) arrives on stdin.

    python tests/flows/hold_lock.py DB_FILE

Prints "holding" once the lock is held, so the test knows when to start the contending run.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from flows.lock import writer_lock  # noqa: E402


def main(db: str) -> None:
    with writer_lock(Path(db)):
        print("holding", flush=True)
        sys.stdin.readline()


if __name__ == "__main__":
    main(sys.argv[1])
