/*
model: linkage_rate
kind: view
grain: period_month, la_code, dataset
depends_on: stg_reablement, stg_carehome, int_spells
description: The linkage rate of each council (extracts 3a): of its current reablement and
  carehome rows that carry a person id, the share whose person id is on at least one canonical
  hospital spell. A row "matches" when any canonical spell (int_spells: any provider, admission
  or discharge date, residence, age or admission method) has the same person id: the rate says
  whether a council's ids can be joined to hospital data at all, not whether the row followed a
  discharge (the linked metrics test that). A council sending PSEUDO_IDs of its own links to
  nothing and shows 0%. By the month of the row's date (HOSP_DISCHARGE_DATE, ADMISSION_DATE), as
  the council's metrics count it; rows with no person id are counted apart (rows_without_person_id).
*/
with council_rows as (
    select 'reablement' as dataset, area_code as la_code,
           date_trunc('month', hosp_discharge_date)::date as period_month, person_id
    from stg_reablement
    union all
    select 'carehome', area_code, date_trunc('month', admission_date)::date, person_id
    from stg_carehome
),

council_people as (
    select distinct person_id from council_rows where person_id is not null
),

hospital_people as (
    -- the councils' people found among the spells: the hash table is built on the few council
    -- ids and the spells only probe it, rather than every hospital patient being listed
    select distinct s.person_id
    from int_spells as s
    semi join council_people as c on c.person_id = s.person_id
)

select
    r.period_month,
    r.la_code,
    r.dataset,
    count(*) as council_rows,
    count(*) filter (where r.person_id is null) as rows_without_person_id,
    count(r.person_id) as rows_with_person_id,
    count(h.person_id) as rows_linked,
    100.0 * count(h.person_id) / nullif(count(r.person_id), 0) as linkage_rate
from council_rows as r
left join hospital_people as h on h.person_id = r.person_id
group by all
