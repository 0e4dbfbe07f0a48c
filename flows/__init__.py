"""joinedup: monthly health and social care integration metrics."""
import csv
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"
TEMPLATES_DIR = PROJECT_ROOT / "templates"


def _england_code() -> str:
    """England's area code, read from the code list the SQL models read too."""
    with open(SQL_DIR / "reference" / "ref_england.csv", newline="", encoding="utf-8") as f:
        (row,) = csv.DictReader(f)
    return row["code"]


ENGLAND_CODE = _england_code()   # E92000001
