/*
model: readmissions_30d
kind: metric
metric_id: readmissions_30d
title: Emergency readmissions within 30 days of discharge
sort_order: 5
unit: percent
higher_is_better: false
numerator_label: discharges followed by an emergency readmission within 30 days
denominator_label: discharges of linked people discharged alive
follow_up_days: 30
grain: area_code (HWB of residence at the index discharge), period_month
period_column: disdate
depends_on: dim_hwb, int_month_discharges, int_spells
definition: Index = a canonical spell discharged in the month (DISDATE in the month), not a death
  (DISMETH 4/5 or DISDEST 79: stg_apc.is_death) and with a person id (a valid NHS number or a
  PSEUDO_ID), by HWB of residence of the index spell; all ages, providers and admission methods.
  It counts in the numerator when another spell (a different PROCODE/PROVSPNO) of the same person
  id, at any provider, with any residence and age, was admitted with an emergency ADMIMETH
  (21-25, 2A-2D, 28; 2B transfers included, as the contract excludes transfers only where a
  metric says so) 0 to 29 days after the index DISDATE (same day = 0). An index counts once
  however many readmissions follow it. Numerator and denominator are index discharges. The month
  stays provisional until 30 days after its end have been loaded.
official_id: NHS Outcomes Framework 3b / CCG OIS 3.2 / Compendium I02040 (emergency readmissions
  within 30 days of discharge from hospital), simplified: provider spells not CIP spells, no
  specialty, cancer or obstetric exclusions, no standardisation
source: SUS/HES Admitted Patient Care (apc extracts), linked on the pseudonymised person id.
*/
with index_discharges as (
    select area_code, procode, provspno, person_id, disdate
    from int_month_discharges
    where not is_death  -- DISMETH 4/5 or DISDEST 79 (ref_discharge_method / ref_discharge_destination.is_death)
      and person_id is not null
),

emergency_spells as (
    select procode, provspno, person_id, admidate
    from int_spells
    where is_emergency  -- ref_admission_method.is_emergency
      and person_id is not null
      -- only admissions that can follow a discharge in the month (0-29 days after it)
      and admidate between $period_start and $period_end::date + 29
),

readmitted as (
    select distinct i.procode, i.provspno
    from index_discharges as i
    join emergency_spells as e
        on e.person_id = i.person_id
        and not (e.procode = i.procode and e.provspno = i.provspno)
        and e.admidate between i.disdate and i.disdate + 29  -- 0-29 days after the index discharge
),

flagged as (
    select
        i.area_code,
        r.procode is not null as is_readmitted
    from index_discharges as i
    left join readmitted as r on r.procode = i.procode and r.provspno = i.provspno
),

discharges as (
    select
        area_code,
        count(*) filter (where is_readmitted) as readmitted,
        count(*) as discharges
    from flagged
    group by area_code
)

select
    h.area_code,
    coalesce(d.readmitted, 0) as numerator,
    coalesce(d.discharges, 0) as denominator
from dim_hwb as h
left join discharges as d on d.area_code = h.area_code
