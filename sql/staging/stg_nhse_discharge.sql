/*
model: stg_nhse_discharge
kind: view
grain: org_code, date
depends_on: raw_nhse_discharge
description: NHS England's acute discharge sitrep, one row per trust and day. The criteria-to-reside
  and discharges layouts arrive as separate files, and a longer re-download overlaps an earlier
  one, so each measure of a (trust, day) is taken from the latest loaded file that has it.
*/
select
    upper(trim(org_code)) as org_code,
    date,
    date_trunc('month', date)::date as period_month,
    arg_max(nctr, file_id) filter (where nctr is not null) as nctr,
    arg_max(discharges, file_id) filter (where discharges is not null) as discharges
from raw_nhse_discharge
group by upper(trim(org_code)), date
