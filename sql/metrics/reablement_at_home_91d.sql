/*
model: reablement_at_home_91d
kind: metric
metric_id: reablement_at_home_91d
title: Older people at home 91 days after discharge into reablement
sort_order: 12
unit: percent
higher_is_better: true
numerator_label: people aged 65+ at home 91 days after discharge into reablement
denominator_label: people aged 65+ discharged into reablement with a 91-day status
follow_up_days: 91
grain: area_code (local authority = HWB), period_month
period_column: hosp_discharge_date
depends_on: dim_hwb, stg_reablement, ref_reablement_status
definition: reablement rows (a later file's row for the same LA, client and discharge date
  replacing the earlier one) of people aged 65 or over (AGE >= 65) discharged from hospital in the
  month (HOSP_DISCHARGE_DATE in the month) that have a STATUS_91D, whatever its value (HOME,
  CARE_HOME, HOSPITAL, DIED and UNKNOWN all count in the denominator); the numerator is those
  with STATUS_91D HOME (ref_reablement_status.is_home). Rows with no status yet (91 days not
  passed) count in neither and keep the month provisional. By the reporting local authority
  (LA_CODE, which is the HWB).
official_id: ASCOF 2B(1) / NHS Outcomes Framework 3.6.i: proportion of older people (65+) still
  at home 91 days after discharge from hospital into reablement/rehabilitation services; BCF
  effectiveness of reablement (monthly cohorts rather than the October-December window)
source: Local authority reablement extracts (reablement), SALT STS004-style. Code list
  ref_reablement_status.csv.
*/
with cohort as (
    select area_code, status_91d
    from stg_reablement
    where hosp_discharge_date between $period_start and $period_end
      and age >= 65  -- aged 65 or over at hospital discharge
      and status_91d is not null  -- 91 days passed: any status counts, DIED and UNKNOWN included
),

statuses as (
    select code, is_home = 'true' as is_home from ref_reablement_status  -- HOME is the only is_home status
),

outcomes as (
    select
        c.area_code,
        count(*) filter (where s.is_home) as at_home,  -- HOME (ref_reablement_status.is_home)
        count(*) as with_status
    from cohort as c
    left join statuses as s on s.code = upper(c.status_91d)
    group by c.area_code
)

select
    h.area_code,
    coalesce(o.at_home, 0) as numerator,
    coalesce(o.with_status, 0) as denominator
from dim_hwb as h
left join outcomes as o on o.area_code = h.area_code
