/*
model: stg_population
kind: view
grain: area_code, year, sex, age
depends_on: raw_population, stg_ons_population
description: ONS mid-year resident population; for a key in several files the latest file wins.
  The contract's `population` files come first; for an (area, year) that no `population` file
  covers, ONS's published table (stg_ons_population, all persons as sex 0) fills in. An (area,
  year) is taken from one source only, so it is never counted twice.
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
),

contract as (
    select area_code, year, sex, age, population
    from ranked
    where recency = 1
)

select area_code, year, sex, age, population
from contract

union all

select o.area_code, o.year, o.sex, o.age, o.population
from stg_ons_population as o
anti join (select distinct area_code, year from contract) as c
    on c.area_code = o.area_code and c.year = o.year
