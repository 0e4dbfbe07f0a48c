/*
model: metric_plan_variance
kind: view
grain: period_month, area_type, area_code, metric_id
depends_on: metric_values, metric_catalog, ref_units
description: Each cell against its plan: the variance in the metric's unit, the same variance as
  a count of the numerator's unit (e.g. admissions above plan = numerator - plan x denominator /
  scale), its cost in pounds where the metric has a unit cost (metric_catalog.unit_cost: £1,613
  per emergency admission and £307 per delayed day, from the NAO 2015-16 figures), and
  year-to-date sums over the financial year (April to March). A plan is in the metric's unit
  (extracts contract s2 plan), so for a count (a unit without a denominator, whose value is its
  numerator) the variance as a count is numerator - plan.
*/
with cells as (
    select
        c.*,
        k.unit_cost,
        u.scale::double as scale,  -- value = scale x numerator / denominator
        u.has_denominator::boolean as has_denominator,
        -- financial year: April to March
        year(c.period_month) - case when month(c.period_month) < 4 then 1 else 0 end as financial_year
    from metric_values as c
    join metric_catalog as k using (metric_id)
    left join ref_units as u on u.unit = k.unit
),

variance as (
    select
        *,
        value - plan_value as variance,
        case when has_denominator then numerator - plan_value * denominator / scale
             else numerator - plan_value / scale end as variance_count
    from cells
)

select
    period_month,
    area_type,
    area_code,
    metric_id,
    plan_value,
    variance,
    variance_count,
    variance_count * unit_cost as variance_cost,
    sum(variance_count) over ytd as ytd_variance_count,
    sum(variance_count * unit_cost) over ytd as ytd_variance_cost
from variance
window ytd as (
    partition by area_type, area_code, metric_id, financial_year
    order by period_month rows between unbounded preceding and current row
)
