/*
model: avoidable_admissions
kind: metric
metric_id: avoidable_admissions
title: Avoidable admissions (chronic ambulatory care sensitive conditions)
sort_order: 3
unit: per_100k
higher_is_better: false
numerator_label: avoidable emergency admissions
denominator_label: residents (all ages)
unit_cost: 1613
grain: area_code (HWB of residence), period_month
period_column: admidate
depends_on: dim_hwb, int_month_admissions, int_month_population, ref_icd10_chronic_acsc
definition: Hospital provider spells admitted in the month with an emergency admission method,
  excluding transfers (ADMIMETH 2B, 81: ref_admission_method.is_transfer), all ages, whose primary
  diagnosis (DIAG_4_01, compared after removing dots and trailing X/- filler and upper-casing)
  starts with a chronic ambulatory care sensitive condition code in ref_icd10_chronic_acsc; a
  code with requires_secondary (J20 acute bronchitis) counts only when a secondary diagnosis
  (DIAG_4_02..20) starts with one of the listed codes (J41-J44, J47). Crude rate per 100,000
  residents of all ages (no age-sex standardisation), by HWB of residence. Each spell counts once.
official_id: NHS Outcomes Framework 2.3.i / CCG OIS 2.6 / IAP00068 (unplanned hospitalisation for
  chronic ambulatory care sensitive conditions); BCF 2021-25 avoidable admissions; OHID
  Fingertips 2521
source: SUS/HES Admitted Patient Care (apc extracts); ONS mid-year population estimates. Code
  list sql/reference/ref_icd10_chronic_acsc.csv (domain reference s1.3.2). The official figure
  is indirectly standardised; this one is crude, as the contract says. Unit cost £1,613 per
  admission = NAO 2015-16 (£171m / 106,000 planned avoided admissions).
*/
with candidates as (
    select area_code, procode, provspno, primary_diagnosis, secondary_diagnoses
    from int_month_admissions
    where is_emergency  -- ref_admission_method.is_emergency
      and not is_transfer  -- ref_admission_method.is_transfer: 2B and 81 excluded
),

acsc_codes as (
    select
        upper(trim(code_prefix)) as code_prefix,
        nullif(trim(requires_secondary), '') as requires_secondary
    from ref_icd10_chronic_acsc
),

required_secondary_codes as (
    select code_prefix, upper(trim(unnest(string_split(requires_secondary, '|')))) as secondary_prefix
    from acsc_codes
    where requires_secondary is not null
),

primary_matches as (
    select c.area_code, c.procode, c.provspno, k.code_prefix, k.requires_secondary
    from candidates as c
    join acsc_codes as k on starts_with(c.primary_diagnosis, k.code_prefix)
),

secondary_codes as (
    select procode, provspno, unnest(secondary_diagnoses) as code
    from candidates
),

secondary_satisfied as (
    select distinct m.procode, m.provspno, m.code_prefix
    from primary_matches as m
    join required_secondary_codes as r on r.code_prefix = m.code_prefix
    join secondary_codes as s
        on s.procode = m.procode and s.provspno = m.provspno and starts_with(s.code, r.secondary_prefix)
),

avoidable as (
    select distinct m.area_code, m.procode, m.provspno
    from primary_matches as m
    left join secondary_satisfied as s
        on s.procode = m.procode and s.provspno = m.provspno and s.code_prefix = m.code_prefix
    where m.requires_secondary is null or s.procode is not null
),

admissions as (
    select area_code, count(*) as admissions
    from avoidable
    group by area_code
)

select
    h.area_code,
    coalesce(a.admissions, 0) as numerator,
    p.population_all as denominator
from dim_hwb as h
left join admissions as a on a.area_code = h.area_code
left join int_month_population as p on p.area_code = h.area_code
