/*
model: reablement_after_discharge_65plus
kind: metric
metric_id: reablement_after_discharge_65plus
title: Older people who got reablement after leaving hospital (linked)
sort_order: 60
unit: percent
higher_is_better: true
numerator_label: discharges of people aged 65+ followed by reablement from the day of discharge or the day after
denominator_label: discharges of linked people aged 65+ discharged alive
follow_up_days: 91
reads_ahead_days: reablement 1
grain: area_code (HWB of residence of the discharged spell), period_month
period_column: disdate
depends_on: dim_hwb, int_month_discharges, stg_reablement
definition: Denominator = canonical spells discharged in the month (DISDATE in the month), not a
  death (DISMETH 4/5 or DISDEST 79: stg_apc.is_death), with a person id and STARTAGE 65 or over
  (7001-7007 = 0), by HWB of residence of the spell. A discharge counts in the numerator when a
  current reablement row (the latest file's row for its LA_CODE, CLIENT_ID and
  HOSP_DISCHARGE_DATE) of the same person id has HOSP_DISCHARGE_DATE equal to DISDATE or the
  day after, whatever the row's AGE, LA_CODE and STATUS_91D (empty included). A discharge counts
  once however many rows match; each discharge is tested on its own, so one row can make two
  discharges of the same person count. Decisions where the contract is silent: every admission
  method, provider, patient class (day cases too) and discharge destination counts, as for the
  other discharge metrics (a transfer to another hospital is a discharge of its spell);
  SERVICE_START_DATE is not read (the row is the council's record that the discharge was into
  reablement); a council row without a person id, and an index spell without one, link to
  nothing; PSEUDO_IDs link only to the same id; residence unknown or outside the HWBs in orgs
  counts in no area. The month stays provisional until 91 days after its end have been loaded
  (the contract's window, the time councils take to report), and while any provider's apc file
  or the area's council reablement file for the month is missing.
official_id: ASCOF 2B(2): proportion of older people (65+) who received reablement or
  rehabilitation after discharge from hospital (there a council count divided by a hospital
  count, unlinked; here each discharge is followed through the pseudonymised person id)
source: SUS/HES Admitted Patient Care (apc) linked to local authority reablement extracts
  (reablement) on the pseudonymised person id.
*/
with index_discharges as (
    select area_code, procode, provspno, person_id, disdate
    from int_month_discharges
    where not is_death  -- DISMETH 4/5 or DISDEST 79 (stg_apc.is_death)
      and person_id is not null
      and age >= 65  -- STARTAGE, with 7001-7007 read as 0
),

reablement_starts as (
    -- current rows only (stg_reablement), once per person and discharge date; only dates that
    -- can follow a discharge in the month (the day of discharge or the day after)
    select distinct person_id, hosp_discharge_date
    from stg_reablement
    where person_id is not null
      and hosp_discharge_date between $period_start and $period_end::date + 1
),

followed as (
    select distinct i.procode, i.provspno
    from index_discharges as i
    join reablement_starts as r
        on r.person_id = i.person_id
        and r.hosp_discharge_date between i.disdate and i.disdate + 1  -- same day or the day after
),

discharges as (
    select
        i.area_code,
        count(f.procode) as followed,
        count(*) as discharges
    from index_discharges as i
    left join followed as f on f.procode = i.procode and f.provspno = i.provspno
    group by i.area_code
)

select
    h.area_code,
    coalesce(d.followed, 0) as numerator,
    coalesce(d.discharges, 0) as denominator
from dim_hwb as h
left join discharges as d on d.area_code = h.area_code
