"""Recognise and parse files published by NHS England and ONS, dropped into the landing folder unchanged.

A published file keeps the name it was downloaded with, so nothing here looks at the name to decide
what a file is: `detect_published` reads the header row (the first of the first few records that
matches a known layout; title lines above it are skipped) and `read_published` reads the month
from the content. The one exception is the year of an ONS mid-year estimate, which the ONS
"MYE2" single-year-of-age table does not carry in its rows (see `_ons_year`).

Layouts recognised (header names compared case-, space- and punctuation-insensitively):

* `nhse_ae` — NHS England "A&E Attendances and Emergency Admissions" monthly provider CSV:
  `Period, Org Code, Parent Org, Org name`, then the counts, one row per provider and a total
  row (England as published). Period strings look like `MSitAE-MARCH-2026`. Every generation
  reads alike, its columns mapped by header wording, never by position or count: 2017-18 to
  March 2020 (16 columns, "Number of A&E attendances Type 1"), April to July 2020 (16, "A&E
  attendances Type 1"), August 2020 on (22, booked appointments added). A count a layout lacks
  is None on every row, never 0.
* `nhse_discharge` — NHS England acute discharge sitrep by trust and day (the layouts kept by the
  healthyr package): `nhs_trust22_code, date` and `do_not_meet_criteria_to_reside` and/or
  `discharged_total` (with `discharged_by_1700`, `discharged_between_1701_2359` up to May 2023).
* `ons_population` — ONS mid-year estimates "MYE2" by area and single year of age, wide:
  `Code, Name, Geography, All ages, 0 … 89, 90+` with thousands separators inside quotes.

Nothing here raises on a damaged file: `detect_published` answers None, `read_published` raises
FileRejected naming the file (its name, never its folder) and the cause in plain words.

Every data record after the header is accounted for: `rows_in = rows_loaded + len(quarantined)
+ check_rows` (`rows_loaded` counts input records; for ONS one record becomes 91 rows, one per age).
"""

from flows.ingest.published.common import DATASETS, PUBLISHERS, PublishedFile
from flows.ingest.published.sniffing import data_records, detect_published, read_published

__all__ = ["PublishedFile", "detect_published", "read_published", "data_records", "DATASETS",
           "PUBLISHERS"]
