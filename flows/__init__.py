"""joinedup: monthly health and social care integration metrics."""
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"
TEMPLATES_DIR = PROJECT_ROOT / "templates"
