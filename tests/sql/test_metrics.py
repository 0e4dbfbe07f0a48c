"""Every metric model on hand-made extracts whose figures can be checked by eye.

Each test writes a tiny landing folder (the org tree and population in conftest: HWB_A has 1,000
residents, 200 aged 65+; HWB_B 2,000 and 500; one ICB), loads it, builds every month and reads
`metric_values` for both HWBs, the ICB and England. Row comments say why each row counts or not.
"""
from __future__ import annotations

import pytest

from flows.db import connect
from flows.models.runner import check_dependencies, load_project
from tests.sql.conftest import (
    APC_HEADER,
    CAREHOME_HEADER,
    ENGLAND,
    HWB_A,
    HWB_B,
    ICB,
    OUTSIDE,
    REABLEMENT_HEADER,
    UNKNOWN,
    assert_cell,
    build,
    cells,
    statuses,
    write_csv,
    write_reference,
)

A, B, X, OUT = HWB_A, HWB_B, UNKNOWN, OUTSIDE
METRICS = ("emergency_admissions", "emergency_admissions_65plus", "avoidable_admissions",
           "falls_admissions_65plus", "readmissions_30d", "discharge_to_usual_residence",
           "mean_length_of_stay", "long_stay_21plus", "discharged_on_ready_date",
           "discharge_delay_days", "care_home_admissions_65plus", "reablement_at_home_91d")


def test_models_declare_what_they_read_and_come_in_contract_order():
    project = load_project()
    assert check_dependencies(project) == []
    contract = [m for m in project.metrics if m.header["metric_id"] in METRICS]
    assert [m.header["metric_id"] for m in contract] == list(METRICS)
    assert [int(m.header["sort_order"]) for m in contract] == list(range(1, 13))
    for model in contract:
        assert model.path.stem == model.header["metric_id"] == model.name
    follow_up = {m.name: m.header.get("follow_up_days") for m in contract}
    assert follow_up["readmissions_30d"] == "30" and follow_up["reablement_at_home_91d"] == "91"


def test_every_cell_is_present_for_every_metric_area_and_month(con, landing):
    write_csv(landing / "apc_R0A_2025-10.csv", APC_HEADER,
              f"R0A,S1,P1,70,1,{A},2025-10-05,21,,,,,R69X,,")
    build(con, landing)
    got = con.execute("""select metric_id, count(*), count(distinct area_type || area_code)
                         from metric_values where area_type <> 'provider' group by metric_id""").fetchall()
    assert {r[0]: r[1:] for r in got if r[0] in METRICS} == {m: (4, 4) for m in METRICS}  # 2 HWBs + ICB + England
    areas = {r[0] for r in con.execute("select distinct area_code from metric_values "
                                       "where area_type <> 'provider'").fetchall()}
    assert areas == {A, B, ICB, ENGLAND}


# ------------------------------------------------------------------ admissions


@pytest.fixture
def admissions_landing(landing):
    write_csv(landing / "apc_R0A_2025-10.csv", APC_HEADER,
              f"R0A,S1,P1,65,1,{A},2025-10-31,21,,,,,R69X,,",        # 65 exactly, last day of Oct, open
              f"R0A,S2,P2,64,2,{A},2025-10-15,22,2025-10-16,1,19,,R69X,,",  # 64: all ages only
              f"R0A,S3,P3,7003,1,{A},2025-10-10,2A,,,,,P599,,",        # under one year = age 0
              f"R0A,S4,P4,80,2,{A},2025-10-05,11,,,,,R69X,,",          # elective
              f"R0A,S5,P5,90,1,{B},2025-10-20,2B,,,,,R69X,,",          # emergency transfer: counts
              f"R0A,S6,P6,70,1,{X},2025-10-12,21,,,,,R69X,,",          # residence unknown
              f"R0A,S7,P7,70,1,{OUT},2025-10-12,21,,,,,R69X,,",          # outside our HWBs
              f"R0A,S8,P8,81,2,{A},2025-10-02,81,,,,,R69X,,",          # non-emergency transfer
              f"R0A,S10,P10,75,2,{A},2025-10-03,31,,,,,O80X,,")        # maternity; Nov says 21
    write_csv(landing / "apc_R0A_2025-11.csv", APC_HEADER,
              f"R0A,S1,P1,65,1,{A},2025-10-31,21,2025-11-03,1,19,,R69X,,",  # re-sent, discharged
              f"R0A,S9,P9,66,1,{A},2025-11-01,21,,,,,R69X,,",          # first day of Nov
              f"R0A,S10,P10,75,2,{A},2025-10-03,2D,,,,,R69X,,")        # corrected: emergency
    return landing


def test_emergency_admissions_65plus(con, admissions_landing):
    build(con, admissions_landing, "emergency_admissions_65plus")
    oct_ = cells(con, "emergency_admissions_65plus", "2025-10")
    assert_cell(oct_[A], 2, 200, 1000.0)          # S1 (65, re-sent once), S10 (latest state 2D)
    assert_cell(oct_[B], 1, 500, 200.0)           # S5 (2B)
    assert_cell(oct_[ICB], 3, 700, 3e5 / 700)
    assert_cell(oct_[ENGLAND], 3, 700, 3e5 / 700)
    nov = cells(con, "emergency_admissions_65plus", "2025-11")
    assert_cell(nov[A], 1, 200, 500.0)            # S9
    assert_cell(nov[B], 0, 500, 0.0)
    assert_cell(nov[ENGLAND], 1, 700, 1e5 / 700)


def test_emergency_admissions_all_ages(con, admissions_landing):
    build(con, admissions_landing, "emergency_admissions")
    oct_ = cells(con, "emergency_admissions", "2025-10")
    assert_cell(oct_[A], 4, 1000, 400.0)          # S1, S2, S3 (age 0), S10
    assert_cell(oct_[B], 1, 2000, 50.0)
    assert_cell(oct_[ICB], 5, 3000, 5e5 / 3000)
    assert_cell(oct_[ENGLAND], 5, 3000, 5e5 / 3000)
    assert_cell(cells(con, "emergency_admissions", "2025-11")[A], 1, 1000, 100.0)


def test_avoidable_admissions(con, landing):
    write_csv(landing / "apc_R0A_2025-10.csv", APC_HEADER,
              f"R0A,V1,P1,50,1,{A},2025-10-01,21,,,,,I50.0,,",         # heart failure, dotted
              f"R0A,V2,P2,50,1,{A},2025-10-01,2B,,,,,I500,,",          # emergency transfer: out
              f"R0A,V3,P3,50,1,{A},2025-10-01,81,,,,,I500,,",          # other transfer: out
              f"R0A,V4,P4,50,1,{A},2025-10-01,22,,,,,J45X,,",          # asthma, X filler
              f"R0A,V5,P5,50,1,{A},2025-10-01,21,,,,,J20.9,J44.9,",    # J20 with a COPD secondary
              f"R0A,V6,P6,50,1,{A},2025-10-01,21,,,,,J209,J18X,",      # J20, secondary not COPD
              f"R0A,V7,P7,50,1,{A},2025-10-01,21,,,,,J20-,,",          # J20 alone
              f"R0A,V8,P8,50,1,{A},2025-10-01,11,,,,,I10X,,",          # elective
              f"R0A,V9,P9,7001,1,{A},2025-10-01,21,,,,,e109,,",        # age 0, lower case diabetes
              f"R0A,V10,P10,50,1,{A},2025-10-01,21,,,,,I11.9,,",       # hypertension I11.9
              f"R0A,V11,P11,50,1,{A},2025-10-01,21,,,,,I11.1,,",       # I11.1 is not on the list
              f"R0A,V12,P12,50,1,{A},2025-10-01,21,,,,,R69X,,",        # not an ACSC
              f"R0A,V13,P13,50,1,{X},2025-10-01,21,,,,,I50,,",         # residence unknown
              f"R0A,V14,P14,50,1,{A},2025-10-31,21,,,,,J20,R05X,J47X", # J20, bronchiectasis 3rd
              f"R0A,V15,P15,50,1,{B},2025-10-01,2D,,,,,G40.9,,",       # epilepsy
              f"R0A,V16,P16,50,1,{A},2025-10-01,21,,,,,I48,I48,")      # one spell, counted once
    write_csv(landing / "apc_R0A_2025-11.csv", APC_HEADER,
              f"R0A,V14,P14,50,1,{A},2025-10-31,21,2025-11-02,1,19,,J20,R05X,J47X",  # re-sent
              f"R0A,V17,P17,50,1,{B},2025-11-01,21,,,,,I10X,,")
    build(con, landing, "avoidable_admissions")
    oct_ = cells(con, "avoidable_admissions", "2025-10")
    assert_cell(oct_[A], 7, 1000, 700.0)          # V1 V4 V5 V9 V10 V14 V16
    assert_cell(oct_[B], 1, 2000, 50.0)           # V15
    assert_cell(oct_[ICB], 8, 3000, 8e5 / 3000)
    assert_cell(oct_[ENGLAND], 8, 3000, 8e5 / 3000)
    nov = cells(con, "avoidable_admissions", "2025-11")
    assert_cell(nov[A], 0, 1000, 0.0)
    assert_cell(nov[B], 1, 2000, 50.0)            # V17


def test_falls_admissions_65plus(con, landing):
    write_csv(landing / "apc_R0A_2025-10.csv", APC_HEADER,
              f"R0A,F1,P1,65,2,{A},2025-10-31,21,,,,,S72-,W19X,",      # 65 exactly, fillers
              f"R0A,F2,P2,80,2,{A},2025-10-01,21,,,,,S72.0,R29.6,W01.0",  # fall in 3rd position
              f"R0A,F3,P3,80,2,{A},2025-10-01,21,,,,,S720,,",          # injury, no fall cause
              f"R0A,F4,P4,64,2,{A},2025-10-01,21,,,,,S720,W19X,",      # aged 64
              f"R0A,F5,P5,80,2,{A},2025-10-01,11,,,,,S720,W19X,",      # elective
              f"R0A,F6,P6,80,2,{A},2025-10-01,21,,,,,I500,W19X,",      # primary not an injury
              f"R0A,F7,P7,80,2,{A},2025-10-01,21,,,,,W19X,S720,",      # fall as primary only
              f"R0A,F8,P8,90,1,{B},2025-10-01,2B,,,,,T14.9,W18,",      # 2B counts here
              f"R0A,F9,P9,80,2,{A},2025-10-01,21,,,,,S720,W20X,",      # W20 is not a fall
              f"R0A,F10,P10,80,2,{X},2025-10-01,21,,,,,S720,W19X,",    # residence unknown
              f"R0A,F12,P12,80,2,{A},2025-10-01,21,,,,,S06.0,W10.9,W19")  # two fall codes: once
    write_csv(landing / "apc_R0A_2025-11.csv", APC_HEADER,
              f"R0A,F1,P1,65,2,{A},2025-10-31,21,2025-11-09,1,19,,S72-,W19X,",  # re-sent
              f"R0A,F11,P11,80,2,{A},2025-11-01,21,,,,,S32.0,W06X,")
    build(con, landing, "falls_admissions_65plus")
    oct_ = cells(con, "falls_admissions_65plus", "2025-10")
    assert_cell(oct_[A], 3, 200, 1500.0)          # F1 F2 F12
    assert_cell(oct_[B], 1, 500, 200.0)           # F8
    assert_cell(oct_[ENGLAND], 4, 700, 4e5 / 700)
    assert_cell(oct_[ICB], 4, 700, 4e5 / 700)
    nov = cells(con, "falls_admissions_65plus", "2025-11")
    assert_cell(nov[A], 1, 200, 500.0)            # F11
    assert_cell(nov[B], 0, 500, 0.0)


# ------------------------------------------------------------------ readmissions


def test_readmissions_30d(con, landing):
    #                      spell person age sex res admitted  meth discharged dismeth disdest
    write_csv(landing / "apc_R0A_2025-10.csv", APC_HEADER,
              f"R0A,S1,P1,70,1,{A},2025-10-01,21,2025-10-10,1,19,,R69X,,",   # readmitted day 29 (T1)
              f"R0A,S2,P2,70,1,{A},2025-10-01,21,2025-10-10,1,19,,R69X,,",   # readmitted day 30 (S3): no
              f"R0A,S4,P3,70,1,{A},2025-10-18,12,2025-10-20,1,19,,R69X,,",   # only an elective after
              f"R0A,S5,P4,70,1,{A},2025-10-10,21,2025-10-15,4,79,,R69X,,",   # died: not an index
              f"R0A,S6,P5,70,1,{A},2025-10-10,21,2025-10-15,1,79,,R69X,,",   # DISDEST 79: not an index
              f"R0A,S7,,70,1,{A},2025-10-10,21,2025-10-15,1,19,,R69X,,",     # no person id: not an index
              f"R0A,S8,P7,70,1,{B},2025-10-20,21,2025-10-31,1,19,,R69X,,",   # readmitted same day (T3)
              f"R0A,S9,P8,70,1,{B},2025-10-20,21,2025-10-25,1,19,,R69X,,",   # readmitted by a 2B (T4)
              f"R0A,S10,P9,70,1,{A},2025-10-01,21,2025-10-05,1,19,,R69X,,",  # readmitted twice: once
              f"R0A,S11,P9,70,1,{A},2025-10-07,21,2025-10-08,1,19,,R69X,,",  # readmitted (S12)
              f"R0A,S12,P9,70,1,{A},2025-10-20,21,,,,,R69X,,",               # open
              f"R0A,S13,P10,70,1,{A},2025-10-01,21,2025-10-15,1,19,,R69X,,", # T5 began before: no
              f"R0A,S14,P11,70,1,{X},2025-10-01,21,2025-10-12,1,19,,R69X,,", # residence unknown
              f"R0A,S15,P11,70,1,{X},2025-10-13,21,,,,,R69X,,",
              f"R0A,S17,P13,70,1,{A},2025-10-05,21,2025-10-05,1,19,,R69X,,")  # same day: not its own readmission
    write_csv(landing / "apc_RM3_2025-10.csv", APC_HEADER,
              f"RM3,T2,P3,40,1,{OUT},2025-10-22,11,2025-10-23,1,19,,R69X,,",   # elective, outside area
              f"RM3,T3,P7,30,1,{X},2025-10-31,21,,,,,R69X,,",                # any residence, any age
              f"RM3,T4,P8,70,1,{B},2025-10-25,2B,,,,,R69X,,",                # emergency transfer
              f"RM3,T5,P10,70,1,{A},2025-10-14,21,,,,,R69X,,")               # admitted day -1
    write_csv(landing / "apc_R0A_2025-11.csv", APC_HEADER,
              f"R0A,S3,P2,70,1,{A},2025-11-09,21,,,,,R69X,,",                # day 30 after S2
              f"R0A,S12,P9,70,1,{A},2025-10-20,21,,,,,R69X,,",
              f"R0A,S15,P11,70,1,{X},2025-10-13,21,,,,,R69X,,",
              f"R0A,S16,P12,70,1,{B},2025-11-02,21,2025-11-05,1,19,,R69X,,")  # Nov index, no readmission
    write_csv(landing / "apc_RM3_2025-11.csv", APC_HEADER,
              f"RM3,T1,P1,85,2,{B},2025-11-08,21,,,,,R69X,,",                # day 29 after S1, other provider
              f"RM3,T3,P7,30,1,{X},2025-10-31,21,,,,,R69X,,",
              f"RM3,T4,P8,70,1,{B},2025-10-25,2B,,,,,R69X,,",
              f"RM3,T5,P10,70,1,{A},2025-10-14,21,,,,,R69X,,")
    build(con, landing, "readmissions_30d")
    oct_ = cells(con, "readmissions_30d", "2025-10")
    assert_cell(oct_[A], 3, 7, 300 / 7)           # S1 S10 S11 of S1 S2 S4 S10 S11 S13 S17
    assert_cell(oct_[B], 2, 2, 100.0)             # S8 S9
    assert_cell(oct_[ICB], 5, 9, 500 / 9)
    assert_cell(oct_[ENGLAND], 5, 9, 500 / 9)
    nov = cells(con, "readmissions_30d", "2025-11")
    assert_cell(nov[A], 0, 0, None)               # no discharges: denominator 0, value NULL
    assert_cell(nov[B], 0, 1, 0.0)
    assert_cell(nov[ENGLAND], 0, 1, 0.0)
    # October's 30 days have all been loaded by the end of November; November's have not.
    assert set(statuses(con, "readmissions_30d", "2025-10").values()) == {"final"}
    assert set(statuses(con, "readmissions_30d", "2025-11").values()) == {"provisional"}


# ------------------------------------------------------------------ discharges


DISCHARGE_METRICS = ("discharge_to_usual_residence", "mean_length_of_stay", "long_stay_21plus",
                     "discharged_on_ready_date", "discharge_delay_days")


@pytest.fixture(scope="module")
def discharges(tmp_path_factory):
    """One landing folder for the five discharge metrics (built once)."""
    tmp = tmp_path_factory.mktemp("discharges")
    landing = write_reference(tmp / "landing")
    #  spell person age sex res   admitted   meth discharged dismeth disdest ready      stay delay
    write_csv(landing / "apc_R0A_2025-10.csv", APC_HEADER,
              f"R0A,D1,P1,40,1,{A},2025-10-01,21,2025-10-01,1,19,2025-10-01,R69X,,",  # 0d   0  home
              f"R0A,D2,P2,80,2,{A},2025-09-20,11,2025-10-11,1,54,2025-10-05,R69X,,",  # 21d  6  care home
              f"R0A,D3,P3,80,2,{A},2025-10-02,21,2025-10-12,4,79,2025-10-10,R69X,,",  # 10d  2  died
              f"R0A,D4,P4,60,1,{A},2025-10-03,21,2025-10-13,1,99,2025-10-15,R69X,,",  # 10d -2  not known
              f"R0A,D5,P5,60,1,{A},2025-10-04,21,2025-10-14,1,29,2025-10-10,R69X,,",  # 10d  4  temporary
              f"R0A,D6,P6,60,1,{A},2025-10-06,21,2025-10-15,4,19,,R69X,,",            #  9d  -  died (DISMETH 4)
              f"R0A,D7,P7,60,1,{A},2025-10-05,21,2025-10-26,2,19,2025-10-26,R69X,,",  # 21d  0  home
              f"R0A,D8,P8,60,1,{A},2025-10-31,21,,,,,R69X,,",                         # open in October
              f"R0A,D9,P9,60,1,{B},2025-10-10,21,2025-10-30,1,98,2025-10-20,R69X,,",  # 20d 10  n/a
              f"R0A,D10,P10,60,1,{X},2025-10-10,21,2025-10-30,1,19,2025-10-11,R69X,,", # unknown residence
              f"R0A,D11,P11,60,1,{B},2025-10-10,21,2025-10-11,1,,,R69X,,",            #  1d  -  no DISDEST
              f"R0A,D12,P12,60,1,{B},2025-10-01,21,2025-10-31,1,19,,R69X,,",          # 30d  -  home
              f"R0A,D14,P14,60,1,{B},2025-10-20,21,2025-10-22,1,19,2025-10-21,R69X,,")  # 2d 1 home
    write_csv(landing / "apc_R0A_2025-11.csv", APC_HEADER,
              f"R0A,D8,P8,60,1,{A},2025-10-31,21,2025-11-02,1,19,,R69X,,",            # 2d  -  home
              f"R0A,D13,P13,60,1,{B},2025-11-01,12,2025-11-01,1,19,,R69X,,")          # 0d day case
    con = connect(tmp / "t.duckdb")
    build(con, landing, *DISCHARGE_METRICS)
    yield con
    con.close()


def test_discharge_to_usual_residence(discharges):
    oct_ = cells(discharges, "discharge_to_usual_residence", "2025-10")
    assert_cell(oct_[A], 2, 4, 50.0)              # D1 D7 of D1 D2 D5 D7 (not D3 D6 deaths, D4 99)
    assert_cell(oct_[B], 2, 3, 200 / 3)           # D12 D14 of D11 D12 D14 (not D9 98)
    assert_cell(oct_[ICB], 4, 7, 400 / 7)
    assert_cell(oct_[ENGLAND], 4, 7, 400 / 7)
    nov = cells(discharges, "discharge_to_usual_residence", "2025-11")
    assert_cell(nov[A], 1, 1, 100.0)              # D8, in the month of its later discharge
    assert_cell(nov[B], 1, 1, 100.0)


def test_mean_length_of_stay(discharges):
    oct_ = cells(discharges, "mean_length_of_stay", "2025-10")
    assert_cell(oct_[A], 81, 7, 81 / 7)           # 0+21+10+10+10+9+21, deaths included
    assert_cell(oct_[B], 53, 4, 13.25)            # 20+1+30+2
    assert_cell(oct_[ICB], 134, 11, 134 / 11)
    assert_cell(oct_[ENGLAND], 134, 11, 134 / 11)
    nov = cells(discharges, "mean_length_of_stay", "2025-11")
    assert_cell(nov[A], 2, 1, 2.0)
    assert_cell(nov[B], 0, 1, 0.0)


def test_long_stay_21plus(discharges):
    oct_ = cells(discharges, "long_stay_21plus", "2025-10")
    assert_cell(oct_[A], 2, 7, 200 / 7)           # D2 D7: 21 days exactly
    assert_cell(oct_[B], 1, 4, 25.0)              # D12 (D9 is 20 days)
    assert_cell(oct_[ENGLAND], 3, 11, 300 / 11)
    assert_cell(cells(discharges, "long_stay_21plus", "2025-11")[A], 0, 1, 0.0)


def test_discharged_on_ready_date(discharges):
    oct_ = cells(discharges, "discharged_on_ready_date", "2025-10")
    assert_cell(oct_[A], 3, 6, 50.0)              # D1 D4 (before) D7 of D1 D2 D3 D4 D5 D7
    assert_cell(oct_[B], 0, 2, 0.0)               # D9 D14 both late
    assert_cell(oct_[ICB], 3, 8, 37.5)
    assert_cell(oct_[ENGLAND], 3, 8, 37.5)
    nov = cells(discharges, "discharged_on_ready_date", "2025-11")
    assert_cell(nov[A], 0, 0, None)               # no ready dates recorded
    assert_cell(nov[ENGLAND], 0, 0, None)


def test_discharge_delay_days(discharges):
    oct_ = cells(discharges, "discharge_delay_days", "2025-10")
    assert_cell(oct_[A], 12, 3, 4.0)              # D2 6 + D3 2 + D5 4
    assert_cell(oct_[B], 11, 2, 5.5)              # D9 10 + D14 1
    assert_cell(oct_[ICB], 23, 5, 4.6)
    assert_cell(oct_[ENGLAND], 23, 5, 4.6)
    assert_cell(cells(discharges, "discharge_delay_days", "2025-11")[B], 0, 0, None)


def test_discharge_models_pass_their_audits(discharges):
    failed = discharges.execute("select audit, offending from audit_results "
                                "where severity = 'fail' and offending > 0").fetchall()
    assert failed == []


# ------------------------------------------------------------------ social care


def test_care_home_admissions_65plus(con, landing):
    write_csv(landing / f"carehome_{A}_2025-10.csv", CAREHOME_HEADER,
              f"{A},C1,P1,65,2025-10-31,RESIDENTIAL,Y,LA",      # 65 exactly, last day
              f"{A},C2,P2,80,2025-10-01,nursing,y,la",           # codes in lower case
              f"{A},C3,P3,80,2025-10-05,NURSING,N,LA",           # short-term
              f"{A},C4,P4,80,2025-10-05,RESIDENTIAL,Y,SELF",     # self-funded
              f"{A},C5,P5,64,2025-10-05,RESIDENTIAL,Y,LA")       # aged 64
    write_csv(landing / f"carehome_{A}_2025-11.csv", CAREHOME_HEADER,
              f"{A},C1,P1,65,2025-10-31,RESIDENTIAL,Y,LA",      # re-sent: replaces, counts once
              f"{A},C7,P7,75,2025-10-20,NURSING,Y,LA",           # reported late: counts in October
              f"{A},C8,P8,70,2025-11-01,NURSING,Y,JOINT",        # jointly funded
              f"{A},C9,P9,70,2025-11-02,NURSING,Y,NHS",          # continuing health care
              f"{A},C10,P10,99,2025-11-03,RESIDENTIAL,Y,LA")
    write_csv(landing / f"carehome_{B}_2025-10.csv", CAREHOME_HEADER,
              f"{B},C1,Q1,66,2025-10-15,RESIDENTIAL,Y,LA")       # same CLIENT_ID, other council
    write_csv(landing / f"carehome_{B}_2025-11.csv", CAREHOME_HEADER,
              f"{B},C2,Q2,50,2025-11-15,RESIDENTIAL,Y,LA")       # aged 50
    write_csv(landing / f"carehome_{OUT}_2025-10.csv", CAREHOME_HEADER,
              f"{OUT},C1,R1,80,2025-10-15,RESIDENTIAL,Y,LA")       # not one of our HWBs
    build(con, landing, "care_home_admissions_65plus")
    oct_ = cells(con, "care_home_admissions_65plus", "2025-10")
    assert_cell(oct_[A], 3, 200, 1500.0)          # C1 C2 C7
    assert_cell(oct_[B], 1, 500, 200.0)
    assert_cell(oct_[ICB], 4, 700, 4e5 / 700)
    assert_cell(oct_[ENGLAND], 4, 700, 4e5 / 700)
    nov = cells(con, "care_home_admissions_65plus", "2025-11")
    assert_cell(nov[A], 1, 200, 500.0)            # C10
    assert_cell(nov[B], 0, 500, 0.0)


def test_reablement_at_home_91d(con, landing):
    # July: people discharged into reablement, 91 days not yet passed, so no status.
    write_csv(landing / f"reablement_{A}_2025-07.csv", REABLEMENT_HEADER,
              f"{A},K1,P1,65,2025-07-31,2025-08-01,",
              f"{A},K2,P2,80,2025-07-01,2025-07-02,",
              f"{A},K3,P3,80,2025-07-10,2025-07-11,")
    build(con, landing, "reablement_at_home_91d")
    assert_cell(cells(con, "reablement_at_home_91d", "2025-07")[A], 0, 0, None)
    assert statuses(con, "reablement_at_home_91d", "2025-07")[A] == "provisional"

    # October: the July cohort re-sent with its 91-day status; October's cohort has none yet.
    write_csv(landing / f"reablement_{A}_2025-10.csv", REABLEMENT_HEADER,
              f"{A},K1,P1,65,2025-07-31,2025-08-01,HOME",       # 65 exactly, last day of July
              f"{A},K2,P2,80,2025-07-01,2025-07-02,home",       # lower case
              f"{A},K3,P3,80,2025-07-10,2025-07-11,DIED",       # deaths stay in the denominator
              f"{A},K4,P4,80,2025-07-11,2025-07-12,UNKNOWN",    # so does unknown
              f"{A},K5,P5,80,2025-07-12,2025-07-13,CARE_HOME",
              f"{A},K6,P6,64,2025-07-12,2025-07-13,HOME",       # aged 64
              f"{A},K7,P7,80,2025-07-20,2025-07-21,",           # no status yet: in neither
              f"{A},K8,P8,80,2025-08-01,2025-08-02,HOME",       # August's cohort
              f"{A},K9,P9,80,2025-10-03,2025-10-04,")           # October's cohort, inside 91 days
    write_csv(landing / f"reablement_{B}_2025-10.csv", REABLEMENT_HEADER,
              f"{B},L1,Q1,70,2025-07-15,2025-07-16,HOME",
              f"{B},L2,Q2,70,2025-07-16,2025-07-17,HOSPITAL",
              f"{B},L3,Q3,70,2025-10-05,2025-10-06,")
    write_csv(landing / f"reablement_{OUT}_2025-10.csv", REABLEMENT_HEADER,
              f"{OUT},M1,R1,70,2025-07-15,2025-07-16,HOME")       # not one of our HWBs
    build(con, landing, "reablement_at_home_91d")
    jul = cells(con, "reablement_at_home_91d", "2025-07")
    assert_cell(jul[A], 2, 5, 40.0)               # K1 K2 home of K1-K5
    assert_cell(jul[B], 1, 2, 50.0)
    assert_cell(jul[ICB], 3, 7, 300 / 7)
    assert_cell(jul[ENGLAND], 3, 7, 300 / 7)
    oct_ = cells(con, "reablement_at_home_91d", "2025-10")
    assert_cell(oct_[A], 0, 0, None)
    assert_cell(oct_[ENGLAND], 0, 0, None)
    # K7 still awaits its status, so July stays provisional where it lives; Salford's is final.
    jul_status = statuses(con, "reablement_at_home_91d", "2025-07")
    assert jul_status[A] == jul_status[ICB] == jul_status[ENGLAND] == "provisional"
    assert jul_status[B] == "final"
