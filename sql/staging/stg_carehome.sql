/*
model: stg_carehome
kind: view
grain: area_code, client_key, admission_date
depends_on: raw_carehome
description: Care home admissions; a later file's row for the same person and date replaces the
  earlier one.
  "Later file" is read as the file of the later period, then the later arrival, as for
  apc spells: the result does not depend on the order files were dropped in.
*/
select
    upper(la_code) as area_code,
    client_key,
    person_id,
    age,
    admission_date,
    setting,
    permanent,
    funding
from raw_carehome
-- the later file's row replaces the earlier one (extracts section 2)
qualify row_number() over (
    partition by upper(la_code), client_key, admission_date order by period desc, file_id desc
) = 1
