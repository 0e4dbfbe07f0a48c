/*
model: stg_nhse_ae
kind: view
grain: period, org_code
depends_on: raw_nhse_ae
description: NHS England's monthly A&E return (MSitAE), one row per provider and month, with the
  totals the A&E metrics use. The published TOTAL row is not here: the loader checks it against
  the provider rows (published_checks). A count published as '' or '-' is NULL in raw_nhse_ae and
  counts as 0 in the sums, as in NHS England's TOTAL row; `four_hours_reported_*` is false where a
  department type has attendances but no over-4-hours count, so the 4-hour metrics leave that
  provider out rather than count its patients as seen within 4 hours. parent_code is the file's
  Parent Org (an NHS England region). For a provider and month in several loaded files (a
  re-download under another name), the latest file wins. Booked appointments were first published
  in August 2020: files from 2017-18 to July 2020 have no booked columns, so their booked counts
  are NULL in raw_nhse_ae and `attendances_booked` is NULL for those months (absent, not zero);
  their totals are the attendance columns they published.
*/
with ranked as (
    select
        *,
        row_number() over (partition by upper(trim(org_code)), period order by file_id desc) as recency
    from raw_nhse_ae
)

select
    file_id,
    period,
    upper(trim(org_code)) as org_code,
    upper(trim(parent_org)) as parent_code,
    org_name,
    -- attendances: unplanned and booked, type 1 (major A&E), type 2 (single specialty), other (types 3-4)
    coalesce(att_type1, 0) + coalesce(att_type2, 0) + coalesce(att_other, 0)
    + coalesce(att_booked_type1, 0) + coalesce(att_booked_type2, 0) + coalesce(att_booked_other, 0)
        as attendances_all,
    coalesce(over4h_type1, 0) + coalesce(over4h_type2, 0) + coalesce(over4h_other, 0)
    + coalesce(over4h_booked_type1, 0) + coalesce(over4h_booked_type2, 0) + coalesce(over4h_booked_other, 0)
        as over_4h_all,
    -- NULL where the file's layout has no booked columns (before August 2020)
    case when coalesce(att_booked_type1, att_booked_type2, att_booked_other) is not null
        then coalesce(att_booked_type1, 0) + coalesce(att_booked_type2, 0) + coalesce(att_booked_other, 0)
    end as attendances_booked,
    coalesce(att_type1, 0) + coalesce(att_booked_type1, 0) as attendances_type1,
    coalesce(over4h_type1, 0) + coalesce(over4h_booked_type1, 0) as over_4h_type1,
    (coalesce(att_type1, 0) = 0 or over4h_type1 is not null)
    and (coalesce(att_booked_type1, 0) = 0 or over4h_booked_type1 is not null) as four_hours_reported_type1,
    (coalesce(att_type1, 0) = 0 or over4h_type1 is not null)
    and (coalesce(att_type2, 0) = 0 or over4h_type2 is not null)
    and (coalesce(att_other, 0) = 0 or over4h_other is not null)
    and (coalesce(att_booked_type1, 0) = 0 or over4h_booked_type1 is not null)
    and (coalesce(att_booked_type2, 0) = 0 or over4h_booked_type2 is not null)
    and (coalesce(att_booked_other, 0) = 0 or over4h_booked_other is not null) as four_hours_reported_all,
    -- emergency admissions via A&E (all department types), and all emergency admissions
    coalesce(emadm_ae_type1, 0) + coalesce(emadm_ae_type2, 0) + coalesce(emadm_ae_other, 0)
        as emergency_admissions_via_ae,
    coalesce(emadm_ae_type1, 0) + coalesce(emadm_ae_type2, 0) + coalesce(emadm_ae_other, 0)
    + coalesce(emadm_other, 0) as emergency_admissions_all,
    -- decision to admit to admission ("trolley waits")
    coalesce(dta_4_12h, 0) as dta_4_12h,
    coalesce(dta_12h, 0) as dta_12h
from ranked
where recency = 1
