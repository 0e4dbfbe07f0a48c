/*
model: stg_ons_population
kind: view
grain: area_code, year, sex, age
depends_on: raw_ons_population
description: ONS mid-year estimates loaded from the published MYE2 table (any file name), by area
  (every geography ONS lists: countries, regions, counties, districts, unitary authorities),
  mid-year and single year of age (90 = 90 and over). For a key in several files the latest file
  wins. ONS publishes persons, males and females tables: a persons table (loaded with sex NULL,
  given here as sex 0, all persons) is used where one is loaded for the (area, year); otherwise
  males and females, and only when both are loaded, so a population is never counted twice nor
  from one sex alone.
*/
with ranked as (
    select
        upper(trim(area_code)) as area_code,
        year,
        sex,
        age,
        population,
        row_number() over (partition by upper(trim(area_code)), year, sex, age order by file_id desc) as recency
    from raw_ons_population
),

tables as (
    select
        area_code,
        year,
        bool_or(sex is null) as has_persons,
        bool_or(sex = '1') and bool_or(sex = '2') as has_both_sexes
    from ranked
    group by area_code, year
)

select
    r.area_code,
    r.year,
    coalesce(r.sex, '0') as sex,  -- 0: all persons (ONS's code in its Nomis tables), 1 males, 2 females
    r.age,
    r.population
from ranked as r
join tables as t on t.area_code = r.area_code and t.year = r.year
where r.recency = 1
  and ((t.has_persons and r.sex is null)
    or (not t.has_persons and t.has_both_sexes and r.sex in ('1', '2')))
