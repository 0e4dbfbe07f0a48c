"""File names per the contract: <dataset>_<org_code>_<YYYY-MM>[_<free text>].<ext>."""
from __future__ import annotations

import pytest

from flows.errors import FileRejected
from flows.ingest.landing import _load_order
from flows.ingest.naming import parse_file_name


@pytest.mark.parametrize("name, dataset, org, period", [
    ("apc_RXH_2025-10.csv", "apc", "RXH", "2025-10"),
    ("apc_RXH_2025-10_resubmission.csv.gz", "apc", "RXH", "2025-10"),
    ("carehome_E06000043_2025-10.parquet", "carehome", "E06000043", "2025-10"),
    ("population_ONS_2024.csv", "population", "ONS", None),
    ("plan_E06000043_2025-26.csv", "plan", "E06000043", None),
    ("orgs_all.csv", "orgs", "all", None),
])
def test_contract_names_parse(name, dataset, org, period):
    parsed = parse_file_name(name)
    assert (parsed.dataset, parsed.org_code, parsed.period) == (dataset, org, period)


@pytest.mark.parametrize("name, says", [
    ("admissions.csv", "unknown dataset"),
    ("apc_RXH_2025-13.csv", "not a month"),
    ("apc_RXH.csv", "name must be"),
    ("apc_RXH_2025-10.xlsx", "extension"),
])
def test_bad_names_are_rejected_with_a_reason(name, says):
    with pytest.raises(FileRejected, match=says):
        parse_file_name(name)


def test_editions_of_reference_files_do_not_replace_each_other():
    assert parse_file_name("plan_E06000043_2025-26.csv").identity != \
        parse_file_name("plan_E06000043_2026-27.csv").identity
    assert parse_file_name("plan_E06000043_2025-26.csv").identity == \
        parse_file_name("plan_E06000043_2025-26_v2.csv").identity


def test_an_original_loads_before_its_resubmissions_whatever_the_order():
    from pathlib import Path
    names = ["apc_RXH_2025-10_v10.csv", "apc_RXH_2025-10_v2.csv", "apc_RXH_2025-10.csv",
             "orgs_all.csv", "apc_RXH_2025-09.csv"]
    ordered = [p.name for p in sorted((Path(n) for n in names), key=_load_order)]
    assert ordered == ["orgs_all.csv", "apc_RXH_2025-09.csv", "apc_RXH_2025-10.csv",
                       "apc_RXH_2025-10_v2.csv", "apc_RXH_2025-10_v10.csv"]


def test_free_texts_of_any_shape_can_be_ordered():
    from pathlib import Path
    names = ["apc_RXH_2025-10_v2.csv", "apc_RXH_2025-10_2b.csv", "apc_RXH_2025-10_fix.csv"]
    ordered = [p.name for p in sorted((Path(n) for n in names), key=_load_order)]
    assert ordered == ["apc_RXH_2025-10_2b.csv", "apc_RXH_2025-10_fix.csv", "apc_RXH_2025-10_v2.csv"]
