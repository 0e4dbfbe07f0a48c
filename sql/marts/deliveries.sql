/*
model: deliveries
kind: view
grain: period_month, dataset, org_code
depends_on: files
description: Expected extracts per organisation and month, and whether each arrived. A provider
  or local authority is expected every month from its first delivery to the latest period loaded.
*/
with delivered as (
    select dataset, upper(org_code) as org_code, strptime(period || '-01', '%Y-%m-%d')::date as period_month
    from files
    where status = 'loaded' and period is not null
),

latest as (
    select dataset, max(period_month) as latest_month from delivered group by dataset
),

expected as (
    select
        d.dataset,
        d.org_code,
        unnest(generate_series(min(d.period_month), any_value(l.latest_month), interval 1 month))::date as period_month
    from delivered as d
    join latest as l using (dataset)
    group by d.dataset, d.org_code
)

select
    e.period_month,
    e.dataset,
    e.org_code,
    exists (
        select 1 from delivered as d
        where d.dataset = e.dataset and d.org_code = e.org_code and d.period_month = e.period_month
    ) as received
from expected as e
