/*
model: stg_reablement
kind: view
grain: area_code, client_key, hosp_discharge_date
depends_on: raw_reablement
description: Reablement rows; a later file's row for the same person and discharge date replaces
  the earlier one (STATUS_91D fills in once 91 days have passed).
  "Later file" is read as the file of the later period, then the later arrival, as for
  apc spells: the result does not depend on the order files were dropped in.
*/
select
    upper(la_code) as area_code,
    client_key,
    person_id,
    age,
    hosp_discharge_date,
    service_start_date,
    status_91d
from raw_reablement
-- the later file's row replaces the earlier one (extracts section 2)
qualify row_number() over (
    partition by upper(la_code), client_key, hosp_discharge_date order by period desc, file_id desc
) = 1
