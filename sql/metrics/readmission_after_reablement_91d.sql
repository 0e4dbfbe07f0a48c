/*
model: readmission_after_reablement_91d
kind: metric
metric_id: readmission_after_reablement_91d
title: Older people back in hospital within 91 days of starting reablement (linked)
sort_order: 62
unit: percent
higher_is_better: false
numerator_label: people aged 65+ in reablement with an emergency admission 1-91 days after their hospital discharge
denominator_label: people aged 65+ discharged from hospital into reablement, with a person id
follow_up_days: 91
reads_ahead_days: apc 91
grain: area_code (the reablement row's LA_CODE, which is the HWB), period_month
period_column: hosp_discharge_date
depends_on: dim_hwb, stg_reablement, int_spells
definition: Denominator = current reablement rows (the latest file's row for each LA_CODE,
  CLIENT_ID and HOSP_DISCHARGE_DATE: one person under two CLIENT_IDs is two rows) with AGE 65 or
  over, HOSP_DISCHARGE_DATE in the month and a person id, whatever their STATUS_91D (empty
  included), by LA_CODE. A row counts in the numerator when a canonical spell of the same person
  id, at any provider, with any residence and age, was admitted with an emergency ADMIMETH (21-25,
  2A-2D, 28; 2B transfers included, as for readmissions) 1 to 91 days after HOSP_DISCHARGE_DATE.
  An admission on the discharge day itself (day 0) does not count: it cannot be told from the
  spell the person was being discharged from. A row counts once however many admissions follow
  it; each row is tested on its own, so one admission can make two rows count. Decisions where
  the contract is silent: STATUS_91D is not read (a council's HOSPITAL status is its own
  account; the admission is read from hospital data); SERVICE_START_DATE is not read; a row whose
  LA_CODE is not a HWB in orgs counts in no area; PSEUDO_IDs link only to the same id. The month
  stays provisional until 91 days after its end have been loaded, and while any provider's apc
  file or the council's reablement file for the month is missing.
official_id: ASCOF 2B(1) / NHS Outcomes Framework 3.6.i read the other way: the council's
  91-day outcome (still at home) is replaced by an emergency readmission found in hospital data
  through the pseudonymised person id
source: Local authority reablement extracts (reablement) linked to SUS/HES Admitted Patient Care
  (apc) on the pseudonymised person id.
*/
with reablement_rows as (
    select area_code, client_key, hosp_discharge_date, person_id
    from stg_reablement  -- current rows: one per LA_CODE, CLIENT_ID and HOSP_DISCHARGE_DATE
    where hosp_discharge_date between $period_start and $period_end
      and age >= 65  -- aged 65 or over at hospital discharge
      and person_id is not null
),

emergency_admissions as (
    -- canonical spells; only admissions that can follow a discharge in the month (1-91 days)
    select distinct person_id, admidate
    from int_spells
    where is_emergency  -- ref_admission_method.is_emergency
      and person_id is not null
      and admidate between $period_start::date + 1 and $period_end::date + 91
),

readmitted as (
    select distinct r.area_code, r.client_key, r.hosp_discharge_date
    from reablement_rows as r
    join emergency_admissions as e
        on e.person_id = r.person_id
        and e.admidate between r.hosp_discharge_date + 1 and r.hosp_discharge_date + 91
),

outcomes as (
    select
        r.area_code,
        count(x.client_key) as readmitted,
        count(*) as in_reablement
    from reablement_rows as r
    left join readmitted as x
        on x.area_code = r.area_code and x.client_key = r.client_key
        and x.hosp_discharge_date = r.hosp_discharge_date
    group by r.area_code
)

select
    h.area_code,
    coalesce(o.readmitted, 0) as numerator,
    coalesce(o.in_reablement, 0) as denominator
from dim_hwb as h
left join outcomes as o on o.area_code = h.area_code
