/*
model: stg_population
kind: view
grain: area_code, year, sex, age
depends_on: raw_population
description: ONS mid-year resident population; for a key in several files the latest file wins.
*/
with ranked as (
    select
        upper(area_code) as area_code,
        year,
        sex,
        age,
        population,
        row_number() over (partition by upper(area_code), year, sex, age order by file_id desc) as recency
    from raw_population
)

select area_code, year, sex, age, population
from ranked
where recency = 1
