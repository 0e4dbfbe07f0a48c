/*
model: cells_by_provider
kind: cells
rollup: provider
grain: area_code (provider)
depends_on: metric_output
description: The metric_cells rows of a provider-level measure (`rollup: provider`), for the month
  being built: one row per provider as the metric gives it (org_code, parent_code, numerator,
  denominator), codes trimmed and upper-cased. The ICB the file gives is kept as parent_code;
  metric_areas prefers the provider's ICB in orgs, read when the figures are read, so an orgs
  file rebuilds no provider measure.
*/
select
    $period_start::date as period_month,
    'provider' as area_type,
    upper(trim(org_code)) as area_code,
    $metric_id as metric_id,
    numerator,
    denominator,
    upper(trim(parent_code)) as parent_code
from metric_output
