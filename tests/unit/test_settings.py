"""Settings: a flag wins over its environment variable, which wins over the default."""
from __future__ import annotations

from pathlib import Path

from flows.settings import SETTINGS, load_settings
from tests.conftest import ROOT


def test_defaults_are_the_contracts(monkeypatch):
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    settings = load_settings()
    assert settings.landing == Path("data/landing")
    assert settings.db == Path("data/joinedup.duckdb")
    assert settings.reports == Path("reports")
    assert settings.pseudo_key is None


def test_flag_wins_over_environment(monkeypatch):
    monkeypatch.setenv("JOINEDUP_DB", "/env/db.duckdb")
    monkeypatch.setenv("JOINEDUP_LANDING", "/env/landing")
    settings = load_settings(db="/flag/db.duckdb")
    assert settings.db == Path("/flag/db.duckdb")
    assert settings.landing == Path("/env/landing")


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [s.env for s in SETTINGS if s.env not in readme]
    assert not missing, f"README does not document {missing}"
