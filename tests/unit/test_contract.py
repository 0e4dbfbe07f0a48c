"""The tests' output-contract checker (tests/contract.py) finds each way a database can break the
contract, and nothing in one that keeps it.

The database here is made by hand (tables named as the contract's views), so the checker is
tested apart from the pipeline: one that keeps the contract, then each breach on its own.
"""
from __future__ import annotations

from datetime import date

import duckdb
import pytest

from tests.contract import check_database, contract_problems, nhs_number_valid, nhs_numbers_in

ICB, A, B, ENGLAND = "E54000057", "E08000003", "E08000006", "E92000001"
MONTHS = (date(2025, 10, 1), date(2025, 11, 1))
# The contract's §3 and §3a tables, written out again: each metric's multiplier of numerator / denominator
SCALE = {"emergency_admissions": 100_000, "emergency_admissions_65plus": 100_000,
         "avoidable_admissions": 100_000, "falls_admissions_65plus": 100_000,
         "readmissions_30d": 100, "discharge_to_usual_residence": 100, "mean_length_of_stay": 1,
         "long_stay_21plus": 100, "discharged_on_ready_date": 100, "discharge_delay_days": 1,
         "care_home_admissions_65plus": 100_000, "reablement_at_home_91d": 100,
         # §3a
         "reablement_after_discharge_65plus": 100, "carehome_after_discharge_65plus": 100,
         "readmission_after_reablement_91d": 100}
HWB_FIGURES = {A: (3.0, 1000.0), B: (1.0, 2000.0)}     # numerator, denominator


def cell_rows() -> list[tuple]:
    """Every (month, area, metric) cell: two HWBs, their ICB as their sum, England the same."""
    rows = []
    for month in MONTHS:
        for metric, scale in SCALE.items():
            n = sum(f[0] for f in HWB_FIGURES.values())
            d = sum(f[1] for f in HWB_FIGURES.values())
            areas = [("hwb", code, *HWB_FIGURES[code]) for code in (A, B)]
            areas += [("icb", ICB, n, d), ("england", ENGLAND, n, d)]
            rows += [(month, kind, code, metric, num, den, scale * num / den, None, "final")
                     for kind, code, num, den in areas]
    return rows


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("""create table metric_values (period_month date, area_type varchar, area_code varchar,
                   metric_id varchar, numerator double, denominator double, value double,
                   plan_value double, status varchar)""")
    values = ", ".join(f"('{m}', '{t}', '{c}', '{k}', {n}, {d}, {v}, null, '{s}')"
                       for m, t, c, k, n, d, v, _plan, s in cell_rows())
    con.execute(f"insert into metric_values values {values}")
    con.execute("""create table load_log (file_name varchar, sha256 blob, dataset varchar,
                   org_code varchar, period varchar, status varchar, rows_in bigint,
                   rows_loaded bigint, rows_quarantined bigint, reason varchar)""")
    con.execute("""insert into load_log values
        ('apc_R0A_2025-10.csv', '\\x01'::blob, 'apc', 'R0A', '2025-10', 'superseded', 5, 4, 1, null),
        ('apc_R0A_2025-10_v2.csv', '\\x02'::blob, 'apc', 'R0A', '2025-10', 'loaded', 5, 5, 0, null),
        ('apc_R0A_2025-11.csv', '\\x03'::blob, 'apc', 'R0A', '2025-11', 'loaded', 3, 2, 1, null),
        ('copy.csv', '\\x03'::blob, 'apc', 'R0A', '2025-11', 'duplicate', 0, 0, 0, null),
        ('apc_R0A_2025-13.csv', '\\x04'::blob, null, null, null, 'rejected', 2, 0, 2, 'bad_name: no month 13'),
        ('orgs_all.csv', '\\x05'::blob, 'orgs', 'all', null, 'loaded', 5, 5, 0, null)""")
    con.execute("create table quarantine (file_name varchar, line_number bigint, rule varchar, detail varchar)")
    con.execute("""insert into quarantine values
        ('apc_R0A_2025-10.csv', 4, 'admidate_after_period', 'ADMIDATE 2025-12-01'),
        ('apc_R0A_2025-11.csv', 1, 'key_missing', 'PROVSPNO empty'),
        ('apc_R0A_2025-13.csv', 1, 'bad_name', 'no month 13'),
        ('apc_R0A_2025-13.csv', 2, 'bad_name', 'no month 13')""")
    con.execute("create table orgs (org_code varchar, org_type varchar, org_name varchar, parent_code varchar)")
    con.execute(f"""insert into orgs values ('{ICB}', 'ICB', 'Greater Manchester', null),
                    ('{A}', 'HWB', 'Manchester', '{ICB}'), ('{B}', 'HWB', 'Salford', '{ICB}')""")
    yield con
    con.close()


def problems_after(con, *statements: str) -> str:
    for sql in statements:
        con.execute(sql)
    return "\n".join(contract_problems(con))


def test_a_database_that_keeps_the_contract_has_no_problems(con, tmp_path):
    assert contract_problems(con) == []
    db = tmp_path / "kept.duckdb"
    con.execute(f"attach '{db}' as kept")
    for table in ("metric_values", "load_log", "quarantine", "orgs"):
        con.execute(f"create table kept.{table} as select * from {table}")
    con.execute("detach kept")
    problems, summary = check_database(db)
    assert problems == [] and summary == "120 metric cells, 2 months, 6 files: as the contract says"


@pytest.mark.parametrize("breach, statements, said", [
    ("a view is missing", ["drop table quarantine"], "no view quarantine"),
    ("a column is missing", ["alter table load_log drop column reason"], "load_log lacks column reason"),
    ("value is not a DOUBLE", ["alter table metric_values alter value type decimal(18, 6)"],
     "metric_values.value is DECIMAL(18,6), the contract says DOUBLE"),
    ("period_month is text", ["alter table metric_values alter period_month type varchar"],
     "metric_values.period_month is VARCHAR"),
])
def test_views_and_columns(con, breach, statements, said):
    assert said in problems_after(con, *statements), breach


@pytest.mark.parametrize("breach, statements, said", [
    ("a cell twice", [f"insert into metric_values select * from metric_values where area_code = '{A}' "
                      "and metric_id = 'readmissions_30d' and period_month = '2025-10-01'"],
     "1 cells appear more than once"),
    ("a status outside final/provisional", ["update metric_values set status = 'draft' where area_code = 'E08000003'"],
     "status holds ['draft']"),
    ("a NULL status", ["update metric_values set status = null where area_code = 'E08000003'"],
     "status holds ['None']"),
    ("a NULL area code", ["update metric_values set area_code = null where area_code = 'E08000003'"],
     "rows with a NULL period_month, area_type, area_code or metric_id"),
    ("an unknown area type", ["update metric_values set area_type = 'region' where area_type = 'icb'"],
     "area_type holds ['region']"),
    ("England under another code", [f"update metric_values set area_code = 'ENG' where area_code = '{ENGLAND}'"],
     "England cells under area_code ['ENG']"),
    ("a month not on its first day", ["update metric_values set period_month = '2025-11-15' "
                                      "where period_month = '2025-11-01'"],
     "period_month not the first of its month"),
])
def test_metric_values_grain_and_domains(con, breach, statements, said):
    assert said in problems_after(con, *statements), breach


@pytest.mark.parametrize("breach, statements", [
    ("a rate per 1,000 instead of per 100,000",
     ["update metric_values set value = 1000 * numerator / denominator where metric_id = 'emergency_admissions'"]),
    ("a percent as a fraction",
     ["update metric_values set value = numerator / denominator where metric_id = 'readmissions_30d'"]),
    ("days per 100",
     ["update metric_values set value = 100 * numerator / denominator where metric_id = 'mean_length_of_stay'"]),
    ("a value where the denominator is 0",
     [f"update metric_values set denominator = 0 where area_code = '{B}' and metric_id = 'long_stay_21plus'"]),
    ("a NULL value with a denominator",
     [f"update metric_values set value = null where area_code = '{A}' and metric_id = 'discharge_delay_days'"]),
])
def test_value_is_scale_times_numerator_over_denominator(con, breach, statements):
    assert "value is not scale x numerator / denominator" in problems_after(con, *statements), breach


def test_a_zero_denominator_with_a_null_value_is_right(con):
    con.execute(f"""update metric_values set numerator = 0, denominator = 0, value = null
                    where metric_id = 'readmissions_30d' and area_code = '{A}'""")
    con.execute(f"""update metric_values set numerator = 1, denominator = 2000, value = 100.0 * 1 / 2000
                    where metric_id = 'readmissions_30d' and area_code in ('{ICB}', '{ENGLAND}')""")
    assert contract_problems(con) == []


def test_units_beyond_the_contract_come_from_the_catalogue(con):
    con.execute("create table metric_catalog (metric_id varchar, unit varchar)")
    con.execute("insert into metric_catalog values ('ae_attendances', 'count'), ('ae_within_4h_all', 'percent')")
    con.execute("""insert into metric_values values
        ('2025-10-01', 'provider', 'R0A', 'ae_attendances', 120, null, 120, null, 'final'),
        ('2025-10-01', 'provider', 'R0A', 'ae_within_4h_all', 90, 120, 75, null, 'final')""")
    assert contract_problems(con) == []
    con.execute("update metric_values set value = 0.75 where metric_id = 'ae_within_4h_all'")
    assert "value is not scale x numerator / denominator" in "\n".join(contract_problems(con))
    con.execute("insert into metric_values values "
                "('2025-10-01', 'provider', 'R0A', 'nobody_knows', 1, 2, 3, null, 'final')")
    assert "metrics with no known unit, so no value check: ['nobody_knows']" in contract_problems(con)


@pytest.mark.parametrize("breach, statements", [
    ("an HWB cell missing", [f"delete from metric_values where area_code = '{B}' and metric_id = 'falls_admissions_65plus' "
                             "and period_month = '2025-11-01'"]),
    ("a contract metric missing everywhere", ["delete from metric_values where metric_id = 'reablement_at_home_91d'"]),
    ("a linked metric missing everywhere",
     ["delete from metric_values where metric_id = 'readmission_after_reablement_91d'"]),
    ("an area with no cells in one month", [f"delete from metric_values where area_code = '{A}' "
                                            "and period_month = '2025-10-01'"]),
])
def test_every_cell_is_present(con, breach, statements):
    assert "(month, area, metric) cells missing" in problems_after(con, *statements), breach


@pytest.mark.parametrize("breach, statements", [
    ("the ICB's numerator is not its HWBs' sum",
     [f"update metric_values set numerator = numerator + 1, value = 100000 * (numerator + 1) / denominator "
      f"where area_code = '{ICB}' and metric_id = 'emergency_admissions'"]),
    ("England's denominator is not the HWBs' sum",
     [f"update metric_values set denominator = 2500, value = 100 * numerator / 2500 "
      f"where area_code = '{ENGLAND}' and metric_id = 'readmissions_30d'"]),
    ("a rate from a partial population",
     [f"update metric_values set denominator = null, value = null where area_code = '{A}' "
      "and metric_id = 'emergency_admissions' and period_month = '2025-10-01'"]),
])
def test_icb_and_england_are_the_sum_of_their_hwbs(con, breach, statements):
    assert "not the sum of their HWBs' cells" in problems_after(con, *statements), breach


def test_icb_sums_need_the_org_tree(con):
    assert "no orgs view to read the ICB of each HWB from" in problems_after(con, "drop table orgs")


@pytest.mark.parametrize("breach, statements, said", [
    ("rows unaccounted for", ["update load_log set rows_loaded = 4 where file_name = 'apc_R0A_2025-11.csv'"],
     "rows_in <> rows_loaded + rows_quarantined"),
    ("a rejected file that loaded rows",
     ["update load_log set rows_loaded = 1, rows_quarantined = 1 where status = 'rejected'"],
     "a rejected file with rows loaded"),
    ("a rejected file without a reason", ["update load_log set reason = null where status = 'rejected'"],
     "a rejected file with no reason"),
    ("a reason on a loaded file", ["update load_log set reason = 'late' where file_name = 'orgs_all.csv'"],
     "a reason on a file that was not rejected"),
    ("a duplicate with counts", ["update load_log set rows_in = 3, rows_loaded = 3 where status = 'duplicate'"],
     "a duplicate that is not 0/0/0"),
    ("an unknown status", ["update load_log set status = 'pending' where file_name = 'orgs_all.csv'"],
     "a status that is not loaded, superseded, duplicate or rejected"),
    ("a period that is not YYYY-MM", ["update load_log set period = '2025-11-01' where file_name = 'copy.csv'"],
     "a period that is not YYYY-MM"),
    ("a quarantined line 0", ["update quarantine set line_number = 0 where rule = 'key_missing'"],
     "rows whose line_number is not 1 or more"),
    ("a quarantined row without a rule", ["update quarantine set rule = null where rule = 'key_missing'"],
     "rows without the rule they broke"),
    ("a quarantined row of no file", ["insert into quarantine values ('ghost.csv', 1, 'x', 'y')"],
     "rows of files load_log does not list"),
])
def test_load_log_and_quarantine(con, breach, statements, said):
    assert said in problems_after(con, *statements), breach


@pytest.mark.parametrize("stored", ["9434765919", "943 476 5919", "943-476-5919",
                                    "NEWNHSNO 9434765919 is not valid here", "spell S1/9434765919"])
def test_an_nhs_number_stored_in_text_anywhere_is_found(con, stored):
    con.execute("create table run_notes (note varchar)")
    con.execute("insert into run_notes values ('fine'), (?)", [stored])
    assert "look like valid NHS numbers are stored in run_notes.note" in "\n".join(contract_problems(con))


def test_an_nhs_number_stored_as_a_number_or_in_a_view_is_found(con):
    con.execute("create table person (id bigint, weight double)")
    con.execute("insert into person values (9434765919, 70.5)")
    con.execute("create view person_view as select cast(id as varchar) || '!' as shown from person")
    problems = "\n".join(contract_problems(con))
    assert "person.id" in problems and "person_view.shown" in problems and "person.weight" not in problems


@pytest.mark.parametrize("stored", ["9434765918",                   # fails modulus 11
                                    "94347659190",                  # eleven digits
                                    "1111111111",                   # ten identical digits
                                    "2025-10-05 10:30:00",          # a time stamp
                                    "94 3476 5919"])                # not grouped 3-3-4
def test_numbers_that_cannot_be_nhs_numbers_are_not_reported(con, stored):
    con.execute("create table run_notes (note varchar)")
    con.execute("insert into run_notes values (?)", [stored])
    assert contract_problems(con) == []


def test_a_fraction_is_not_read_as_an_nhs_number(con):
    con.execute("insert into metric_values select period_month, 'provider', 'R0A', metric_id, 9434765919, "
                "3, 9434765919 / 3 * 100, null, 'final' from metric_values where metric_id = 'readmissions_30d' "
                "and area_code = 'E08000003'")
    assert "look like valid NHS numbers" in "\n".join(contract_problems(con))     # the whole numerator
    con.execute("update metric_values set numerator = 943476591.9 where area_type = 'provider'")
    assert not any("NHS numbers" in p for p in contract_problems(con))


def test_modulus_11():
    assert nhs_number_valid("9434765919") and nhs_number_valid("4010232137")
    assert not nhs_number_valid("9434765910")            # wrong check digit
    assert not nhs_number_valid("1000000010")            # the weighted sum gives check digit 10: never issued
    assert not nhs_number_valid("0000000000") and not nhs_number_valid("943476591")
    assert nhs_numbers_in("a 943 476 5919 b 9434765918 c 401-023-2137") == ["9434765919", "4010232137"]
