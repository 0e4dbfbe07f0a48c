/*
model: int_spells
kind: table
grain: procode, provspno
incremental_key: procode, provspno
depends_on: raw_apc, stg_apc
description: One row per hospital provider spell in its canonical state: the row from the latest
  period's file (a spell is re-sent every month while it is open; a resubmission has already
  replaced its file's rows). Refreshed by key: only spells in files loaded or replaced since
  the last build are recomputed. Stored in admission date order, so that a month's admissions
  and discharges (int_month_*) are read from the few row groups that hold them.
*/
with replaced as (
    -- rows of a spell that a later period's row replaces (or, within one period, a later
    -- submission); found on the keys alone, so only the rows that stay are classified
    select file_id, procode, provspno
    from raw_apc
    qualify row_number() over (partition by procode, provspno order by period desc, file_id desc) > 1
)

select s.*
from stg_apc as s
anti join replaced as r using (file_id, procode, provspno)
order by s.admidate
