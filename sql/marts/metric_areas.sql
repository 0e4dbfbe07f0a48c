/*
model: metric_areas
kind: view
grain: period_month, area_type, area_code, metric_id
depends_on: metric_cells, metric_catalog, ref_units, dim_hwb, stg_orgs, ref_england
description: Every metric's figure in every area: the cells the metrics computed (metric_cells)
  rolled up, and each figure's value in its unit (ref_units). A metric counted by HWB of
  residence: its HWB cells, each ICB the sum of its HWBs in orgs, England the sum of every HWB; a
  rate is never computed from a partial population (one HWB without a denominator leaves the
  ICB's and England's denominator NULL). A provider-level measure (metric_catalog.rollup
  provider): its provider cells, each ICB the sum of its providers (the provider's ICB in orgs,
  else the ICB its file gives) for the ICBs orgs lists that have HWBs, so every area has every
  contract metric, and England the sum of every provider; its denominator is summed, or with
  `denominator_rollup: max` the largest of its providers' (e.g. days with data).
  value = scale x numerator / denominator (NULL when the denominator is 0 or NULL), or for a
  unit without a denominator (count) scale x numerator (extracts contract s3).
*/
with hwb as (
    select c.period_month, c.metric_id, c.area_code, h.icb_code, c.numerator, c.denominator
    from metric_cells as c
    left join dim_hwb as h using (area_code)
    where c.area_type = 'hwb'
),

by_hwb as (
    select period_month, 'hwb' as area_type, area_code, metric_id, numerator, denominator
    from hwb
    union all
    select period_month, 'icb', icb_code, metric_id, sum(numerator),
           case when count(denominator) = count(*) then sum(denominator) end
    from hwb
    where icb_code is not null
    group by period_month, metric_id, icb_code
    union all
    select period_month, 'england', (select code from ref_england), metric_id, sum(numerator),
           case when count(denominator) = count(*) then sum(denominator) end
    from hwb
    group by period_month, metric_id
),

icbs_with_hwbs as (
    select distinct o.org_code
    from stg_orgs as o
    join dim_hwb as h on h.icb_code = o.org_code
    where o.org_type = 'ICB'  -- ICB: integrated care board
),

providers as (
    select
        c.period_month,
        c.metric_id,
        c.area_code,
        case when o.org_code is not null then o.parent_code else c.parent_code end as icb_code,
        c.numerator,
        c.denominator,
        coalesce(k.denominator_rollup, 'sum') = 'max' as denominator_is_max
    from metric_cells as c
    left join stg_orgs as o on o.org_code = c.area_code
    left join metric_catalog as k using (metric_id)
    where c.area_type = 'provider'
),

by_provider as (
    select period_month, 'provider' as area_type, area_code, metric_id, numerator, denominator
    from providers
    union all
    select period_month, 'icb', icb_code, metric_id, sum(numerator),
           case when any_value(denominator_is_max) then max(denominator) else sum(denominator) end
    from providers
    where icb_code in (select org_code from icbs_with_hwbs)
    group by period_month, metric_id, icb_code
    union all
    select period_month, 'england', (select code from ref_england), metric_id, sum(numerator),
           case when any_value(denominator_is_max) then max(denominator) else sum(denominator) end
    from providers
    group by period_month, metric_id
),

areas as (
    select * from by_hwb
    union all
    select * from by_provider
)

select
    a.period_month,
    a.area_type,
    a.area_code,
    a.metric_id,
    a.numerator,
    a.denominator,
    case when u.has_denominator::boolean
         then u.scale::double * a.numerator / nullif(a.denominator, 0)
         else u.scale::double * a.numerator end as value
from areas as a
left join metric_catalog as k using (metric_id)
left join ref_units as u on u.unit = k.unit
