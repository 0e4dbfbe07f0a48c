/*
model: data_quality
kind: view
grain: period_month, area_code, measure
depends_on: int_spells, dim_hwb, files
description: Data-quality counts for the report: spells admitted in the month whose residence is
  unknown (X99999999) or outside the HWBs in orgs (they count in no area's metrics), by provider;
  and NHS numbers that failed the modulus-11 check (loaded with no person id), by sending org.
*/
select
    date_trunc('month', s.admidate)::date as period_month,
    s.procode as area_code,
    case when s.area_code = 'X99999999' then 'unknown_residence_spells'  -- X99999999: residence unknown
         else 'out_of_area_spells' end as measure,
    count(*) as value
from int_spells as s
where s.area_code = 'X99999999' or s.area_code not in (select area_code from dim_hwb)
group by all

union all

select
    strptime(f.period || '-01', '%Y-%m-%d')::date as period_month,
    f.org_code as area_code,
    'invalid_nhs_numbers' as measure,
    f.invalid_nhs_numbers as value
from files as f
where f.status = 'loaded' and f.period is not null and f.invalid_nhs_numbers > 0
