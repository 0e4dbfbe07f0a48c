/*
model: carehome_after_discharge_65plus
kind: metric
metric_id: carehome_after_discharge_65plus
title: Older people admitted permanently to a care home within 30 days of leaving hospital (linked)
sort_order: 61
unit: percent
higher_is_better: false
numerator_label: discharges of people aged 65+ followed by a permanent care home admission within 30 days
denominator_label: discharges of linked people aged 65+ discharged alive
follow_up_days: 30
reads_ahead_days: carehome 30
grain: area_code (HWB of residence of the discharged spell), period_month
period_column: disdate
depends_on: dim_hwb, int_month_discharges, stg_carehome, ref_yes_no
definition: Denominator = canonical spells discharged in the month (DISDATE in the month), not a
  death (DISMETH 4/5 or DISDEST 79: stg_apc.is_death), with a person id and STARTAGE 65 or over
  (7001-7007 = 0), by HWB of residence of the spell. A discharge counts in the numerator when a
  current carehome row (the latest file's row for its LA_CODE, CLIENT_ID and ADMISSION_DATE) of
  the same person id with PERMANENT Y (ref_yes_no.is_yes) has ADMISSION_DATE 0 to 30 days after
  DISDATE (same day = 0), whatever its AGE, SETTING, FUNDING and LA_CODE. Short-term and respite
  placements (PERMANENT N) do not count. A discharge counts once however many admissions follow
  it; each discharge is tested on its own, so one admission can make two discharges of the same
  person count. Decisions where the contract is silent: every admission method, provider,
  patient class and discharge destination counts (DISDEST is not read: the council's admission
  is the evidence, whatever the hospital recorded); a care home admission before the discharge
  does not count; a carehome row without a person id (NEWNHSNO / PSEUDO_ID are optional there)
  links to nothing; PSEUDO_IDs link only to the same id; residence unknown or outside the HWBs in
  orgs counts in no area. The month stays provisional until 30 days after its end have been
  loaded, and while any provider's apc file or the area's council carehome file for the month is
  missing.
official_id: ASCOF 2A (2C from 2023-24): older people's long-term needs met by admission to care
  homes; NHS discharge pathway 3 (discharge to a care home). Neither follows a person from
  hospital into a placement; this does, through the pseudonymised person id
source: SUS/HES Admitted Patient Care (apc) linked to local authority care home admission
  extracts (carehome) on the pseudonymised person id. Code list ref_yes_no.csv.
*/
with index_discharges as (
    select area_code, procode, provspno, person_id, disdate
    from int_month_discharges
    where not is_death  -- DISMETH 4/5 or DISDEST 79 (stg_apc.is_death)
      and person_id is not null
      and age >= 65  -- STARTAGE, with 7001-7007 read as 0
),

permanent_codes as (
    select code from ref_yes_no
    where is_yes = 'true'  -- Y: long-term / permanent placement
),

permanent_admissions as (
    -- current rows only (stg_carehome), once per person and date; only dates that can follow a
    -- discharge in the month (0-30 days after it)
    select distinct c.person_id, c.admission_date
    from stg_carehome as c
    semi join permanent_codes as y on y.code = c.permanent
    where c.person_id is not null
      and c.admission_date between $period_start and $period_end::date + 30
),

followed as (
    select distinct i.procode, i.provspno
    from index_discharges as i
    join permanent_admissions as a
        on a.person_id = i.person_id
        and a.admission_date between i.disdate and i.disdate + 30  -- 0-30 days after discharge
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
