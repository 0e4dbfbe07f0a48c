"""Generate a realistic sample landing folder (synthetic data only).

`generate_landing(out_dir)` writes every file the contract (`spec/extracts.md`) describes for one
ICB (`QOP`) with two health and wellbeing boards (Manchester `E08000003`, Trafford `E08000009`)
and three acute providers (`R0A`, `RM3`, `RWW`):

- `orgs_all.csv`, `population_ONS_<year>.csv` (mid-year estimates by sex and single year of age),
  `plan_<HWB>_<FY>.csv` (all twelve metrics, every month of every financial year touched);
- `apc_<PROCODE>_<YYYY-MM>.csv`: every spell open at any time in the month, in its state at the
  end of the month (open spells have no DISDATE; long stays repeat in several files);
- `reablement_<LA>_<YYYY-MM>.csv` (rows re-sent once their 91-day status is known) and
  `carehome_<LA>_<YYYY-MM>.csv`.

Council rows are drawn from the hospital discharges of the same people (same NHS number), so the
linked metrics of extracts section 3a have something to find: most reablement rows carry the
spell's DISDATE, some the day after (a match) and a few a day early or two days late (a near
miss); care home admissions follow discharges on the day, within 30 days and just after it;
readmissions after reablement come from the hospital spells themselves. Trafford's council sends
PSEUDO_IDs of its own instead of NHS numbers for the first half of the months: its rows then
link to nothing, and its linkage rate shows it. These details draw from a random stream of
their own, so every other figure of the sample is the same as without them.

People come from a fixed pool per area (the HWB's population, ~560,000 in all) with NHS numbers
in the NHS test range (999…, modulus-11 valid; ~0.5% of spells carry a bad or missing one); the
same person is linked across hospital and council data. Emergency admissions run at ~90 per
1,000 a year with a winter peak, elective ~80; 24 months make ~250,000 apc rows in about 2 s.
No PROVSPNO holds a run of exactly ten digits (it would look like an NHS number).

Everything is driven by one seeded numpy generator, so the same arguments give byte-identical
files. `formats=True` adds gzip, parquet, BOM (+CRLF), lower-case/padded-header and DD/MM/YYYY
variants and one `_resubmission` file; `faults=True` appends faulty rows to four good files of
the second month (bad dates and codes, ages out of range, duplicate and empty keys, wrong org,
invalid NHS numbers, ragged rows) and adds whole files that must be rejected (missing column,
no person column, unreadable .csv.gz and .parquet, names that do not parse) and a byte copy of
a good file. The clean files are the same with or without faults.
"""
from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

# --------------------------------------------------------------------------------------------
# Geography
# --------------------------------------------------------------------------------------------

ICB_CODE = "QOP"
ICB_NAME = "NHS Greater Manchester Integrated Care Board"


@dataclass(frozen=True)
class _Area:
    code: str
    name: str
    client_prefix: str
    population: int                  # mid-year population of the year before the start
    knots: tuple[tuple[int, float], ...]   # (age, relative size of a single year of age)
    over90: float                    # size of the 90+ group, in single years of age at 89
    gp_prefix: str
    practices: int
    need: float                      # admission-rate multiplier (deprivation)
    provider_share: tuple[float, float, float]
    self_funders: float              # share of care home admissions paid by the person


_YOUNG_CITY = ((0, 1.30), (4, 1.25), (10, 1.20), (16, 1.05), (19, 1.75), (22, 2.40), (27, 2.30),
               (32, 1.85), (40, 1.45), (50, 1.15), (60, 0.95), (70, 0.62), (80, 0.35), (89, 0.12))
_SUBURB = ((0, 1.10), (4, 1.25), (10, 1.40), (16, 1.35), (19, 0.95), (22, 0.70), (27, 0.95),
           (32, 1.25), (40, 1.45), (50, 1.50), (60, 1.35), (70, 1.05), (80, 0.70), (89, 0.22))

AREAS = (
    _Area("E08000003", "Manchester", "MCR", 340_000, _YOUNG_CITY, 0.45, "P84", 90, 1.12,
          (0.70, 0.20, 0.10), 0.18),
    _Area("E08000009", "Trafford", "TRF", 226_000, _SUBURB, 0.95, "P91", 35, 0.92,
          (0.35, 0.15, 0.50), 0.32),
)
# Residents of neighbouring areas treated by our providers: not in orgs, count in no area.
OUT_OF_AREA = (("E08000010", "P92"), ("E06000007", "N81"), ("E08000007", "P88"))
OUT_OF_AREA_POPULATION = 24_000
UNKNOWN_RESIDENCE = "X99999999"

PROVIDERS = (
    ("R0A", "Manchester University NHS Foundation Trust"),
    ("RM3", "Northern Care Alliance NHS Foundation Trust"),
    ("RWW", "Warrington and Halton Teaching Hospitals NHS Foundation Trust"),
)
# How each provider records things (this is where real extracts differ).
_READY_COMPLETENESS = np.array([0.90, 0.95, 0.75])      # DISCHARGE_READY_DATE recorded
_OPEN_DISMETH = ("8", "", "8")                          # DISMETH / DISDEST while a spell is open
_OPEN_DISDEST = ("98", "", "98")
_NEW_CARE_HOME_CODES = (True, False, None)              # 55/56, 54/65/85, either
# ICD-10 writing style: probabilities of (no dot + X filler, dotted, dash filler, lower case)
_DIAG_STYLE = ((0.84, 0.15, 0.0, 0.01), (0.20, 0.79, 0.0, 0.01), (0.48, 0.20, 0.31, 0.01))

METRIC_IDS = (
    "emergency_admissions", "emergency_admissions_65plus", "avoidable_admissions",
    "falls_admissions_65plus", "readmissions_30d", "discharge_to_usual_residence",
    "mean_length_of_stay", "long_stay_21plus", "discharged_on_ready_date",
    "discharge_delay_days", "care_home_admissions_65plus", "reablement_at_home_91d",
)

APC_COLUMNS = (
    ["PROCODE", "PROVSPNO", "NEWNHSNO", "STARTAGE", "SEX", "RESLADST_ONS", "GPPRAC", "ADMIDATE",
     "ADMIMETH", "ADMISORC", "CLASSPAT", "DISDATE", "DISMETH", "DISDEST", "DISCHARGE_READY_DATE"]
    + [f"DIAG_4_{i:02d}" for i in range(1, 21)]
)
REABLEMENT_COLUMNS = ["LA_CODE", "CLIENT_ID", "NEWNHSNO", "PSEUDO_ID", "AGE", "HOSP_DISCHARGE_DATE",
                      "SERVICE_START_DATE", "STATUS_91D"]
CAREHOME_COLUMNS = ["LA_CODE", "CLIENT_ID", "NEWNHSNO", "PSEUDO_ID", "AGE", "ADMISSION_DATE", "SETTING",
                    "PERMANENT", "FUNDING"]
_DATE_COLUMNS = {"ADMIDATE", "DISDATE", "DISCHARGE_READY_DATE", "HOSP_DISCHARGE_DATE",
                 "SERVICE_START_DATE", "ADMISSION_DATE"}

# Linking people across hospital and council data (extracts 3a). The council's discharge date
# is mostly the hospital's DISDATE; some councils record the next day (still a match) and a few
# are two days out or a day early (a near miss). Offsets: (days, probability).
_REPORTED_DISCHARGE_OFFSETS = ((0, 0.80), (1, 0.12), (2, 0.05), (-1, 0.03))
# People aged 65+ discharged home who go into a care home some weeks later: share of such
# discharges, and the days after discharge (3-60: about half within the 30-day window).
_LATER_CARE_HOME_SHARE = 0.003
_LATER_CARE_HOME_DAYS = (3, 60)
# The council whose ids cannot be linked: for the first half of the sample it sends PSEUDO_IDs
# of its own case-management system instead of NHS numbers (index into AREAS).
UNLINKED_COUNCIL = 1

# Spell kinds
EMERGENCY, ELECTIVE, MATERNITY, BIRTH, TRANSFER = 0, 1, 2, 3, 4
# Diagnosis categories (for the primary diagnosis)
(CAT_MEDICAL, CAT_ACSC, CAT_FALL, CAT_INJURY, CAT_ELECTIVE, CAT_REGULAR, CAT_DELIVERY,
 CAT_ANTENATAL, CAT_BIRTH, CAT_INFANT, CAT_CHILD, CAT_HOMEBIRTH) = range(12)

# --------------------------------------------------------------------------------------------
# Code lists. Diagnoses are written canonically with a dot ("I50.0", "J45") and re-styled per
# row when written ("I500", "J45X", "J45-", "i50.0").
# --------------------------------------------------------------------------------------------

_EMERGENCY_METHODS = (("21", .72), ("22", .10), ("23", .005), ("24", .03), ("25", .005),
                      ("2A", .03), ("2B", .02), ("2D", .09))
_DIAG = {
    "fall": (("S72.0", 8), ("S72.1", 3), ("S72.2", 1), ("S32.5", 2), ("S22.3", 2), ("S52.5", 3),
             ("S42.2", 2), ("S06.0", 3), ("S01.0", 3), ("S00.9", 2), ("S82.6", 1), ("S32.0", 1),
             ("T14.9", 1), ("S70.0", 2), ("S06.9", 1)),
    "fall_cause": (("W19", 6), ("W19.0", 2), ("W01", 3), ("W01.0", 1), ("W18", 2), ("W18.9", 1),
                   ("W10", 2), ("W10.0", 1), ("W06", 2), ("W07", 1), ("W05", .5), ("W00", .5),
                   ("W08", .5), ("W13", .3), ("W17", .3), ("W11", .2)),
    "injury": (("S61.0", 2), ("S62.5", 1), ("T39.1", 2), ("T42.4", 1), ("S01.8", 1),
               ("S09.9", 1), ("S93.4", 1), ("T51.0", 1), ("S27.0", .5), ("S02.2", 1)),
    "injury_cause": (("X59.9", 3), ("V43.5", 1), ("W54", 1), ("W26.0", 1), ("X44", 1),
                     ("X42", 1), ("W22", 1), ("W50", 1), ("Y04", 1)),
    "acsc": (("I50.0", 5), ("I50.9", 3), ("I11.0", .5), ("J81", .5), ("J44.1", 5), ("J44.0", 3),
             ("J44.9", 1), ("J43.9", .5), ("J42", .3), ("E11.6", .8), ("E11.0", .3),
             ("E10.1", .6), ("E11.8", .3), ("J45.9", 1.5), ("J46", .3), ("I48", 1.5),
             ("I48.0", 1), ("I48.9", 1), ("F03", 1), ("F01.9", .4), ("I20.0", .8),
             ("I20.9", 1), ("I10", .8), ("G40.9", 1), ("G41.9", .1), ("R56.8", .8),
             ("D50.9", .4), ("B18.1", .05)),
    "acsc_child": (("J45.9", 5), ("J45.0", 1), ("J46", 1), ("G40.9", 2), ("R56.0", 2),
                   ("E10.1", 1)),
    "medical": (("R07.4", 6), ("R10.4", 4), ("J18.9", 6), ("N39.0", 5), ("J22", 3), ("A09.9", 2),
                ("R55", 3), ("L03.1", 2), ("I21.4", 2), ("I63.9", 2), ("K56.6", 1), ("R06.0", 1.5),
                ("N17.9", 2), ("E87.1", 1), ("K35.8", 1.5), ("F10.0", 1), ("K29.7", 1),
                ("I26.9", 1), ("K92.2", 1), ("R41.0", 1), ("U07.1", .5), ("J96.0", .5),
                ("R13", .5), ("A41.9", 2), ("K80.1", 1), ("R53", 1), ("M54.5", 1), ("R51", 1),
                ("N10", .5), ("R31", .5), ("D64.9", .5), ("C34.9", .5), ("K85.9", .5)),
    "child": (("J06.9", 4), ("J21.9", 2), ("R50.9", 3), ("A08.4", 2), ("R11", 2), ("J18.9", 1),
              ("N39.0", 1), ("L03.1", .5), ("R10.4", 1.5), ("K35.8", 1), ("B34.9", 2)),
    "infant": (("P59.9", 3), ("J21.9", 4), ("R50.9", 2), ("P92.9", 1), ("A08.4", 1), ("R11", 1)),
    "elective": (("H25.9", 5), ("K40.9", 3), ("M17.1", 3), ("M16.1", 2), ("C50.9", 2),
                 ("K80.2", 2), ("N40", 2), ("K57.3", 1), ("D12.6", 3), ("K21.0", 1),
                 ("C18.7", .5), ("C61", 1), ("M75.1", 1), ("N20.0", 1), ("M23.2", 1),
                 ("H26.9", 1), ("N81.1", .5), ("L72.1", 1), ("D25.9", .5), ("G56.0", 1)),
    "elective_child": (("J35.3", 3), ("J35.0", 1), ("H65.3", 2), ("K02.9", 3), ("N47", 1),
                       ("K40.9", 1), ("H50.0", 1), ("Q53.1", .5), ("L72.1", .5)),
    "regular": (("Z51.1", 5), ("Z51.2", 1), ("Z49.1", 1)),
    "delivery": (("O80.0", 5), ("O82.0", 2), ("O70.0", 1), ("O42.0", 1), ("O48", 1),
                 ("O34.2", 1), ("O60.1", .5), ("O24.4", .5), ("O13", .5)),
    "antenatal": (("O47.9", 3), ("O26.8", 2), ("O21.0", 2), ("O36.8", 1), ("O46.9", 1),
                  ("O47.0", 1)),
    "birth": (("Z38.0", 10), ("P59.9", 1), ("P07.3", .5), ("P22.1", .5)),
    "homebirth": (("Z38.1", 1),),
    "sec_old": (("I10", 8), ("E11.9", 4), ("N18.3", 3), ("I25.1", 2), ("J44.9", 2), ("F03", 2),
                ("Z86.7", 1), ("E78.0", 2), ("Z92.1", 1), ("I48", 2), ("E03.9", 1.5),
                ("F32.9", 1.5), ("K21.9", 1), ("M81.9", 1), ("Z74.1", 1), ("Z99.3", .3),
                ("Z96.6", .5), ("D64.9", 1), ("E87.1", .5), ("R26.8", .5), ("Z91.8", .5),
                ("I50.9", 1), ("G20", .3), ("M19.9", 1), ("H54.7", .5), ("N39.0", .5)),
    "sec_adult": (("F17.1", 3), ("Z72.0", 2), ("F41.9", 2), ("J45.9", 2), ("E66.9", 2),
                  ("F32.9", 1.5), ("K58.9", .5), ("Z88.0", 1), ("E11.9", 1), ("I10", 1),
                  ("F10.2", .5), ("Z86.4", .5), ("G43.9", .5)),
    "sec_child": (("J45.9", 2), ("L20.9", 1), ("Z88.0", .5), ("F84.0", .3), ("F90.0", .3),
                  ("Q21.0", .2)),
}
_MALE_ONLY, _FEMALE_ONLY = {"N40", "C61", "Q53.1", "N47"}, {"C50.9", "N81.1", "D25.9"}
_DIAG["elective_m"] = tuple(c for c in _DIAG["elective"] if c[0] not in _FEMALE_ONLY)
_DIAG["elective_f"] = tuple(c for c in _DIAG["elective"] if c[0] not in _MALE_ONLY)
_DIAG["elective_child_f"] = tuple(c for c in _DIAG["elective_child"] if c[0] not in _MALE_ONLY)
_CODES: list[str] = sorted({c for lst in _DIAG.values() for c, _ in lst})
_CODE_INDEX = {c: i for i, c in enumerate(_CODES)}
_N_SEC = 19


def _code_variants() -> pl.Series:
    """4 written forms per code: no dot with X filler, dotted, dash filler, lower case."""
    out = []
    for code in _CODES:
        bare = code.replace(".", "").rstrip("-")
        if len(bare) == 3:
            out += [bare + "X", bare, bare + "-", (bare + "X").lower()]
        else:
            out += [bare, code, bare, code.lower()]
    return pl.Series(out, dtype=pl.String)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

@dataclass
class GenerationSummary:
    files: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)    # data rows written, per file name
    months: list[str] = field(default_factory=list)
    hwbs: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    icb: str = ICB_CODE


def generate_landing(out_dir: Path, *, seed: int = 42, start: str = "2024-04", months: int = 24,
                     faults: bool = False, formats: bool = True) -> GenerationSummary:
    """Write a sample landing folder into `out_dir` and return what was written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start_mi = _month_index(start)
    if months < 1:
        raise ValueError("months must be at least 1")
    gen = _Generator(seed, start_mi, months)
    gen.build()
    writer = _Writer(out_dir, gen, formats=formats, faults=faults, seed=seed)
    writer.write_all()
    return GenerationSummary(
        files=writer.files, rows=writer.rows, months=[_period(m) for m in gen.month_idx],
        hwbs=[a.code for a in AREAS], providers=[p for p, _ in PROVIDERS], icb=ICB_CODE)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

_EPOCH_MONTH = 1970 * 12


def _month_index(period: str) -> int:
    try:
        year, month = (int(x) for x in period.split("-"))
    except ValueError:
        raise ValueError(f"start must be YYYY-MM, got {period!r}") from None
    if not 1 <= month <= 12:
        raise ValueError(f"start must be YYYY-MM, got {period!r}")
    return year * 12 + month - 1


def _period(mi: int) -> str:
    return f"{mi // 12:04d}-{mi % 12 + 1:02d}"


def _month_first_day(mi) -> np.ndarray:
    """Month index (year*12 + month-1) -> day number (days since 1970-01-01) of its 1st."""
    return (np.asarray(mi, dtype=np.int64) - _EPOCH_MONTH).astype("datetime64[M]") \
        .astype("datetime64[D]").astype(np.int64)


def _day_month(days) -> np.ndarray:
    return np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype("datetime64[M]") \
        .astype(np.int64) + _EPOCH_MONTH


def _day(text: str) -> int:
    return int(np.datetime64(text, "D").astype(np.int64))


def _choice(rng, options, size):
    """Weighted choice from ((value, weight), ...); returns a numpy array of values."""
    values = np.array([v for v, _ in options])
    w = np.array([w for _, w in options], dtype=float)
    return values[rng.choice(len(values), size=size, p=w / w.sum())]


def _code_choice(rng, name, size):
    lst = _DIAG[name]
    idx = np.array([_CODE_INDEX[c] for c, _ in lst])
    w = np.array([w for _, w in lst], dtype=float)
    return idx[rng.choice(len(idx), size=size, p=w / w.sum())]


def _lognormal_days(rng, median, sigma, size, cap=200):
    return np.minimum(np.ceil(rng.lognormal(np.log(median), sigma, size)), cap).astype(np.int64)


def nhs_check_digit(stems: np.ndarray) -> np.ndarray:
    """Modulus-11 check digit for 9-digit stems; 10 means the stem is never issued."""
    stems = np.asarray(stems, dtype=np.int64)
    total = np.zeros_like(stems)
    for i in range(9):
        total += ((stems // 10 ** (8 - i)) % 10) * (10 - i)
    check = 11 - total % 11
    return np.where(check == 11, 0, check)


def _nhs_numbers(rng, n: int) -> np.ndarray:
    """n distinct valid NHS numbers from the NHS test range 999 000 0000 - 999 999 9999."""
    stems = 999_000_000 + rng.permutation(1_000_000)
    check = nhs_check_digit(stems)
    numbers = stems * 10 + check
    ok = (check != 10) & (numbers != 9_999_999_999)
    numbers = numbers[ok]
    if n > len(numbers):
        raise ValueError("sample population too large for the NHS test number range")
    return numbers[:n]


def _age_band(age):
    """0 child (<18), 1 adult 18-64, 2 65-74, 3 75-84, 4 85+."""
    return np.digitize(age, [18, 65, 75, 85])


# --------------------------------------------------------------------------------------------
# The generator: builds populations, people, spells, council data and plans in memory
# --------------------------------------------------------------------------------------------

class _Generator:
    def __init__(self, seed: int, start_mi: int, months: int):
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 20240401]))
        # A stream of its own for the linked-care details, so that they leave every other draw
        # (and so every other figure of the sample) as it was.
        self.link_rng = np.random.default_rng(np.random.SeedSequence([seed, 3141]))
        self.month_idx = list(range(start_mi, start_mi + months))
        self.start_mi = start_mi
        self.months = months
        self.range_start = int(_month_first_day(start_mi))
        self.range_end = int(_month_first_day(start_mi + months)) - 1
        # Spells start three months early so the first files carry spells already open.
        self.gen_start = int(_month_first_day(start_mi - 3))
        self.gen_end = self.range_end
        self.base_year = start_mi // 12 - 1
        self.base_mid = _day(f"{self.base_year}-06-30")
        self.last_year = (start_mi + months - 1) // 12
        self.years = list(range(self.base_year, self.last_year + 1))
        self.n_areas = len(AREAS)

    # ---- population -----------------------------------------------------------------------
    def _base_population(self, area_knots, over90, total, rng) -> np.ndarray:
        ages = np.arange(90)
        kx, ky = zip(*area_knots)
        dens = np.interp(ages, kx, ky) * rng.uniform(0.97, 1.03, 90)
        dens = np.append(dens, over90)
        counts = dens / dens.sum() * total
        male = np.interp(np.arange(91), [0, 20, 60, 75, 85, 90], [.512, .50, .49, .46, .38, .30])
        return np.round(np.vstack([counts * male, counts * (1 - male)])).astype(np.int64)

    def build_population(self):
        rng = self.rng
        self.population: dict[int, np.ndarray] = {}     # year -> (areas, 2 sexes, 91 ages)
        base = np.stack([self._base_population(a.knots, a.over90, a.population, rng)
                         for a in AREAS])
        self.population[self.base_year] = base
        mortality = np.minimum(0.0002 * np.exp(0.085 * np.arange(91)), 0.3)
        migration = np.where((np.arange(91) >= 18) & (np.arange(91) <= 30), 1.01, 1.0005)
        pop = base.astype(float)
        for year in self.years[1:]:
            nxt = np.empty_like(pop)
            nxt[:, :, 0] = pop[:, :, 0] * rng.uniform(0.985, 1.01, (self.n_areas, 1))
            nxt[:, :, 1:90] = pop[:, :, 0:89] * (1 - mortality[0:89]) * migration[1:90]
            nxt[:, :, 90] = pop[:, :, 89] * (1 - mortality[89]) + pop[:, :, 90] * 0.8
            pop = nxt
            self.population[year] = np.round(pop).astype(np.int64)
        # out-of-area pool shape: suburb-like
        self.ooa_population = self._base_population(_SUBURB, 0.95, OUT_OF_AREA_POPULATION, rng)

    # ---- people -----------------------------------------------------------------------------
    def build_people(self):
        rng = self.rng
        areas, sexes, births = [], [], []
        pools = [self.population[self.base_year][i] for i in range(self.n_areas)]
        ooa = self.ooa_population
        for _ in OUT_OF_AREA:
            pools.append(np.round(ooa / len(OUT_OF_AREA)).astype(np.int64))
        for area, counts in enumerate(pools):
            for s in (0, 1):
                ages = np.repeat(np.arange(91), counts[s])
                old = ages == 90
                ages[old] = 90 + np.minimum(rng.geometric(0.25, old.sum()) - 1, 14)
                birth = self.base_mid - np.floor((ages + rng.random(len(ages))) * 365.25)
                areas.append(np.full(len(ages), area))
                sexes.append(np.full(len(ages), s + 1))
                births.append(birth.astype(np.int64))
        n_base = sum(len(a) for a in areas)
        # babies born from the base mid-year to the end (HWB residents only)
        days = np.arange(self.base_mid + 1, self.gen_end + 1)
        new_area, new_birth = [], []
        for i in range(self.n_areas):
            per_day = self.population[self.base_year][i, :, 0].sum() / 365.25
            n = rng.poisson(per_day, len(days))
            new_birth.append(np.repeat(days, n))
            new_area.append(np.full(n.sum(), i))
        new_birth = np.concatenate(new_birth)
        areas.append(np.concatenate(new_area))
        sexes.append(np.where(rng.random(len(new_birth)) < 0.512, 1, 2))
        births.append(new_birth)

        self.p_area = np.concatenate(areas).astype(np.int64)
        self.p_sex = np.concatenate(sexes).astype(np.int64)
        self.p_birth = np.concatenate(births).astype(np.int64)
        n = len(self.p_area)
        self.n_people = n
        self.p_newborn = np.arange(n) >= n_base
        self.p_nhs = _nhs_numbers(rng, n)
        # GP practice
        prefixes = [a.gp_prefix for a in AREAS] + [p for _, p in OUT_OF_AREA]
        sizes = [a.practices for a in AREAS] + [40] * len(OUT_OF_AREA)
        num = np.floor(rng.random(n) * np.array(sizes)[self.p_area]).astype(np.int64) + 1
        gp = np.char.add(np.array(prefixes)[self.p_area], np.char.zfill(num.astype(str), 3))
        u = rng.random(n)
        gp[u < 0.004] = "V81999"
        gp[(u >= 0.004) & (u < 0.010)] = ""
        self.p_gp = gp
        self.gp_series = pl.Series(gp.tolist(), dtype=pl.String)
        # living in a care home (by age at the middle of the period)
        mid = (self.gen_start + self.gen_end) // 2
        self.p_age_mid = (mid - self.p_birth) / 365.25
        p_home = np.interp(self.p_age_mid, [64, 65, 75, 85, 90, 100], [0, .006, .025, .08, .15, .2])
        self.p_carehome = (rng.random(n) < p_home) & ~self.p_newborn

    def ages_at(self, person, day):
        """(years, STARTAGE code): 7001-7007 under one year."""
        days = day - self.p_birth[person]
        years = np.where(days >= 365, np.maximum(np.floor(days / 365.2425), 1), 0).astype(np.int64)
        infant = np.digitize(days, [1, 7, 29, 91, 182, 274]) + 7001
        code = np.where(days < 365, infant, years)
        return years, code

    # ---- spells -----------------------------------------------------------------------------
    def _days(self):
        return np.arange(self.gen_start, self.gen_end + 1)

    def _season(self, days, amplitude):
        peak = _day("2000-01-12")
        return 1 + amplitude * np.cos(2 * np.pi * (days - peak) / 365.25)

    def _sample_events(self, people, weights, days, per_day_factor, annual_total):
        """Poisson number of events per day; people drawn in proportion to weights."""
        rng = self.rng
        if len(people) == 0 or annual_total <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        expected = annual_total / 365.25 * per_day_factor
        n = rng.poisson(expected)
        event_days = np.repeat(days, n)
        p = weights / weights.sum()
        who = people[rng.choice(len(people), size=len(event_days), p=p)]
        return who, event_days

    def _providers(self, area, size):
        rng = self.rng
        shares = np.array([a.provider_share for a in AREAS] + [(0.4, 0.3, 0.3)] * len(OUT_OF_AREA))
        cum = np.cumsum(shares[area], axis=1)
        return (rng.random(size)[:, None] > cum).sum(axis=1).clip(0, len(PROVIDERS) - 1)

    def build_spells(self):
        rng = self.rng
        days = self._days()
        weekday = (days + 3) % 7          # 0 = Monday
        em_week = np.array([1.08, 1.03, 1.0, 1.0, 1.02, 0.92, 0.95])
        em_factor = self._season(days, 0.09) * (em_week / em_week.mean())[weekday]
        el_week = np.array([1.35, 1.35, 1.35, 1.35, 1.35, 0.15, 0.10])
        el_factor = (el_week / el_week.mean())[weekday]
        dd = days.astype("datetime64[D]")
        month = dd.astype("datetime64[M]").astype(np.int64) % 12 + 1
        dom = (dd - dd.astype("datetime64[M]")).astype(np.int64) + 1
        el_factor = el_factor * np.where(month == 8, 0.88, 1.0) * np.where(month == 1, 0.93, 1.0)
        xmas = ((month == 12) & (dom >= 24)) | ((month == 1) & (dom == 1))
        el_factor = np.where(xmas, el_factor * 0.2, el_factor)

        age = self.p_age_mid
        female = self.p_sex == 2
        em_rate = np.interp(age, [0, 1, 5, 15, 20, 45, 55, 65, 75, 85, 95],
                            [95, 95, 40, 45, 55, 60, 85, 135, 240, 420, 540]) / 1000
        em_rate = em_rate * np.where(female & (age >= 15) & (age < 45), 1.2, 1.0)
        em_rate = em_rate * np.where(self.p_carehome, 2.0, 1.0)
        el_rate = np.interp(age, [0, 5, 15, 30, 45, 55, 65, 75, 85, 95],
                            [25, 20, 25, 45, 80, 110, 160, 170, 110, 60]) / 1000
        fert = np.where(female, np.interp(age, [15, 18, 25, 31, 36, 42, 46],
                                          [0, .02, .07, .11, .08, .02, 0]), 0.0)
        need = np.array([a.need for a in AREAS] + [1.0] * len(OUT_OF_AREA))[self.p_area]
        base = ~self.p_newborn
        # emergency: calibrate so all-cause emergency admissions are ~90 per 1,000 a year,
        # ~12% of them coming back as readmissions generated below.
        hwb = base & (self.p_area < self.n_areas)
        em_scale = 0.090 * 0.875 * hwb.sum() / (em_rate * need)[hwb].sum()
        el_scale = 0.080 * hwb.sum() / el_rate[hwb].sum()

        parts = []
        for area in range(self.n_areas + len(OUT_OF_AREA)):
            mask = base & (self.p_area == area)
            people = np.flatnonzero(mask)
            ooa = area >= self.n_areas
            # Out-of-area patients are ~1% of each provider's activity.
            k = 0.25 if ooa else 1.0
            w = em_rate[mask] * need[mask]
            who, d = self._sample_events(people, w, days, em_factor, w.sum() * em_scale * k)
            parts.append(self._new_spells(who, d, EMERGENCY))
            w = el_rate[mask]
            who, d = self._sample_events(people, w, days, el_factor, w.sum() * el_scale * k)
            parts.append(self._new_spells(who, d, ELECTIVE))
            w = em_rate[mask] * need[mask]
            who, d = self._sample_events(people, w, days, em_factor,
                                         w.sum() * em_scale * 0.017 * k)
            parts.append(self._new_spells(who, d, TRANSFER))
            if ooa:
                continue
            # births and mothers
            babies = np.flatnonzero(self.p_newborn & (self.p_area == area)
                                    & (self.p_birth >= self.gen_start))
            home = rng.random(len(babies)) < 0.015
            parts.append(self._new_spells(babies[~home], self.p_birth[babies[~home]], BIRTH))
            hb = self._new_spells(babies[home], self.p_birth[babies[home]], EMERGENCY)
            hb["cat"][:] = CAT_HOMEBIRTH
            parts.append(hb)
            # later emergency admissions of the newborns (jaundice, bronchiolitis ...)
            sick = babies[rng.random(len(babies)) < 0.12]
            at = self.p_birth[sick] + np.where(rng.random(len(sick)) < 0.4,
                                               rng.integers(1, 14, len(sick)),
                                               rng.integers(14, 364, len(sick)))
            keep = at <= self.gen_end
            inf = self._new_spells(sick[keep], at[keep], EMERGENCY)
            inf["cat"][:] = CAT_INFANT
            parts.append(inf)
            women = np.flatnonzero(mask & (fert > 0))
            n_births = len(babies)
            mothers = women[rng.choice(len(women), size=n_births,
                                       p=fert[women] / fert[women].sum())]
            deliv = self._new_spells(mothers, self.p_birth[babies] - (rng.random(n_births) < .3),
                                     MATERNITY)
            deliv["cat"][:] = CAT_DELIVERY
            parts.append(deliv)
            who, d = self._sample_events(women, fert[women], days, np.ones(len(days)),
                                         n_births / max(len(days), 1) * 365.25 * 0.5)
            ante = self._new_spells(who, d, MATERNITY)
            ante["cat"][:] = CAT_ANTENATAL
            parts.append(ante)

        sp = _concat(parts)
        sp = _select(sp, sp["adm"] >= self.gen_start)
        self._fill_details(sp)
        self._outcomes(sp)
        # readmissions: two rounds (a readmission can itself be followed by one)
        all_parts = [sp]
        index = sp
        for _ in range(2):
            re = self._readmissions(index)
            if _size(re) == 0:
                break
            all_parts.append(re)
            index = re
        sp = _concat(all_parts)
        sp = self._drop_after_death(sp)
        self.spells = sp
        self._spell_identity()

    def _new_spells(self, who, days, kind):
        n = len(who)
        return {
            "person": np.asarray(who, np.int64), "adm": np.asarray(days, np.int64),
            "kind": np.full(n, kind, np.int64), "cat": np.full(n, -1, np.int64),
            "readmit": np.zeros(n, bool),
        }

    def _fill_details(self, sp, prov=None):
        """Provider, admission method/source, patient class and diagnoses."""
        rng = self.rng
        n = _size(sp)
        person = sp["person"]
        area = self.p_area[person]
        sp["area"] = area
        sp["prov"] = self._providers(area, n) if prov is None else prov
        years, code = self.ages_at(person, sp["adm"])
        sp["age"], sp["startage"] = years, code
        band = _age_band(years)
        kind, cat = sp["kind"], sp["cat"]
        carehome = self.p_carehome[person]

        meth = np.full(n, "21", dtype="<U2")
        sorc = np.full(n, "19", dtype="<U2")
        cls = np.full(n, "1", dtype="<U1")
        em = kind == EMERGENCY
        meth[em] = _choice(rng, _EMERGENCY_METHODS, em.sum())
        young_mh = em & (meth == "25") & ((years < 18) | (years >= 65))
        meth[young_mh] = "21"
        legacy = em & (meth == "2D") & (sp["prov"] == 2) & (rng.random(n) < 0.5)
        meth[legacy] = "28"
        meth[cat == CAT_HOMEBIRTH] = "2C"
        el = kind == ELECTIVE
        meth[el] = _choice(rng, (("11", .65), ("12", .25), ("13", .10)), el.sum())
        mat = kind == MATERNITY
        meth[mat] = np.where(cat[mat] == CAT_DELIVERY, _choice(rng, (("31", .9), ("32", .1)),
                                                                mat.sum()), "31")
        bi = kind == BIRTH
        meth[bi] = np.where(rng.random(bi.sum()) < 0.01, "83", "82")
        tr = kind == TRANSFER
        meth[tr] = "81"
        # source of admission
        ch = carehome & (em | tr | el)
        sorc[ch] = _choice(rng, (("54", .2), ("65", .3), ("85", .5)), ch.sum())
        sorc[(meth == "2B")] = "51"
        sorc[tr] = _choice(rng, (("51", .85), ("87", .15)), tr.sum())
        sorc[bi] = "79"
        tmp = (em | el) & ~ch & (meth != "2B") & (rng.random(n) < 0.005)
        sorc[tmp] = "29"
        # patient classification
        u = rng.random(n)
        day_case = el & (u < np.where(years >= 75, 0.68, 0.80))
        regular = el & ~day_case & (u > 0.97)
        cls[day_case] = "2"
        cls[regular] = "3"
        meth[regular] = "13"
        sp["meth"], sp["sorc"], sp["cls"] = meth, sorc, cls

        # primary diagnosis category
        u = rng.random(n)
        fall_p = np.choose(band, [0.02, 0.025, 0.05, 0.065, 0.085])
        inj_p = np.choose(band, [0.07, 0.07, 0.02, 0.02, 0.02])
        acsc_p = np.choose(band, [0.06, 0.07, 0.12, 0.12, 0.12])
        todo = (cat < 0) & (em | tr)
        c = np.where(u < fall_p, CAT_FALL, np.where(u < fall_p + inj_p, CAT_INJURY,
                     np.where(u < fall_p + inj_p + acsc_p, CAT_ACSC, CAT_MEDICAL)))
        c = np.where((c == CAT_MEDICAL) & (years < 16), CAT_CHILD, c)
        c = np.where(tr & (c != CAT_MEDICAL), CAT_MEDICAL, c)
        cat = np.where(todo, c, cat)
        cat = np.where(el, np.where(regular, CAT_REGULAR, CAT_ELECTIVE), cat)
        cat = np.where(bi, CAT_BIRTH, cat)
        sp["cat"] = cat

        diag = np.zeros(n, np.int64)
        male = self.p_sex[person] == 1
        for name, m in (("elective_m", male & (years >= 16)), ("elective_f", ~male & (years >= 16)),
                        ("elective_child", male & (years < 16)),
                        ("elective_child_f", ~male & (years < 16))):
            m = m & (cat == CAT_ELECTIVE)
            diag[m] = _code_choice(rng, name, m.sum())
        for c_id, name in ((CAT_MEDICAL, "medical"), (CAT_FALL, "fall"), (CAT_INJURY, "injury"),
                           (CAT_REGULAR, "regular"),
                           (CAT_DELIVERY, "delivery"), (CAT_ANTENATAL, "antenatal"),
                           (CAT_BIRTH, "birth"), (CAT_INFANT, "infant"), (CAT_CHILD, "child"),
                           (CAT_HOMEBIRTH, "homebirth")):
            m = cat == c_id
            diag[m] = _code_choice(rng, name, m.sum())
        m = (cat == CAT_ACSC) & (years >= 16)
        diag[m] = _code_choice(rng, "acsc", m.sum())
        m = (cat == CAT_ACSC) & (years < 16)
        diag[m] = _code_choice(rng, "acsc_child", m.sum())
        if "same_diag" in sp:     # readmissions for the same condition
            keep = sp["same_diag"] >= 0
            diag[keep] = sp["same_diag"][keep]
        sp["diag1"] = diag
        sp["sec"] = self._secondary(sp, years, band)
        # how this spell's codes are written
        style = np.zeros(n, np.int64)
        for p in range(len(PROVIDERS)):
            m = sp["prov"] == p
            style[m] = rng.choice(4, size=m.sum(), p=_DIAG_STYLE[p])
        sp["style"] = style

    def _secondary(self, sp, years, band):
        rng = self.rng
        n = _size(sp)
        mean = np.choose(band, [0.4, 1.2, 3.2, 4.5, 5.2])
        mean = np.where(sp["kind"] == BIRTH, 0.2, np.where(sp["kind"] == MATERNITY, 0.8, mean))
        n_sec = np.minimum(rng.poisson(mean), _N_SEC)
        sec = np.full((n, _N_SEC), -1, np.int64)
        for name, m in (("sec_child", years < 18), ("sec_adult", (years >= 18) & (years < 65)),
                        ("sec_old", years >= 65)):
            rows = np.flatnonzero(m)
            if len(rows) == 0:
                continue
            lst = _DIAG[name]
            idx = np.array([_CODE_INDEX[c] for c, _ in lst])
            w = np.log(np.array([w for _, w in lst], dtype=float))
            keys = w + rng.gumbel(size=(len(rows), len(idx)))       # weighted, no repeats
            order = np.argsort(-keys, axis=1)[:, :_N_SEC]
            width = order.shape[1]
            sec[rows, :width] = idx[order]
        pos = np.arange(_N_SEC)
        sec[pos[None, :] >= n_sec[:, None]] = -1
        sec[sec == sp["diag1"][:, None]] = -1
        # external cause codes for injuries
        cat = sp["cat"]
        for c_id, name in ((CAT_FALL, "fall_cause"), (CAT_INJURY, "injury_cause")):
            rows = np.flatnonzero(cat == c_id)
            where = np.where(rng.random(len(rows)) < 0.7, 0, rng.integers(1, 3, len(rows)))
            if c_id == CAT_INJURY:
                where[:] = 0
            # shift existing codes right to make room, then insert
            for r, wpos in ((rows[where == k], k) for k in range(3)):
                if len(r) == 0:
                    continue
                sec[r, wpos + 1:] = sec[r, wpos:-1]
                sec[r, wpos] = _code_choice(rng, name, len(r))
        # pack: empty positions last, order otherwise kept
        order = np.argsort(sec < 0, axis=1, kind="stable")
        return np.take_along_axis(sec, order, axis=1)

    def _outcomes(self, sp):
        """Length of stay, ready date, discharge method and destination."""
        rng = self.rng
        n = _size(sp)
        years, kind, cat, prov = sp["age"], sp["kind"], sp["cat"], sp["prov"]
        band = _age_band(years)
        carehome = self.p_carehome[sp["person"]]
        em = (kind == EMERGENCY) | (kind == TRANSFER)
        u = rng.random(n)
        # deaths
        p_die = np.where(em, np.choose(band, [0.0005, 0.002, 0.012, 0.025, 0.04]), 0.0)
        p_die = np.where((kind == ELECTIVE) & (sp["cls"] == "1"), 0.0005, p_die)
        p_die = np.where(kind == BIRTH, 0.001, p_die)
        died = u < p_die
        # clinical length of stay (admission to ready for discharge)
        clin = np.zeros(n, np.int64)
        zero_p = np.choose(band, [0.45, 0.35, 0.22, 0.18, 0.12])
        zero_p = np.where(kind == TRANSFER, 0.02, zero_p)
        med = np.choose(band, [1.5, 2.5, 4.0, 5.5, 6.5]).astype(float)
        med = np.where(cat == CAT_FALL, med * 1.8, med)
        med = np.where(kind == TRANSFER, med * 1.5, med)
        emerg_stay = em & (rng.random(n) >= zero_p)
        clin[emerg_stay] = _lognormal_days(rng, med[emerg_stay], 0.85, emerg_stay.sum())
        ordinary = (kind == ELECTIVE) & (sp["cls"] == "1")
        clin[ordinary] = _lognormal_days(rng, 2.5, 0.6, ordinary.sum(), cap=60)
        mat = kind == MATERNITY
        deliv = mat & (cat == CAT_DELIVERY)
        clin[deliv] = rng.choice([0, 1, 2, 3, 4, 5], size=deliv.sum(),
                                 p=[.15, .45, .25, .08, .05, .02])
        ante = mat & ~deliv
        clin[ante] = rng.choice([0, 1, 2, 3], size=ante.sum(), p=[.6, .3, .07, .03])
        bi = kind == BIRTH
        clin[bi] = rng.choice([0, 1, 2, 3, 4], size=bi.sum(), p=[.3, .42, .15, .06, .07])
        nicu = bi & (rng.random(n) < 0.05)
        clin[nicu] = _lognormal_days(rng, 9, 0.8, nicu.sum(), cap=120)
        hb = cat == CAT_HOMEBIRTH
        clin[hb] = rng.choice([0, 1, 2], size=hb.sum(), p=[.5, .4, .1])
        clin[died] = _lognormal_days(rng, 7, 1.0, died.sum(), cap=150) - 1

        # destination
        dest = np.full(n, "19", dtype="<U2")
        meth = np.full(n, "1", dtype="<U1")
        u = rng.random(n)
        new_ch_p = np.where(em, np.choose(band, [0, 0.001, 0.008, 0.03, 0.07]), 0.0)
        new_ch_p = np.where(cat == CAT_FALL, new_ch_p * 2, new_ch_p)
        to_ch = (carehome & (u < 0.95)) | (~carehome & (u < new_ch_p))
        other = ~to_ch & ~died
        u2 = rng.random(n)
        cuts = [(0.005, "29"), (0.020, "51"), (0.023, "87"), (0.025, "53"), (0.029, "99")]
        lo = 0.0
        for hi, code in cuts:
            allowed = em | ((kind == ELECTIVE) & (code != "53"))
            dest[other & (u2 >= lo) & (u2 < hi) & allowed] = code
            lo = hi
        hospice = other & em & (years >= 65) & (u2 >= 0.995)
        dest[hospice] = "88"
        # care home codes: old (54/65/85) or new (55/56) generation, by provider
        new_codes = np.array([_NEW_CARE_HOME_CODES[p] is True for p in range(len(PROVIDERS))])
        mixed = np.array([_NEW_CARE_HOME_CODES[p] is None for p in range(len(PROVIDERS))])
        use_new = new_codes[prov] | (mixed[prov] & (rng.random(n) < 0.5))
        ch_code = np.where(use_new, _choice(rng, (("55", .45), ("56", .55)), n),
                           _choice(rng, (("54", .15), ("65", .25), ("85", .60)), n))
        dest[to_ch & ~died] = ch_code[to_ch & ~died]
        dest[died] = "79"
        meth[died] = "4"
        # self-discharge and other methods
        u3 = rng.random(n)
        selfdis = ~died & em & (dest == "19") & (u3 < np.where((years >= 18) & (years < 65),
                                                                0.015, 0.004))
        meth[selfdis] = "2"
        clin[selfdis] = np.floor(clin[selfdis] * rng.uniform(0.2, 1.0, selfdis.sum())).astype(int)
        tribunal = ~died & ~selfdis & (dest == "53") & (u3 > 0.8)
        meth[tribunal] = "3"

        # ready date and delays
        has_ready = ~died & ~selfdis & (clin >= 1) & (rng.random(n) < _READY_COMPLETENESS[prov])
        has_ready |= ~died & ~selfdis & (clin == 0) & (rng.random(n) < 0.1)
        has_ready &= ~mat | (rng.random(n) < 0.5)
        delay = np.zeros(n, np.int64)
        home = np.isin(dest, ["19", "29"])
        p0 = np.where(home, np.where(years >= 65, 0.70, 0.88), np.where(to_ch, 0.30, 0.60))
        p0 = np.where(clin == 0, 0.97, p0)
        p0 = np.where(mat | bi, 0.97, p0)
        dmed = np.where(to_ch, 7.0, np.where(home & (years >= 65), 2.5, 1.6))
        delayed = ~died & ~selfdis & (rng.random(n) >= p0)
        delay[delayed] = _lognormal_days(rng, dmed[delayed], 0.8, delayed.sum(), cap=120)
        clin = np.maximum(clin, 0)
        sp["ready"] = np.where(has_ready, sp["adm"] + clin, -1)
        sp["dis"] = sp["adm"] + clin + delay
        sp["dismeth"], sp["disdest"], sp["died"] = meth, dest, died

    def _readmissions(self, index):
        """Emergency readmissions of the same person 0-29 days after an alive discharge."""
        rng = self.rng
        n = _size(index)
        years, kind = index["age"], index["kind"]
        band = _age_band(years)
        p = np.where(kind == EMERGENCY, np.choose(band, [0.05, 0.075, 0.11, 0.16, 0.17]), 0.0)
        p = np.where(kind == TRANSFER, 0.10, p)
        p = np.where(kind == ELECTIVE, 0.02, p)
        p = np.where((kind == MATERNITY) | (kind == BIRTH), 0.015, p)
        go = ~index["died"] & (rng.random(n) < p)
        gap = np.minimum(rng.geometric(0.09, go.sum()) - 1, 29)
        adm = index["dis"][go] + gap
        keep = adm <= self.gen_end
        rows = np.flatnonzero(go)[keep]
        re = self._new_spells(index["person"][rows], adm[keep], EMERGENCY)
        re["readmit"][:] = True
        k = len(rows)
        same = (rng.random(k) < 0.4) & np.isin(index["cat"][rows], [CAT_MEDICAL, CAT_ACSC,
                                                                    CAT_CHILD, CAT_INFANT])
        re["cat"] = np.where(same, index["cat"][rows], -1)
        re["same_diag"] = np.where(same, index["diag1"][rows], -1)
        prov = index["prov"][rows].copy()
        moved = rng.random(k) < 0.2
        prov[moved] = (prov[moved] + rng.integers(1, len(PROVIDERS), moved.sum())) % len(PROVIDERS)
        self._fill_details(re, prov=prov)
        del re["same_diag"]
        self._outcomes(re)
        return re

    def _drop_after_death(self, sp):
        """Nobody is admitted after dying in hospital."""
        death = np.full(self.n_people, np.iinfo(np.int64).max)
        d = sp["died"]
        np.minimum.at(death, sp["person"][d], sp["adm"][d])
        keep = (sp["adm"] < death[sp["person"]]) | (d & (sp["adm"] == death[sp["person"]]))
        dis = np.full(self.n_people, np.iinfo(np.int64).max)
        np.minimum.at(dis, sp["person"][d], sp["dis"][d])
        self.death_day = np.where(dis == np.iinfo(np.int64).max, -1, dis)
        return _select(sp, keep)

    def _spell_identity(self):
        """PROVSPNO, residence code, written NHS number and sex for each spell."""
        rng = self.rng
        sp = self.spells
        n = _size(sp)
        order = np.lexsort((sp["person"], sp["adm"], sp["prov"]))
        sp = _select(sp, order)
        # sequence within provider and admission month
        key = sp["prov"] * 100_000 + _day_month(sp["adm"])
        first = np.r_[True, key[1:] != key[:-1]]
        starts = np.flatnonzero(first)
        seq = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n])) + 1
        sp["seq"] = seq
        # residence as written: own area; ~1% unknown
        codes = np.array([a.code for a in AREAS] + [c for c, _ in OUT_OF_AREA]
                         + [UNKNOWN_RESIDENCE])
        res = sp["area"].copy()
        res[rng.random(n) < 0.01] = len(codes) - 1
        sp["res"] = res
        self.residence_codes = codes
        # NHS number as written: ~0.4% wrong check digit, ~0.1% missing
        u = rng.random(n)
        nhs = self.p_nhs[sp["person"]].copy()
        bad = u < 0.004
        nhs[bad] = nhs[bad] // 10 * 10 + (nhs[bad] % 10 + rng.integers(1, 10, bad.sum())) % 10
        sp["nhs"] = nhs
        sp["nhs_ok"] = u >= 0.005
        sp["nhs_missing"] = (u >= 0.004) & (u < 0.005)
        sex = self.p_sex[sp["person"]].astype(str).astype("<U1")
        u = rng.random(n)
        sex[u < 0.0005] = "9"
        sex[(u >= 0.0005) & (u < 0.0015)] = "0"
        sp["sexcode"] = sex
        self.spells = sp

    # ---- council data -------------------------------------------------------------------------
    def build_council(self):
        rng = self.rng
        sp = self.spells
        years, _ = self.ages_at(sp["person"], sp["dis"])
        in_range = (sp["dis"] >= self.range_start) & (sp["dis"] <= self.range_end)
        resident = sp["area"] < self.n_areas
        alive = ~sp["died"]
        is_ch = np.isin(sp["disdest"], ["54", "55", "56", "65", "85"])
        home = sp["disdest"] == "19"
        eligible = in_range & resident & alive & ((sp["kind"] == EMERGENCY)
                                                  | (sp["kind"] == TRANSFER))
        p = np.where(years >= 65, np.where(home, 0.12, np.where(is_ch, 0.05, 0.0)),
                     np.where((years >= 18) & home, 0.008, 0.0))
        pick = eligible & (rng.random(len(p)) < p)
        rows = np.flatnonzero(pick)
        age = years[rows]
        band = np.digitize(age, [65, 75, 85])
        p_home = np.choose(band, [0.88, 0.86, 0.82, 0.75])
        u = rng.random(len(rows))
        rest = (u - p_home) / (1 - p_home)
        status = np.where(u < p_home, "HOME",
                          np.where(rest < 0.3, "CARE_HOME", np.where(rest < 0.6, "HOSPITAL",
                                   np.where(rest < 0.9, "DIED", "UNKNOWN"))))
        self.reab = {
            "person": sp["person"][rows], "area": sp["area"][rows], "age": age,
            "dis": sp["dis"][rows],
            "start": sp["dis"][rows] + rng.choice([0, 1, 2, 3], len(rows), p=[.45, .35, .15, .05]),
            "status": status.astype("<U9"),
        }
        # care home admissions: from hospital (new care home placements) and from the community
        ch_rows = np.flatnonzero(in_range & resident & alive & is_ch
                                 & ~np.isin(sp["sorc"], ["54", "65", "85"])
                                 & (rng.random(len(p)) < 0.75))
        ch_person = [sp["person"][ch_rows]]
        ch_day = [sp["dis"][ch_rows] + rng.choice([0, 0, 0, 1, 2], len(ch_rows))]
        ch_from_hospital = [np.ones(len(ch_rows), bool)]
        days = np.arange(self.range_start, self.range_end + 1)
        for i in range(self.n_areas):
            mask = (self.p_area == i) & ~self.p_newborn & (self.p_age_mid >= 18)
            people = np.flatnonzero(mask)
            old = self.p_age_mid[people] >= 65
            w = np.where(old, np.interp(self.p_age_mid[people], [65, 75, 85, 95],
                                        [0.3, 1.0, 3.5, 6.0]), 0.03)
            pop65 = self.population[self.base_year][i, :, 65:].sum()
            # ~550 permanent LA-funded 65+ admissions per 100,000 65+ a year, ~39% of all rows
            target = 550 / 100_000 * pop65 / 0.39 * 0.82
            from_hosp = (self.p_area[ch_person[0]] == i).sum() / max(len(days), 1) * 365.25
            who, d = self._sample_events(people, w, days, np.ones(len(days)),
                                         max(target - from_hosp, 0))
            ch_person.append(who)
            ch_day.append(d)
            ch_from_hospital.append(np.zeros(len(who), bool))
        person = np.concatenate(ch_person)
        day = np.concatenate(ch_day)
        from_hospital = np.concatenate(ch_from_hospital)
        # nobody goes into a care home after dying; one row per person and day
        alive_then = (self.death_day[person] < 0) | (day < self.death_day[person])
        keep = alive_then & (day <= self.range_end)
        person, day, from_hospital = person[keep], day[keep], from_hospital[keep]
        _, first = np.unique(person * 100_000 + day, return_index=True)
        first = np.sort(first)
        person, day, from_hospital = person[first], day[first], from_hospital[first]
        n = len(person)
        age, _ = self.ages_at(person, day)
        nursing = rng.random(n) < np.where(age >= 85, 0.45, 0.35)
        permanent = rng.random(n) < np.where(from_hospital, 0.72, 0.62)
        self_share = np.array([a.self_funders for a in AREAS])[self.p_area[person]]
        u = rng.random(n)
        funding = np.where(u < self_share, "SELF",
                           np.where(u < self_share + 0.08 + 0.08 * nursing, "NHS",
                                    np.where(u < self_share + 0.14 + 0.08 * nursing, "JOINT",
                                             "LA")))
        self.care = {
            "person": person, "area": self.p_area[person], "age": age, "day": day,
            "setting": np.where(nursing, "NURSING", "RESIDENTIAL"),
            "permanent": np.where(permanent, "Y", "N"), "funding": funding.astype("<U5"),
            # ~3% reported a month late
            "late": rng.random(n) < 0.03,
        }
        self._add_later_care_home_admissions()
        # Reablement: nobody re-sent after death is an issue; drop rows after a known death.
        r = self.reab
        ok = (self.death_day[r["person"]] < 0) | (r["dis"] <= self.death_day[r["person"]])
        self.reab = {k: v[ok] for k, v in r.items()}
        _, first = np.unique(self.reab["person"] * 100_000 + self.reab["dis"], return_index=True)
        self.reab = {k: v[np.sort(first)] for k, v in self.reab.items()}
        self.reab["reported"] = self._reported_discharge(self.reab["dis"])
        # client ids: one per person per council, numbered in a shuffled order
        self.client_no = {}
        for i in range(self.n_areas):
            people = np.unique(np.concatenate([self.reab["person"][self.reab["area"] == i],
                                               self.care["person"][self.care["area"] == i]]))
            numbers = rng.permutation(len(people)) + 1 + rng.integers(100, 900)
            self.client_no[i] = (people, numbers)

    def _reported_discharge(self, dis: np.ndarray) -> np.ndarray:
        """HOSP_DISCHARGE_DATE as the council records it: DISDATE, or a day or two out.

        An offset is kept only where it leaves both the discharge month and the month 91 days
        on unchanged, so the council's own figures (by discharge month, status re-sent after 91
        days) are the same as with no offset."""
        days = np.array([d for d, _ in _REPORTED_DISCHARGE_OFFSETS])
        p = np.array([w for _, w in _REPORTED_DISCHARGE_OFFSETS])
        offset = days[self.link_rng.choice(len(days), len(dis), p=p)]
        moved = dis + offset
        same = (_day_month(moved) == _day_month(dis)) & (_day_month(moved + 91) == _day_month(dis + 91))
        return np.where(same, moved, dis)

    def _add_later_care_home_admissions(self):
        """Some people aged 65+ discharged home alive go into a care home 3-60 days later:
        inside and outside the 30-day window of carehome_after_discharge_65plus. Drawn from
        `link_rng` and appended, so the care home rows drawn before are unchanged."""
        rng, sp, c = self.link_rng, self.spells, self.care
        years, _ = self.ages_at(sp["person"], sp["dis"])
        home = (sp["disdest"] == "19") & ~sp["died"] & (years >= 65) & (sp["area"] < self.n_areas) \
            & (sp["dis"] >= self.range_start) & (sp["dis"] <= self.range_end)
        rows = np.flatnonzero(home & (rng.random(len(years)) < _LATER_CARE_HOME_SHARE))
        lo, hi = _LATER_CARE_HOME_DAYS
        person, day = sp["person"][rows], sp["dis"][rows] + rng.integers(lo, hi + 1, len(rows))
        alive_then = (self.death_day[person] < 0) | (day < self.death_day[person])
        keep = alive_then & (day <= self.range_end) & ~np.isin(person * 100_000 + day,
                                                               c["person"] * 100_000 + c["day"])
        person, day = person[keep], day[keep]
        _, first = np.unique(person * 100_000 + day, return_index=True)
        person, day = person[np.sort(first)], day[np.sort(first)]
        n = len(person)
        age, _ = self.ages_at(person, day)
        nursing = rng.random(n) < np.where(age >= 85, 0.45, 0.35)
        self_share = np.array([a.self_funders for a in AREAS])[self.p_area[person]]
        u = rng.random(n)
        funding = np.where(u < self_share, "SELF", np.where(u < self_share + 0.12, "NHS", "LA"))
        added = {
            "person": person, "area": self.p_area[person], "age": age, "day": day,
            "setting": np.where(nursing, "NURSING", "RESIDENTIAL"),
            "permanent": np.where(rng.random(n) < 0.8, "Y", "N"), "funding": funding.astype("<U5"),
            "late": rng.random(n) < 0.03,
        }
        self.care_drawn_first = len(c["person"])
        self.care = {k: np.concatenate([c[k], added[k]]) for k in c}

    def council_ids(self, area: int, person: np.ndarray, month: int) -> tuple[np.ndarray, np.ndarray]:
        """(NEWNHSNO, PSEUDO_ID) a council sends for these people in month `month` (0-based).

        UNLINKED_COUNCIL sends ids of its own, not NHS numbers, for the first half of the
        sample: its rows carry a person id that no hospital spell has."""
        nhs = self.p_nhs[person].astype(str)
        if area == UNLINKED_COUNCIL and month < self.months // 2:
            own = np.char.add(f"{AREAS[area].client_prefix}-P", np.char.zfill(person.astype(str), 8))
            return np.full(len(person), "", dtype="<U10"), own
        return nhs, np.full(len(person), "", dtype="<U1")

    def client_ids(self, area: int, person: np.ndarray) -> np.ndarray:
        people, numbers = self.client_no[area]
        no = numbers[np.searchsorted(people, person)]
        return np.char.add(f"{AREAS[area].client_prefix}-", np.char.zfill(no.astype(str), 6))

    # ---- plans --------------------------------------------------------------------------------
    def build_actuals(self):
        """Each metric per HWB and month, from the generated truth (used to set plans)."""
        sp = self.spells
        months = np.array(self.month_idx)
        n_m = len(months)
        H = self.n_areas
        res_area = np.where(sp["res"] < H, sp["res"], -1)
        adm_m = _day_month(sp["adm"]) - self.start_mi
        dis_m = _day_month(sp["dis"]) - self.start_mi
        emerg = np.isin(sp["meth"], ["21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"])
        age = sp["age"]

        def count(mask, month):
            ok = mask & (res_area >= 0) & (month >= 0) & (month < n_m)
            out = np.zeros((H, n_m))
            np.add.at(out, (res_area[ok], month[ok]), 1)
            return out

        def total(values, mask, month):
            ok = mask & (res_area >= 0) & (month >= 0) & (month < n_m)
            out = np.zeros((H, n_m))
            np.add.at(out, (res_area[ok], month[ok]), values[ok])
            return out

        years = months // 12
        pop_all = np.array([[self.population[y][h].sum() for y in years] for h in range(H)])
        pop65 = np.array([[self.population[y][h][:, 65:].sum() for y in years] for h in range(H)])
        a = {}
        with np.errstate(divide="ignore", invalid="ignore"):
            a["emergency_admissions"] = count(emerg, adm_m) / pop_all * 1e5
            a["emergency_admissions_65plus"] = count(emerg & (age >= 65), adm_m) / pop65 * 1e5
            avoid = emerg & ~np.isin(sp["meth"], ["2B", "81"]) & (sp["cat"] == CAT_ACSC)
            a["avoidable_admissions"] = count(avoid, adm_m) / pop_all * 1e5
            falls = emerg & (age >= 65) & (sp["cat"] == CAT_FALL)
            a["falls_admissions_65plus"] = count(falls, adm_m) / pop65 * 1e5
            # readmissions within 0-29 days, any provider
            dead = sp["died"]
            df = pl.DataFrame({"i": np.arange(_size(sp)), "person": sp["person"],
                               "adm": sp["adm"], "dis": sp["dis"]})
            em_df = df.filter(pl.Series(emerg)).select("person", pl.col("adm").alias("radm"),
                                                       pl.col("i").alias("j"))
            idx = df.filter(pl.Series(~dead & sp["nhs_ok"]))
            hit = idx.join(em_df, on="person").filter(
                (pl.col("j") != pl.col("i")) & (pl.col("radm") >= pl.col("dis"))
                & (pl.col("radm") <= pl.col("dis") + 29))["i"].unique().to_numpy()
            readm = np.zeros(_size(sp), bool)
            readm[hit] = True
            linked = ~dead & sp["nhs_ok"]
            a["readmissions_30d"] = 100 * count(readm & linked, dis_m) / count(linked, dis_m)
            excl = dead | np.isin(sp["disdest"], ["79", "98", "99"]) | np.isin(sp["dismeth"],
                                                                                ["4", "5"])
            a["discharge_to_usual_residence"] = (100 * count(sp["disdest"] == "19", dis_m)
                                                 / count(~excl, dis_m))
            los = (sp["dis"] - sp["adm"]).astype(float)
            disch = np.ones(_size(sp), bool)
            a["mean_length_of_stay"] = total(los, disch, dis_m) / count(disch, dis_m)
            a["long_stay_21plus"] = 100 * count(los >= 21, dis_m) / count(disch, dis_m)
            ready = sp["ready"] >= 0
            a["discharged_on_ready_date"] = (100 * count(ready & (sp["dis"] <= sp["ready"]), dis_m)
                                             / count(ready, dis_m))
            delay = (sp["dis"] - sp["ready"]).astype(float)
            late = ready & (delay > 0)
            a["discharge_delay_days"] = total(delay, late, dis_m) / count(late, dis_m)
            c = self.care
            cm = _day_month(c["day"]) - self.start_mi
            ok = (c["permanent"] == "Y") & (c["funding"] == "LA") & (c["age"] >= 65)
            out = np.zeros((H, n_m))
            np.add.at(out, (c["area"][ok], cm[ok]), 1)
            a["care_home_admissions_65plus"] = out / pop65 * 1e5
            r = self.reab
            rm = _day_month(r["dis"]) - self.start_mi
            ok = r["age"] >= 65
            num = np.zeros((H, n_m))
            den = np.zeros((H, n_m))
            np.add.at(den, (r["area"][ok], rm[ok]), 1)
            home = ok & (r["status"] == "HOME")
            np.add.at(num, (r["area"][home], rm[home]), 1)
            a["reablement_at_home_91d"] = 100 * num / den
        self.actuals = a

    def plan_values(self, area: int, fy_months: list[int]) -> dict[str, list[float]]:
        """Plan trajectories: smoothed actuals with a few per cent improvement."""
        lower = {"emergency_admissions": .03, "emergency_admissions_65plus": .03,
                 "avoidable_admissions": .05, "falls_admissions_65plus": .04,
                 "readmissions_30d": .03, "mean_length_of_stay": .03, "long_stay_21plus": .05,
                 "discharge_delay_days": .08, "care_home_admissions_65plus": .04}
        higher = {"discharge_to_usual_residence": 0.5, "discharged_on_ready_date": 3.0,
                  "reablement_at_home_91d": 1.5}
        digits = {"mean_length_of_stay": 2, "discharge_delay_days": 2}
        out = {}
        n_m = len(self.month_idx)
        for metric in METRIC_IDS:
            actual = self.actuals[metric][area]
            window = 1 if metric not in ("care_home_admissions_65plus", "reablement_at_home_91d",
                                         "falls_admissions_65plus") else 2
            smooth = np.array([np.nanmean(actual[max(0, i - window): i + window + 1])
                               if np.isfinite(actual[max(0, i - window): i + window + 1]).any()
                               else np.nan for i in range(n_m)])
            fallback = np.nanmean(smooth) if np.isfinite(smooth).any() else 0.0
            vals = []
            for mi in fy_months:
                i = mi - self.start_mi
                if not 0 <= i < n_m:
                    same = [j for j in range(n_m) if (self.start_mi + j) % 12 == mi % 12]
                    v = np.nanmean(smooth[same]) if same and np.isfinite(smooth[same]).any() \
                        else fallback
                else:
                    v = smooth[i] if np.isfinite(smooth[i]) else fallback
                if metric in lower:
                    v = v * (1 - lower[metric])
                else:
                    v = min(v + higher[metric], 99.0)
                vals.append(round(float(v), digits.get(metric, 1)))
            out[metric] = vals
        return out

    def build(self):
        self.build_population()
        self.build_people()
        self.build_spells()
        self.build_council()
        self.build_actuals()


def _size(sp) -> int:
    return len(sp["person"])


def _select(sp, mask):
    return {k: v[mask] for k, v in sp.items()}


def _concat(parts):
    keys = parts[0].keys()
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


# --------------------------------------------------------------------------------------------
# Writing files
# --------------------------------------------------------------------------------------------

def _dates(days: np.ndarray) -> np.ndarray:
    """Day numbers -> 'YYYY-MM-DD' ('' where negative)."""
    days = np.asarray(days, np.int64)
    text = np.datetime_as_string(np.maximum(days, 0).astype("datetime64[D]"), unit="D")
    return np.where(days < 0, "", text)


class _Writer:
    def __init__(self, out_dir: Path, gen: _Generator, *, formats: bool, faults: bool, seed: int):
        self.out = out_dir
        self.g = gen
        self.formats = formats
        self.faults = faults
        self.files: list[Path] = []
        self.rows: dict[str, int] = {}
        self.frames: dict[tuple, pl.DataFrame] = {}
        self.paths: dict[tuple, Path] = {}
        self.fault_rng = np.random.default_rng(np.random.SeedSequence([seed, 9119]))
        self.seed = seed
        n = gen.months
        k1 = min(1, n - 1)
        self.fault_hosts = {("apc", "R0A", k1), ("apc", "RM3", k1),
                            ("reablement", AREAS[0].code, k1), ("carehome", AREAS[1].code, k1)}
        self.variants: dict[tuple, str] = {}
        if formats:
            wanted = [("apc", "RWW", 3, "resubmission"), ("apc", "RM3", 2, "gz"),
                      ("reablement", AREAS[1].code, 4, "gz"), ("carehome", AREAS[0].code, 5, "gz"),
                      ("apc", "RWW", 5, "parquet"), ("carehome", AREAS[1].code, 6, "parquet"),
                      ("reablement", AREAS[0].code, 7, "parquet"), ("apc", "R0A", 3, "bom"),
                      ("apc", "RM3", 9, "header"), ("apc", "R0A", 10, "ddmmyyyy")]
            # fault hosts stay plain CSV, with or without faults, so the clean files are the same
            taken = set(self.fault_hosts)
            for dataset, org, k, variant in wanted:
                for step in range(n):
                    slot = (dataset, org, (k + step) % n)
                    if slot not in taken:
                        taken.add(slot)
                        self.variants[slot] = variant
                        break

    # ---- generic ------------------------------------------------------------------------------
    def _write(self, name: str, data: bytes, rows: int):
        path = self.out / name
        path.write_bytes(data)
        if name not in self.rows:
            self.files.append(path)
        self.rows[name] = rows

    def _encode(self, df: pl.DataFrame, variant: str | None) -> bytes:
        if variant == "ddmmyyyy":
            df = df.with_columns(
                pl.col(c).str.replace(r"^(\d{4})-(\d{2})-(\d{2})$", "${3}/${2}/${1}")
                for c in df.columns if c in _DATE_COLUMNS)
        if variant == "parquet":
            buf = io.BytesIO()
            df.with_columns(pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c)
                            for c in df.columns).write_parquet(buf)
            return buf.getvalue()
        # empty text is written as an empty field (polars would quote an empty string)
        text = df.with_columns(pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c)
                               for c, t in df.schema.items() if t == pl.String).write_csv()
        if variant == "header":
            _, rest = text.split("\n", 1)
            text = ",".join(f" {c.lower()} " for c in df.columns) + "\n" + rest
        if variant == "bom":
            return b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()
        data = text.encode()
        if variant == "gz":
            return gzip.compress(data, mtime=0)
        return data

    def _periodic(self, dataset: str, org: str, k: int, df: pl.DataFrame):
        period = _period(self.g.start_mi + k)
        key = (dataset, org, k)
        variant = self.variants.get(key)
        ext = {"gz": ".csv.gz", "parquet": ".parquet"}.get(variant, ".csv")
        name = f"{dataset}_{org}_{period}{ext}"
        self.frames[key] = df
        self.paths[key] = self.out / name
        if variant == "resubmission":
            damaged = self._damage(df, k)
            self._write(name, self._encode(damaged, None), damaged.height)
            self._write(f"{dataset}_{org}_{period}_resubmission.csv", self._encode(df, None),
                        df.height)
            return
        self._write(name, self._encode(df, variant), df.height)

    def write_all(self):
        self.write_orgs()
        self.write_population()
        self.write_plans()
        self.write_apc()
        self.write_council()
        if self.faults:
            self.write_faults()

    # ---- reference files ---------------------------------------------------------------------
    def write_orgs(self):
        rows = [(ICB_CODE, "ICB", ICB_NAME, "")]
        rows += [(a.code, "HWB", a.name, ICB_CODE) for a in AREAS]
        rows += [(code, "PROVIDER", name, ICB_CODE) for code, name in PROVIDERS]
        df = pl.DataFrame(rows, schema=["ORG_CODE", "ORG_TYPE", "ORG_NAME", "PARENT_CODE"],
                          orient="row")
        self._write("orgs_all.csv", self._encode(df, None), df.height)

    def write_population(self):
        g = self.g
        for year in g.years:
            pop = g.population[year]
            frames = []
            for i, area in enumerate(AREAS):
                frames.append(pl.DataFrame({
                    "AREA_CODE": [area.code] * 182, "YEAR": [year] * 182,
                    "SEX": [1] * 91 + [2] * 91, "AGE": list(range(91)) * 2,
                    "POPULATION": np.concatenate([pop[i, 0], pop[i, 1]]).tolist(),
                }))
            df = pl.concat(frames)
            self._write(f"population_ONS_{year}.csv", self._encode(df, None), df.height)

    def write_plans(self):
        g = self.g
        fys = sorted({(mi - 3) // 12 for mi in g.month_idx})     # FY starting April of year
        for i, area in enumerate(AREAS):
            for fy in fys:
                fy_months = [fy * 12 + 3 + j for j in range(12)]
                values = g.plan_values(i, fy_months)
                rows = [(area.code, metric, _period(mi), str(values[metric][j]))
                        for metric in METRIC_IDS for j, mi in enumerate(fy_months)]
                df = pl.DataFrame(rows, schema=["AREA_CODE", "METRIC_ID", "PERIOD", "PLAN_VALUE"],
                                  orient="row")
                self._write(f"plan_{area.code}_{fy}-{(fy + 1) % 100:02d}.csv",
                            self._encode(df, None), df.height)

    # ---- apc ------------------------------------------------------------------------------------
    def _spell_frame(self) -> pl.DataFrame:
        """One row per spell, every column as text (final state) plus helper columns."""
        g = self.g
        sp = g.spells
        yymm = _day_month(sp["adm"])
        prov = sp["prov"]
        variants = _code_variants()
        empty = len(variants)
        variants = variants.append(pl.Series([""], dtype=pl.String))
        style = sp["style"]

        def diag(idx):
            return variants.gather(pl.Series(np.where(idx >= 0, idx * 4 + style, empty)))

        def small(values, idx):
            """Gather text from a short list by index (fast, no numpy-to-text conversion)."""
            return pl.Series(list(values), dtype=pl.String).gather(pl.Series(idx))

        def codes(arr):
            uniq, inv = np.unique(arr, return_inverse=True)
            return small(uniq.tolist(), inv)

        df = pl.DataFrame({
            "_prov": prov, "_adm": sp["adm"], "_dis": sp["dis"], "_ready": sp["ready"],
            "_seq": sp["seq"], "_yy": (yymm // 12) % 100, "_mm": yymm % 12 + 1,
            "_nhs": sp["nhs"], "_nhs_missing": sp["nhs_missing"], "_age": sp["startage"],
        })
        pad = lambda col, n: pl.col(col).cast(pl.String).str.zfill(n)  # noqa: E731
        date = lambda col: pl.when(pl.col(col) >= 0).then(  # noqa: E731
            pl.col(col).cast(pl.Int32).cast(pl.Date).dt.to_string("%Y-%m-%d")).otherwise(pl.lit(""))
        df = df.with_columns(
            small([p for p, _ in PROVIDERS], prov).alias("PROCODE"),
            # Three local styles. None holds a run of exactly ten digits, which would look like
            # an NHS number to anyone scanning stored text.
            pl.when(pl.col("_prov") == 0)
            .then(pl.concat_str(pl.lit("R0A"), pad("_yy", 2), pad("_mm", 2), pl.lit("S"),
                                pad("_seq", 6)))
            .when(pl.col("_prov") == 1)
            .then(pl.concat_str(pl.lit("NCA"), pad("_yy", 2),
                                (pl.col("_mm") * 100_000 + pl.col("_seq")).cast(pl.String)
                                .str.zfill(7)))
            .otherwise(pl.concat_str(pl.lit("RWW"), pad("_yy", 2),
                                     (pl.col("_mm") * 100_000 + pl.col("_seq")).cast(pl.String)
                                     .str.zfill(7))).alias("PROVSPNO"),
            pl.when(pl.col("_nhs_missing")).then(pl.lit(""))
            .otherwise(pl.col("_nhs").cast(pl.String)).alias("NEWNHSNO"),
            pl.col("_age").cast(pl.String).alias("STARTAGE"),
            codes(sp["sexcode"]).alias("SEX"),
            small(g.residence_codes.tolist(), sp["res"]).alias("RESLADST_ONS"),
            g.gp_series.gather(pl.Series(sp["person"])).alias("GPPRAC"),
            date("_adm").alias("ADMIDATE"),
            codes(sp["meth"]).alias("ADMIMETH"), codes(sp["sorc"]).alias("ADMISORC"),
            codes(sp["cls"]).alias("CLASSPAT"), date("_dis").alias("DISDATE_F"),
            codes(sp["dismeth"]).alias("DISMETH_F"), codes(sp["disdest"]).alias("DISDEST_F"),
            date("_ready").alias("READY_F"),
            diag(sp["diag1"]).alias("DIAG_4_01"),
            *[diag(sp["sec"][:, j]).alias(f"DIAG_4_{j + 2:02d}") for j in range(_N_SEC)],
        )
        return df

    def _month_rows(self) -> pl.DataFrame:
        """One row per spell per month it was open in, in its state at the end of that month."""
        g = self.g
        sp = g.spells
        n_m = g.months
        first = np.maximum(_day_month(sp["adm"]) - g.start_mi, 0)
        last = np.minimum(_day_month(sp["dis"]) - g.start_mi, n_m - 1)
        count = np.where(last >= first, last - first + 1, 0)
        spell = np.repeat(np.arange(_size(sp)), count)
        offs = np.arange(len(spell)) - np.repeat(np.cumsum(count) - count, count)
        k = first[spell] + offs
        # spells are already ordered by provider, admission date and number
        order = np.lexsort((spell, k, sp["prov"][spell]))
        spell, k = spell[order], k[order]
        mend = _month_first_day(g.start_mi + k + 1) - 1
        frame = self._spell_frame()[spell]
        opened = pl.col("_dis") > pl.col("_mend")
        prov = sp["prov"][spell]
        frame = frame.with_columns(
            pl.Series("_k", k), pl.Series("_mend", mend),
            pl.Series("_om", list(_OPEN_DISMETH), dtype=pl.String).gather(pl.Series(prov)),
            pl.Series("_od", list(_OPEN_DISDEST), dtype=pl.String).gather(pl.Series(prov)))
        return frame.with_columns(
            pl.when(opened).then(pl.lit("")).otherwise(pl.col("DISDATE_F")).alias("DISDATE"),
            pl.when(opened).then(pl.col("_om")).otherwise(pl.col("DISMETH_F")).alias("DISMETH"),
            pl.when(opened).then(pl.col("_od")).otherwise(pl.col("DISDEST_F")).alias("DISDEST"),
            pl.when((pl.col("_ready") >= 0) & (pl.col("_ready") <= pl.col("_mend")))
            .then(pl.col("READY_F")).otherwise(pl.lit("")).alias("DISCHARGE_READY_DATE"),
        )

    def write_apc(self):
        g = self.g
        rows = self._month_rows()
        prov = rows["_prov"].to_numpy()
        k = rows["_k"].to_numpy()
        key = prov * 10_000 + k
        for p, (code, _) in enumerate(PROVIDERS):
            for m in range(g.months):
                lo = np.searchsorted(key, p * 10_000 + m, "left")
                hi = np.searchsorted(key, p * 10_000 + m, "right")
                part = rows.slice(lo, hi - lo)
                self._periodic("apc", code, m, part.select(APC_COLUMNS))

    def _damage(self, df: pl.DataFrame, k: int) -> pl.DataFrame:
        """The first submission of a month later resubmitted: a few rows wrong, a few missing."""
        rng = self.fault_rng
        mend = _period(self.g.start_mi + k)
        closed = np.flatnonzero(((df["DISDATE"] != "") & df["DISDATE"].str.starts_with(mend)
                                 & df["ADMIDATE"].str.starts_with(mend)).to_numpy())
        if len(closed) < 12:
            return df
        pick = rng.choice(closed, 12, replace=False)
        disdest = df["DISDEST"].to_numpy().copy()
        ready = df["DISCHARGE_READY_DATE"].to_numpy().copy()
        diag = df["DIAG_4_01"].to_numpy().copy()
        disdest[pick[:4]] = "99"
        ready[pick[4:7]] = ""
        diag[pick[7:9]] = "R69X"
        out = df.with_columns(pl.Series("DISDEST", disdest), pl.Series("DIAG_4_01", diag),
                              pl.Series("DISCHARGE_READY_DATE", ready))
        keep = np.ones(df.height, bool)
        keep[pick[9:]] = False          # not yet coded when first sent
        return out.filter(pl.Series(keep))

    # ---- councils -------------------------------------------------------------------------------
    def write_council(self):
        g = self.g
        r = g.reab
        lag = (0, 1)        # months after the 91st day before a council re-sends the row
        r_month = _day_month(r["dis"]) - g.start_mi
        status_month = _day_month(r["dis"] + 91) - g.start_mi
        c = g.care
        c_month = _day_month(c["day"]) - g.start_mi + c["late"].astype(np.int64)
        link_rng = np.random.default_rng(np.random.SeedSequence([self.seed, 3142]))
        for i, area in enumerate(AREAS):
            mine = r["area"] == i
            # rows sent with no NHS number (and no id of the council's own)
            blank_r = self.fault_rng.random(len(r["person"])) < 0.05
            # the rows added for linked care draw from a stream of their own, after the others
            blank_c = np.concatenate([self.fault_rng.random(g.care_drawn_first),
                                      link_rng.random(len(c["person"]) - g.care_drawn_first)]) < 0.10
            for m in range(g.months):
                first = mine & (r_month == m)
                resend = mine & (status_month + lag[i % 2] == m)
                rows = np.concatenate([np.flatnonzero(first), np.flatnonzero(resend)])
                status = np.concatenate([np.full(first.sum(), ""), r["status"][resend]])
                order = np.lexsort((r["person"][rows], r["dis"][rows]))
                rows, status = rows[order], status[order]
                nhs, pseudo = g.council_ids(i, r["person"][rows], m)
                reported = r["reported"][rows]
                df = pl.DataFrame({
                    "LA_CODE": [area.code] * len(rows),
                    "CLIENT_ID": g.client_ids(i, r["person"][rows]),
                    "NEWNHSNO": np.where(blank_r[rows], "", nhs),
                    "PSEUDO_ID": np.where(blank_r[rows], "", pseudo), "AGE": r["age"][rows].astype(str),
                    "HOSP_DISCHARGE_DATE": _dates(reported),
                    # the service starts 0-3 days after the discharge the council records
                    "SERVICE_START_DATE": _dates(np.clip(r["start"][rows], reported, reported + 3)),
                    "STATUS_91D": status,
                }, schema={cname: pl.String for cname in REABLEMENT_COLUMNS})
                self._periodic("reablement", area.code, m, df)

                rows = np.flatnonzero((c["area"] == i) & (c_month == m))
                rows = rows[np.lexsort((c["person"][rows], c["day"][rows]))]
                nhs, pseudo = g.council_ids(i, c["person"][rows], m)
                df = pl.DataFrame({
                    "LA_CODE": [area.code] * len(rows),
                    "CLIENT_ID": g.client_ids(i, c["person"][rows]),
                    "NEWNHSNO": np.where(blank_c[rows], "", nhs),
                    "PSEUDO_ID": np.where(blank_c[rows], "", pseudo), "AGE": c["age"][rows].astype(str),
                    "ADMISSION_DATE": _dates(c["day"][rows]), "SETTING": c["setting"][rows],
                    "PERMANENT": c["permanent"][rows], "FUNDING": c["funding"][rows],
                }, schema={cname: pl.String for cname in CAREHOME_COLUMNS})
                self._periodic("carehome", area.code, m, df)

    # ---- faults ---------------------------------------------------------------------------------
    def write_faults(self):
        """Faulty rows appended to a few good files, and whole files that must be rejected."""
        g = self.g
        rng = self.fault_rng
        n = g.months
        k1, k2 = min(1, n - 1), min(2, n - 1)
        p1, p2 = _period(g.start_mi + k1), _period(g.start_mi + k2)
        start = int(_month_first_day(g.start_mi + k1))
        end = int(_month_first_day(g.start_mi + k1 + 1)) - 1
        ooa = OUT_OF_AREA[0][0]

        # apc row faults, appended to R0A's file for month k1
        host = self.frames[("apc", "R0A", k1)]
        base = {c: "" for c in APC_COLUMNS}
        base.update(PROCODE="R0A", NEWNHSNO="9990000018", STARTAGE="72", SEX="2",
                    RESLADST_ONS=ooa, GPPRAC="P92001", ADMIDATE=_dates([start + 3])[0],
                    ADMIMETH="21", ADMISORC="19", CLASSPAT="1", DISDATE=_dates([start + 6])[0],
                    DISMETH="1", DISDEST="19", DISCHARGE_READY_DATE=_dates([start + 5])[0],
                    DIAG_4_01="J189", DIAG_4_02="I10X")
        yymm = p1[2:4] + p1[5:7]
        faults = [
            {"ADMIDATE": f"{p1[:4]}-02-30"},                          # bad date
            {"ADMIDATE": "not known"},
            {"DISDATE": f"{p1[:4]}-13-01"},
            {"ADMIDATE": _dates([end + 3])[0], "DISDATE": ""},       # admitted after period end
            {"DISDATE": _dates([start + 1])[0], "DISCHARGE_READY_DATE": ""},   # before ADMIDATE
            {"DISDATE": _dates([end + 2])[0]},                       # discharged after period end
            {"ADMIMETH": "2E"}, {"DISDEST": "9"}, {"SEX": "3"}, {"CLASSPAT": "7"},
            {"ADMISORC": "20"}, {"DISMETH": "X"},
            {"STARTAGE": "150"}, {"STARTAGE": "-1"}, {"STARTAGE": "7008"}, {"STARTAGE": "sixty"},
            {"ADMIDATE": _dates([start - 40])[0], "DISDATE": _dates([start - 10])[0],
             "DISCHARGE_READY_DATE": _dates([start - 12])[0]},       # not overlapping the period
            {"PROVSPNO": f"R0A{yymm}D00001"}, {"PROVSPNO": f"R0A{yymm}D00001",
                                               "DIAG_4_01": "I500"},  # duplicated key
            {"PROVSPNO": ""}, {"PROCODE": ""},                        # empty key
            {"PROCODE": "RM3"},                                       # not the file's org
            {"NEWNHSNO": "9990000017"}, {"NEWNHSNO": "1111111111"}, {"NEWNHSNO": "12345"},
            {"NEWNHSNO": "999000001A"},                               # invalid NHS numbers (load)
        ]
        rows = []
        for j, change in enumerate(faults):
            row = dict(base, PROVSPNO=f"R0A{yymm}F{j:05d}")
            row.update(change)
            rows.append(row)
        extra = pl.DataFrame(rows, schema={c: pl.String for c in APC_COLUMNS})
        mixed = self._interleave(host, extra, rng)
        self._replace(("apc", "R0A", k1), mixed)

        # ragged rows in RM3's file for month k1
        host = self.frames[("apc", "RM3", k1)]
        text = self._encode(host, None).decode()
        good = text.rstrip("\n").split("\n")
        sample = good[1].split(",") if len(good) > 1 else [""] * len(APC_COLUMNS)
        too_many = ",".join(sample + ["EXTRA", "FIELD"])
        too_few = ",".join(sample[:10])
        lines = good[:1] + good[1:3] + [too_many] + good[3:6] + [too_few] + good[6:]
        name = self.paths[("apc", "RM3", k1)].name
        self._write(name, ("\n".join(lines) + "\n").encode(), len(lines) - 1)

        # reablement and carehome row faults
        host = self.frames[("reablement", AREAS[0].code, k1)]
        base = dict(LA_CODE=AREAS[0].code, CLIENT_ID="MCR-990001", NEWNHSNO="9990000026",
                    AGE="81", HOSP_DISCHARGE_DATE=_dates([start + 4])[0],
                    SERVICE_START_DATE=_dates([start + 5])[0], STATUS_91D="")
        faults = [{"HOSP_DISCHARGE_DATE": f"{p1[:4]}-06-31"}, {"STATUS_91D": "AWAY"},
                  {"AGE": "abc"}, {"CLIENT_ID": ""}, {"LA_CODE": AREAS[1].code},
                  {"CLIENT_ID": "MCR-990900"}, {"CLIENT_ID": "MCR-990900"},
                  {"SERVICE_START_DATE": ""}, {"NEWNHSNO": "9990000027"}]
        rows = [{**base, "CLIENT_ID": f"MCR-99{j:04d}", **change}
                for j, change in enumerate(faults)]
        extra = pl.DataFrame(rows, schema={c: pl.String for c in REABLEMENT_COLUMNS})
        self._replace(("reablement", AREAS[0].code, k1), self._interleave(host, extra, rng))

        host = self.frames[("carehome", AREAS[1].code, k1)]
        base = dict(LA_CODE=AREAS[1].code, CLIENT_ID="TRF-990001", NEWNHSNO="9990000034",
                    AGE="84", ADMISSION_DATE=_dates([start + 4])[0], SETTING="RESIDENTIAL",
                    PERMANENT="Y", FUNDING="LA")
        faults = [{"SETTING": "HOSPITAL"}, {"PERMANENT": "Yes"}, {"FUNDING": "COUNCIL"},
                  {"ADMISSION_DATE": "2024/99/99"}, {"AGE": "abc"}, {"CLIENT_ID": ""},
                  {"LA_CODE": AREAS[0].code}, {"CLIENT_ID": "TRF-990900"},
                  {"CLIENT_ID": "TRF-990900"}]
        rows = [{**base, "CLIENT_ID": f"TRF-99{j:04d}", **change}
                for j, change in enumerate(faults)]
        extra = pl.DataFrame(rows, schema={c: pl.String for c in CAREHOME_COLUMNS})
        self._replace(("carehome", AREAS[1].code, k1), self._interleave(host, extra, rng))

        # whole files
        rww = self.frames[("apc", "RWW", k2)]
        df = rww.drop("STARTAGE")
        self._write(f"apc_RWW_{p2}_missing_column.csv", self._encode(df, None), df.height)
        reab = self.frames[("reablement", AREAS[1].code, k2)]
        df = reab.drop("NEWNHSNO", "PSEUDO_ID")
        self._write(f"reablement_{AREAS[1].code}_{p2}_no_person_column.csv",
                    self._encode(df, None), df.height)
        self._write(f"apc_RM3_{p2}_corrupt.csv.gz", rng.bytes(2048), 0)
        self._write(f"carehome_{AREAS[0].code}_{p2}_corrupt.parquet",
                    b"PAR1" + rng.bytes(1024), 0)
        r0a = self.frames[("apc", "R0A", k2)].head(50)
        self._write(f"apc_R0A_{p2.replace('-', '')}.csv", self._encode(r0a, None), r0a.height)
        self._write(f"admissions_R0A_{p2}.csv", self._encode(r0a.head(40), None),
                    min(40, r0a.height))
        self._write(f"apc_R0A_{p2[:4]}-13.csv", self._encode(r0a.head(30), None),
                    min(30, r0a.height))
        # the same bytes again under another name
        src = self.paths[("apc", "R0A", 0)]
        stem = src.name
        for ext in (".csv.gz", ".parquet", ".csv"):
            if stem.endswith(ext):
                stem = stem[: -len(ext)]
                break
        self._write(f"{stem}_copy{ext}", src.read_bytes(), self.rows[src.name])

    def _interleave(self, host: pl.DataFrame, extra: pl.DataFrame, rng) -> pl.DataFrame:
        """Insert the faulty rows at random places among the good ones."""
        total = host.height + extra.height
        pos = np.sort(rng.choice(total, extra.height, replace=False))
        is_extra = np.zeros(total, bool)
        is_extra[pos] = True
        order = np.empty(total, np.int64)
        order[~is_extra] = np.arange(host.height)
        order[is_extra] = host.height + np.arange(extra.height)
        return pl.concat([host, extra]).select(host.columns)[order]

    def _replace(self, key, df: pl.DataFrame):
        path = self.paths[key]
        variant = self.variants.get(key)
        self._write(path.name, self._encode(df, variant), df.height)
