/*
model: provisional_cells
kind: view
grain: period_month, area_type, area_code, metric_id
depends_on: deliveries, metric_cells, metric_areas, metric_catalog, dim_hwb, stg_reablement, files, file_months, ref_england
description: Which cells are provisional, and why: one row per provisional cell of metric_areas,
  with its reasons sorted; metric_values reads each cell's status from here when the figures are
  read (nothing writes a status). A month is provisional for a metric while its follow-up window
  (metric_catalog.follow_up_days) has not passed by the end of the latest period loaded (of the
  datasets it reads; of any dataset while none of those has arrived), or while an expected file
  is missing (a provider or local authority is expected every month from its first delivery
  on), or while no loaded file of a dataset the metric reads covers the month at all (e.g. a
  month loaded only from NHS England's published A&E files: its apc metrics are zeros until apc
  extracts arrive). A reason found for every area (area_code NULL below) holds in each.
  Linked metrics (extracts 3a) read apc and a council dataset: a missing apc file of any
  provider makes every area provisional, a missing council file only its own area (with its ICB
  and England), as for the other metrics; rows awaiting a 91-day status do not hold them back.
*/
with latest as (
    select dataset, max(period_month) as latest_month from deliveries group by dataset
),

missing as (
    select dataset, org_code, period_month as month from deliveries where not received
),

cells as (
    select distinct c.period_month, c.metric_id, k.follow_up_days, k.datasets
    from metric_cells as c
    join metric_catalog as k using (metric_id)
),

follow_up as (
    select c.period_month, c.metric_id, null as area_code, 'follow-up window not yet passed' as reason
    from cells as c
    where c.follow_up_days > 0
      and last_day(c.period_month) + c.follow_up_days::integer > coalesce(
          -- the latest period of the data the follow-up is read from ...
          (select last_day(max(l.latest_month)) from latest as l where list_contains(c.datasets, l.dataset)),
          -- ... or, while none of it has arrived, the latest period of anything loaded
          (select last_day(max(l.latest_month)) from latest as l)
      )
),

missing_provider as (
    -- a missing hospital extract can touch any area the provider serves
    select c.period_month, c.metric_id, null as area_code, 'apc extract missing from ' || m.org_code as reason
    from cells as c
    join missing as m on m.dataset = 'apc' and m.month = c.period_month
    where list_contains(c.datasets, 'apc')
),

missing_council as (
    select c.period_month, c.metric_id, area.area_code, m.dataset || ' extract missing from ' || m.org_code as reason
    from cells as c
    join missing as m on m.dataset in ('reablement', 'carehome') and m.month = c.period_month
        and list_contains(c.datasets, m.dataset)
    join dim_hwb as h on h.area_code = m.org_code
    cross join lateral (select unnest([h.area_code, h.icb_code, (select code from ref_england)]) as area_code) as area
),

awaiting_status as (
    -- reablement rows with no 91-day status yet keep their month provisional
    select distinct c.period_month, c.metric_id, area.area_code, 'reablement outcomes awaited' as reason
    from cells as c
    join stg_reablement as r
        on date_trunc('month', r.hosp_discharge_date) = c.period_month
        and r.status_91d is null and r.age >= 65
    join dim_hwb as h on h.area_code = r.area_code
    cross join lateral (select unnest([h.area_code, h.icb_code, (select code from ref_england)]) as area_code) as area
    where list_contains(c.datasets, 'reablement')
      -- the linked metrics count reablement rows whatever their STATUS_91D (extracts 3a): their
      -- months are provisional by follow-up window and expected files only
      and c.metric_id not in ('reablement_after_discharge_65plus', 'readmission_after_reablement_91d')
),

no_extract as (
    select c.period_month, c.metric_id, null as area_code, d.dataset || ' data missing for the month' as reason
    from cells as c
    cross join lateral (select unnest(c.datasets) as dataset) as d
    where d.dataset in ('apc', 'reablement', 'carehome', 'nhse_ae', 'nhse_discharge')
      -- only once the dataset has started arriving: nothing is expected before a first delivery
      and exists (
          select 1 from files as f2
          where f2.status = 'loaded' and f2.dataset = d.dataset
            and f2.period <= strftime(c.period_month, '%Y-%m')
      )
      and not exists (
          -- a loaded file of the dataset for the month, or whose rows cover it
          select 1
          from files as f
          where f.status = 'loaded' and f.dataset = d.dataset
            and (f.period = strftime(c.period_month, '%Y-%m')
                 or f.file_id in (select m.file_id from file_months as m
                                  where m.month = c.period_month or m.month is null))
      )
),

reasons as (
    select * from follow_up
    union all select * from no_extract
    union all select * from missing_provider
    union all select * from missing_council
    union all select * from awaiting_status
)

select
    a.period_month,
    a.area_type,
    a.area_code,
    a.metric_id,
    list_sort(list(distinct r.reason)) as reasons
from metric_areas as a
join reasons as r
    on r.period_month = a.period_month and r.metric_id = a.metric_id
    and (r.area_code is null or r.area_code = a.area_code)
group by all
