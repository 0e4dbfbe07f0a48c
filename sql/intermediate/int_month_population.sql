/*
model: int_month_population
kind: month
grain: area_code
period_column: $period_start
depends_on: stg_population
description: Each area's population for the month, all ages and 65+, from the latest mid-year
  estimate at or before the month's year.
*/
with latest_year as (
    select area_code, max(year) as year
    from stg_population
    where year <= year($period_start::date)
    group by area_code
)

select
    p.area_code,
    sum(p.population) as population_all,
    sum(p.population) filter (where p.age >= 65) as population_65plus
from stg_population as p
join latest_year as y on y.area_code = p.area_code and y.year = p.year
group by p.area_code
