/*
model: every_area_present
kind: audit
severity: fail
depends_on: metric_areas, metric_catalog, dim_hwb, ref_england
description: Every HWB, every ICB and England has a cell for every metric in the month. A
  provider-level metric (rollup: provider) has no HWB cells, and ICB cells only for ICBs its
  providers belong to: it needs an England cell whenever it has a provider cell in the month.
*/
with expected as (
    select 'hwb' as area_type, area_code from dim_hwb
    union select 'icb', icb_code from dim_hwb where icb_code is not null
    union select 'england', code from ref_england
)

select e.area_type, e.area_code, k.metric_id
from expected as e
cross join metric_catalog as k
anti join (select * from metric_areas where period_month = $period_start) as c
    on c.area_type = e.area_type and c.area_code = e.area_code and c.metric_id = k.metric_id
where coalesce(k.rollup, 'hwb') <> 'provider'
   or (e.area_type = 'england' and k.metric_id in (
       select metric_id from metric_areas where period_month = $period_start and area_type = 'provider'))
