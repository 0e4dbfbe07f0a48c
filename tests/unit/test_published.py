"""Published NHS England / ONS files are recognised by their header, dated by their content and
parsed with every input row accounted for. Oracles: NHS England's own TOTAL rows and the figures
in each data folder's SOURCE.md."""
from __future__ import annotations

import gzip
import shutil
from datetime import date

import polars as pl
import pytest

from flows.errors import FileRejected
from flows.ingest.published import PublishedFile, detect_published, read_published
from tests.conftest import TEST_DATA

AE_DIR = TEST_DATA / "nhse-ae-monthly-2025-26"
DISCHARGE_DIR = TEST_DATA / "healthyr-nhse-discharge"
ONS_DIR = TEST_DATA / "ons-mye-la-age-2019-2020"
MONTHS = [f"2025-{m:02d}" for m in range(4, 13)] + [f"2026-{m:02d}" for m in range(1, 4)]

# SOURCE.md of nhse-ae-monthly-2025-26, "England totals (from the TOTAL rows)":
# attendances (all), over 4 h, % within 4 h (all), % within 4 h (Type 1),
# emergency admissions via A&E, all emergency admissions, 12 h+ DTA
ENGLAND = {
    "2025-04": (2297421, 579322, 74.78, 60.22, 396292, 528230, 44648),
    "2025-05": (2397529, 589735, 75.40, 61.21, 409526, 545128, 42891),
    "2025-06": (2351581, 574809, 75.56, 61.72, 401880, 535941, 38683),
    "2025-07": (2408866, 568304, 76.41, 63.09, 419451, 559392, 35467),
    "2025-08": (2266937, 546871, 75.88, 62.02, 400920, 526399, 35909),
    "2025-09": (2310222, 576391, 75.05, 61.08, 401746, 535580, 44765),
    "2025-10": (2401266, 619874, 74.19, 60.13, 413016, 553499, 54326),
    "2025-11": (2347046, 605140, 74.22, 60.35, 396744, 531747, 50648),
    "2025-12": (2326139, 608475, 73.84, 59.62, 405371, 542188, 50789),
    "2026-01": (2319296, 638938, 72.45, 57.32, 401942, 546136, 71517),
    "2026-02": (2117450, 549366, 74.06, 59.38, 361930, 493015, 54649),
    "2026-03": (2432272, 556711, 77.11, 64.09, 410005, 553892, 46665),
}
AE_COUNTS = ["att_type1", "att_type2", "att_other", "att_booked_type1", "att_booked_type2",
             "att_booked_other", "over4h_type1", "over4h_type2", "over4h_other",
             "over4h_booked_type1", "over4h_booked_type2", "over4h_booked_other",
             "dta_4_12h", "dta_12h", "emadm_ae_type1", "emadm_ae_type2", "emadm_ae_other", "emadm_other"]
ATT = ["att_type1", "att_type2", "att_other", "att_booked_type1", "att_booked_type2", "att_booked_other"]
OVER = ["over4h_type1", "over4h_type2", "over4h_other",
        "over4h_booked_type1", "over4h_booked_type2", "over4h_booked_other"]


def accounted(pf: PublishedFile) -> bool:
    return pf.rows_in == pf.rows_loaded + len(pf.quarantined) + pf.check_rows


def england(pf: PublishedFile) -> dict:
    """The SQL the metrics will run, over the provider rows (not the TOTAL row)."""
    s = pf.rows.select(pl.col(AE_COUNTS).sum()).row(0, named=True)
    att = sum(s[c] for c in ATT)
    over = sum(s[c] for c in OVER)
    att1 = s["att_type1"] + s["att_booked_type1"]
    over1 = s["over4h_type1"] + s["over4h_booked_type1"]
    emadm_ae = s["emadm_ae_type1"] + s["emadm_ae_type2"] + s["emadm_ae_other"]
    return {"ae_attendances": att, "over4h": over, "ae_within_4h_all": att - over,
            "pct_all": 100 * (1 - over / att), "pct_type1": 100 * (1 - over1 / att1),
            "ae_emergency_admissions": emadm_ae, "all_emergency": emadm_ae + s["emadm_other"],
            "ae_dta_12h": s["dta_12h"]}


# ---------------------------------------------------------------------------------------------
# NHS England A&E monthly

@pytest.fixture(scope="module")
def ae_files() -> dict[str, PublishedFile]:
    return {m: read_published(AE_DIR / f"{m}.csv") for m in MONTHS}


@pytest.mark.parametrize("month", MONTHS)
def test_ae_month_from_content_and_rows_accounted(ae_files, month):
    pf = ae_files[month]
    assert detect_published(AE_DIR / f"{month}.csv") == "nhse_ae"
    assert (pf.dataset, pf.org_code, pf.period, pf.periods) == ("nhse_ae", "NHSE", month, [month])
    assert pf.check_rows == 1 and pf.quarantined == []
    assert accounted(pf) and pf.rows_loaded == pf.rows.height
    assert pf.rows["period"].unique().to_list() == [date(int(month[:4]), int(month[5:]), 1)]
    assert pf.rows["org_code"].is_unique().all()
    assert "TOTAL" not in pf.rows["org_code"].to_list()


@pytest.mark.parametrize("month", MONTHS)
def test_ae_england_total_row_equals_provider_sum(ae_files, month):
    pf = ae_files[month]
    checks = [c for c in pf.checks if c["check"] == "england_total"]
    assert sorted(c["column"] for c in checks) == sorted(AE_COUNTS)     # all 18 count columns
    for c in checks:
        assert c["ok"], c
        assert c["published"] == c["computed"] == pf.rows[c["column"]].sum()


@pytest.mark.parametrize("month", MONTHS)
def test_ae_published_england_figures(ae_files, month):
    att, over, pct_all, pct_t1, emadm_ae, emadm_all, dta12 = ENGLAND[month]
    e = england(ae_files[month])
    assert e["ae_attendances"] == att
    assert e["over4h"] == over
    assert e["ae_within_4h_all"] == att - over
    assert round(e["pct_all"], 2) == pct_all
    assert round(e["pct_type1"], 2) == pct_t1
    assert e["ae_emergency_admissions"] == emadm_ae
    assert e["all_emergency"] == emadm_all
    assert e["ae_dta_12h"] == dta12


def test_ae_england_march_2026(ae_files):
    e = england(ae_files["2026-03"])
    assert e["ae_attendances"] == 2_432_272
    assert f"{e['pct_all']:.2f}" == "77.11"


def test_ae_quirks_normalised(ae_files):
    pf = ae_files["2026-03"]
    assert pf.rows.columns == ["line_number", "period", "org_code", "parent_org", "org_name", *AE_COUNTS]
    regions = set(pf.rows["parent_org"].to_list())
    assert "NHS ENGLAND LONDON" in regions and "NHS ENGLAND SOUTH EAST" in regions
    assert all(r == r.strip() for r in regions) and len(regions) == 7      # trailing spaces gone
    name = pf.rows.filter(pl.col("org_code") == "RCX")["org_name"].item()   # quoted, with commas
    assert name == "THE QUEEN ELIZABETH HOSPITAL, KING'S LYNN, NHS FOUNDATION TRUST"
    # February's TOTAL row carries the period instead of 'TOTAL': still the check row
    feb = ae_files["2026-02"]
    assert feb.check_rows == 1 and all(c["ok"] for c in feb.checks)
    # provider churn: the set of providers differs between months, each file stands alone
    counts = {m: pf.rows.height for m, pf in ae_files.items()}
    assert min(counts.values()) == 197 and max(counts.values()) == 201


def test_ae_detected_by_header_not_name(tmp_path):
    src = AE_DIR / "2026-03.csv"
    for name in ("Monthly-AE-March-2026-revised (1).csv", "2024-01.csv", "download"):
        copy = tmp_path / name
        shutil.copyfile(src, copy)
        assert detect_published(copy) == "nhse_ae"
        pf = read_published(copy)
        assert pf.period == "2026-03"          # from the rows, not the misleading name
        assert pf.rows.height == 199
    gz = tmp_path / "ae.csv.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    assert detect_published(gz) == "nhse_ae" and read_published(gz).period == "2026-03"


def _ae_lines() -> list[str]:
    return (AE_DIR / "2026-03.csv").read_text().splitlines()


def test_ae_bad_rows_quarantined_and_total_mismatch_reported(tmp_path):
    lines = _ae_lines()
    header, body = lines[0], lines[1:]
    fields = body[0].split(",")
    fields[4] = "12a"                          # a non-number
    body[0] = ",".join(fields)
    body.insert(5, body[5])                    # a provider twice
    fields = body[10].split(",")
    fields[1] = " "                            # no org code
    body[10] = ",".join(fields)
    body.insert(20, ",,,,")                    # a blank row
    body.insert(30, "MSitAE-FEBRUARY-2026" + body[30][body[30].index(","):])   # another month
    f = tmp_path / "x.csv"
    f.write_text("\r\n".join([header, *body]) + "\r\n")
    pf = read_published(f)
    rules = {q[1] for q in pf.quarantined}
    assert rules == {"bad_number", "duplicate_org", "missing_org_code", "blank_row", "period_mismatch"}
    assert [q[0] for q in pf.quarantined if q[1] == "duplicate_org"] == [6, 7]
    bad = next(q for q in pf.quarantined if q[1] == "bad_number")
    assert bad[0] == 1 and "A&E attendances Type 1" in bad[2] and "12a" in bad[2]
    assert pf.period == "2026-03" and pf.check_rows == 1
    assert accounted(pf) and pf.rows_in == 199 + 1 + 3
    failed = {c["column"] for c in pf.checks if not c["ok"]}
    assert "att_other" in failed               # row 1's 3,090 attendances are not loaded: the caller's
                                               # blocking audit sees the mismatch; no exception


def test_ae_missing_column_and_missing_total(tmp_path):
    lines = _ae_lines()
    drop = [",".join(x for i, x in enumerate(line.split(",")) if i != 10) for line in lines[:2]]
    f = tmp_path / "no_over4h.csv"
    f.write_text("\n".join(drop) + "\n")
    assert detect_published(f) == "nhse_ae"
    with pytest.raises(FileRejected) as exc:
        read_published(f)
    assert exc.value.rule == "missing_column" and "over4h_type1" in exc.value.detail

    f = tmp_path / "no_total.csv"
    f.write_text("\n".join(line for line in lines if not line.startswith("TOTAL")) + "\n")
    pf = read_published(f)
    assert pf.check_rows == 0 and accounted(pf)
    assert [c["ok"] for c in pf.checks] == [False]

    f = tmp_path / "no_period.csv"
    f.write_text("\n".join([lines[0]] + ["bad" + line[line.index(","):] for line in lines[1:3]]) + "\n")
    with pytest.raises(FileRejected) as exc:
        read_published(f)
    assert exc.value.rule == "no_period"


def test_unrecognised_files(tmp_path):
    f = tmp_path / "apc_RXH_2025-10.csv"
    f.write_text("PROCODE,PROVSPNO\nRXH,1\n")
    assert detect_published(f) is None
    with pytest.raises(FileRejected) as exc:
        read_published(f)
    assert exc.value.rule == "unknown_layout"
    x = tmp_path / "book.xlsx"
    x.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    assert detect_published(x) is None
    with pytest.raises(FileRejected):
        read_published(x)
    assert detect_published(tmp_path / "absent.csv") is None


@pytest.mark.parametrize("rel", ["healthyr-nhse-discharge/england_trust_accidents_emergency_head.csv.gz",
                                 "healthyr-nhse-discharge/england_delayed_discharge_reasons_head.csv.gz",
                                 "nhsr-ae-attendances/ae_attendances_head.csv"])
def test_other_layouts_not_mistaken(rel):
    """Trust-level A&E, delay reasons and NHS-R reshaped files are not these layouts."""
    assert detect_published(TEST_DATA / rel) is None


def test_a_single_hospital_ed_series_is_not_mistaken(tmp_path):
    """autospc's monthly ED series layout (its data are GPL-3, so not shipped: the header as
    its SOURCE.md documents it, with made-up figures)."""
    series = tmp_path / "ed_attendances_monthly.csv"
    series.write_text("month_start,att_all,within_4h,over_4h,percent_in_4h,e_adm_over_4h,e_adm_via_ed\n"
                      "2015-05-31,12000,11500,500,95.83,40,2400\n"
                      "2015-06-30,12100,11400,700,94.21,55,2450\n")
    assert detect_published(series) is None


# ---------------------------------------------------------------------------------------------
# Discharge sitrep

@pytest.fixture(scope="module")
def discharge() -> dict[str, PublishedFile]:
    return {name: read_published(DISCHARGE_DIR / f"england_trust_{name}.csv.gz")
            for name in ("criteria_to_reside", "discharged_patients")}


def test_discharge_files_parse_with_rows_accounted(discharge):
    for name, layout in (("criteria_to_reside", "daily_nctr"), ("discharged_patients", "daily_discharges")):
        pf = discharge[name]
        assert detect_published(DISCHARGE_DIR / f"england_trust_{name}.csv.gz") == "nhse_discharge"
        assert (pf.dataset, pf.org_code, pf.layout) == ("nhse_discharge", "NHSE", layout)
        assert pf.rows_in == 149_482 and accounted(pf) and pf.check_rows == 0
        assert pf.rows_loaded == pf.rows.height == 149_239
        assert {q[1] for q in pf.quarantined} == {"missing_org_code"} and len(pf.quarantined) == 243
        assert pf.period is None                      # 41 months in one file
        assert pf.periods[0] == "2022-04" and pf.periods[-1] == "2025-08" and len(pf.periods) == 41
        assert pf.rows["org_code"].n_unique() == 121
        assert all(c["ok"] for c in pf.checks)
    assert discharge["criteria_to_reside"].rows["nctr"].null_count() == 1517 - 243


def test_discharge_monthly_figures(discharge):
    """nctr_daily_average: the mean over the month's days of the daily count (England = sum of trusts)."""
    nctr = (discharge["criteria_to_reside"].rows
            .group_by("period", "date").agg(pl.col("nctr").sum())
            .group_by("period").agg(pl.col("nctr").mean())
            .with_columns(pl.col("period").dt.strftime("%Y-%m")))
    got = dict(nctr.iter_rows())
    for month, expected in (("2023-01", 23185.4), ("2024-01", 24129.3), ("2025-01", 23411.0),
                            ("2025-08", 22129.5)):
        assert round(got[month], 1) == expected
    dis = (discharge["discharged_patients"].rows.group_by("period").agg(pl.col("discharges").sum())
           .with_columns(pl.col("period").dt.strftime("%Y-%m")))
    got = dict(dis.iter_rows())
    assert (got["2023-01"], got["2024-01"], got["2025-01"], got["2025-08"]) == (286005, 322610, 301412, 297421)
    split = [c for c in discharge["discharged_patients"].checks if c["check"] == "discharge_split"]
    assert split and split[0]["ok"] and split[0]["rows_checked"] > 50_000


def test_discharge_one_month_file_has_period(tmp_path):
    text = gzip.decompress((DISCHARGE_DIR / "england_trust_criteria_to_reside.csv.gz").read_bytes()).decode()
    lines = text.splitlines()
    month = [lines[0]] + [line for line in lines[1:] if ",2024-01-" in line]
    month.append(month[1])                     # the same trust and day twice
    f = tmp_path / "sitrep.csv"
    f.write_text("\n".join(month) + "\n")
    pf = read_published(f)
    assert pf.period == "2024-01" and accounted(pf)
    assert [q[1] for q in pf.quarantined] == ["duplicate_org", "duplicate_org"]
    assert pf.quarantined[0][0] == 1


# ---------------------------------------------------------------------------------------------
# ONS mid-year estimates

@pytest.fixture(scope="module")
def ons() -> dict[int, PublishedFile]:
    return {y: read_published(ONS_DIR / f"ONS{y}_PopnByAgeYearEstimate.csv") for y in (2019, 2020)}


def _pop(pf: PublishedFile, code: str, min_age: int = 0) -> int:
    return pf.rows.filter((pl.col("area_code") == code) & (pl.col("age") >= min_age))["population"].sum()


def test_ons_population_parses_with_rows_accounted(ons):
    for year, areas, blank in ((2019, 426, 0), (2020, 420, 10)):
        pf = ons[year]
        assert detect_published(ONS_DIR / f"ONS{year}_PopnByAgeYearEstimate.csv") == "ons_population"
        assert (pf.dataset, pf.org_code, pf.period, pf.edition) == ("ons_population", "ONS", None, str(year))
        assert pf.rows_in == areas + blank and pf.rows_loaded == areas and accounted(pf)
        assert [q[1] for q in pf.quarantined] == ["blank_row"] * blank
        assert pf.rows.height == areas * 91
        assert pf.rows.columns == ["line_number", "area_code", "area_name", "geography", "year", "sex",
                                   "age", "population"]
        assert pf.rows["year"].unique().to_list() == [year]
        assert pf.rows["sex"].null_count() == pf.rows.height          # persons only: no sex split
        assert pf.layout == "mye2_wide_persons" and any("persons only" in n for n in pf.notes)
        assert pf.rows["age"].min() == 0 and pf.rows["age"].max() == 90
        assert all(c["ok"] for c in pf.checks)
        assert {c["check"] for c in pf.checks} >= {"all_ages", "E92000001_total"}


def test_ons_reference_figures(ons):
    assert _pop(ons[2019], "E92000001") == 56_286_961 and _pop(ons[2019], "E92000001", 65) == 10_353_716
    assert _pop(ons[2020], "E92000001") == 56_550_138 and _pop(ons[2020], "E92000001", 65) == 10_464_019
    assert _pop(ons[2020], "K02000001") == 67_081_234 and _pop(ons[2020], "K02000001", 65) == 12_508_638
    assert _pop(ons[2019], "E08000009") == 237_354 and _pop(ons[2019], "E08000009", 65) == 41_183
    assert _pop(ons[2020], "E09000003") == 399_007 and _pop(ons[2020], "E09000003", 65) == 58_170
    names = ons[2020].rows.filter(pl.col("area_name").str.starts_with("West Northamptonshire"))
    assert names["area_name"].unique().to_list() == ["West Northamptonshire"]    # cp1252 NBSP trimmed


def test_ons_year_when_the_name_does_not_say(tmp_path):
    src = ONS_DIR / "ONS2019_PopnByAgeYearEstimate.csv"
    f = tmp_path / "PopnByAgeYearEstimate.csv"
    shutil.copyfile(src, f)
    assert detect_published(f) == "ons_population"
    with pytest.raises(FileRejected) as exc:
        read_published(f)
    assert exc.value.rule == "population_year"
    assert read_published(f, year=2019).rows["year"].unique().to_list() == [2019]
    # Title lines above the header (as in ONS's own sheet) give the year and the sex.
    titled = tmp_path / "MYE2 males.csv"
    titled.write_bytes(b"MYE2: Population estimates: Males by single year of age, UK, mid-2019\r\n\r\n"
                       + src.read_bytes())
    pf = read_published(titled)
    assert pf.edition == "2019" and pf.layout == "mye2_wide_males"
    assert pf.rows["sex"].unique().to_list() == [1] and pf.rows_in == 426 and accounted(pf)


def test_ons_row_rules(tmp_path):
    lines = (ONS_DIR / "ONS2019_PopnByAgeYearEstimate.csv").read_text(encoding="cp1252").splitlines()
    lines[2] = lines[2].replace('"64,903,140"', '"64,903,141"')     # All ages disagrees with the ages
    lines.append(lines[-1])                                           # an area twice
    f = tmp_path / "ONS2019.csv"
    f.write_text("\n".join(lines) + "\n")
    pf = read_published(f)
    assert [(q[0], q[1]) for q in pf.quarantined] == [(2, "all_ages_mismatch"), (426, "duplicate_area"),
                                                      (427, "duplicate_area")]
    assert accounted(pf) and pf.rows_loaded == 424
    assert not next(c for c in pf.checks if c["check"] == "all_ages")["ok"]
