/*
model: metric_spc
kind: view
grain: period_month, area_type, area_code, metric_id
depends_on: metric_values, metric_catalog, stg_changes
description: Statistical process control (Making Data Count XmR chart) of every metric series
  (area x metric, monthly). One row per calendar month from the series' first to its last month
  in metric_values; a month with no value has a row with point_type NULL.
  Used months are final months with a value: only they set the limits. Provisional months are
  classified against the limits but never used. A moving range spans two consecutive calendar
  months that are both used (and both in the group's basis, see fix_after); mean moving range
  (optionally screened: ranges of 3.267 x the mean or more left out, then the mean taken again);
  process limits mean +/- 2.66 x mean moving range, near limits at 2/3 of that distance.
  Limits are computed within each rebase group: a change in stg_changes for the area's own code
  (metric or '*') starts a new group in its month. With fix_after N, only the first N used months
  of a group set its mean and limits. A group with fewer than min_points used months has NULL
  mean, limits and point types.
  Special cause (rules run over the months with a value, in order, within the group; a month
  with no value is not a point and breaks nothing): outside the process limits; a run of 7+
  points on the same side of the mean (a point on the mean breaks it); a trend of 7+ points each
  higher (or each lower) than the one before (an equal value breaks it); two of three
  consecutive points on the same side of the mean lying between the near and process limit on
  that side (only those points). Direction taken from the first rule that holds in the order
  outside > trend > two-of-three > run.
  On the series' last month: variation (that month's point type) and assurance (the month's plan
  against the last rebase group's limits). prior_* columns classify a group's points against the
  limits of the group before it: "did the change work?".
  Settings (flows/settings.py) arrive as DuckDB variables spc_min_points, spc_fix_after,
  spc_screen_outliers; unset, they take the defaults 12, off, off.
*/
with settings as (
    select
        coalesce(getvariable('spc_min_points'), 12)::integer as min_points,
        getvariable('spc_fix_after')::integer as fix_after,   -- NULL: limits use every used month
        coalesce(getvariable('spc_screen_outliers'), false)::boolean as screen_outliers,
        2.66 as sigma_limit,                                  -- 3 sigma for an XmR chart (3 / 1.128)
        2.0 * 2.66 / 3.0 as near_limit,                       -- near limits: 2/3 of the distance
        3.267 as outlier_ratio                                -- screening: moving range >= 3.267 x mean
),

series as (
    select area_type, area_code, metric_id,
           min(period_month) as first_month, max(period_month) as last_month
    from metric_values
    group by all
),

calendar as (
    select s.area_type, s.area_code, s.metric_id, s.first_month, s.last_month,
           unnest(generate_series(s.first_month, s.last_month, interval 1 month))::date as period_month
    from series as s
),

series_changes as (
    -- the area's own changes only: an ICB's or England's series is not rebased by a HWB's
    select distinct s.area_type, s.area_code, s.metric_id, c.change_month
    from series as s
    join stg_changes as c
        on c.area_code = upper(s.area_code)
        and (c.metric_id = s.metric_id or c.metric_id = '*')
        and c.change_month > s.first_month
        and c.change_month <= s.last_month
),

months as (
    select
        c.area_type, c.area_code, c.metric_id, c.period_month, c.last_month,
        v.value, v.plan_value, v.status,
        k.higher_is_better,
        -- each change month starts the next group: the number of changes up to the month
        count(sc.change_month) over (
            partition by c.area_type, c.area_code, c.metric_id
            order by c.period_month rows between unbounded preceding and current row
        ) as rebase_group,
        coalesce(v.value is not null and not isnan(v.value) and v.status = 'final', false) as is_used
    from calendar as c
    left join series_changes as sc
        on sc.area_type = c.area_type and sc.area_code = c.area_code
        and sc.metric_id = c.metric_id and sc.change_month = c.period_month
    left join metric_values as v
        on v.area_type = c.area_type and v.area_code = c.area_code
        and v.metric_id = c.metric_id and v.period_month = c.period_month
    left join metric_catalog as k on k.metric_id = c.metric_id
),

ranked as (
    select
        m.*,
        count(*) filter (where m.is_used) over (
            partition by m.area_type, m.area_code, m.metric_id, m.rebase_group
            order by m.period_month rows between unbounded preceding and current row
        ) as used_rank,
        count(*) filter (where m.is_used) over (
            partition by m.area_type, m.area_code, m.metric_id, m.rebase_group
        ) as used_months
    from months as m
),

basis as (
    -- the months that set the group's limits: every used month, or the first fix_after of them
    select r.*, r.is_used and (s.fix_after is null or r.used_rank <= s.fix_after) as in_basis
    from ranked as r, settings as s
),

moving_ranges as (
    select
        b.*,
        -- the calendar has every month, so the previous row is the previous calendar month
        case when b.in_basis and lag(b.in_basis) over w
             then abs(b.value - lag(b.value) over w) end as moving_range
    from basis as b
    window w as (partition by b.area_type, b.area_code, b.metric_id, b.rebase_group
                 order by b.period_month)
),

group_ranges as (
    select
        mr.*,
        avg(mr.moving_range) over (
            partition by mr.area_type, mr.area_code, mr.metric_id, mr.rebase_group
        ) as unscreened_mean_range
    from moving_ranges as mr
),

group_stats as (
    select
        g.area_type, g.area_code, g.metric_id, g.rebase_group,
        any_value(g.used_months) as used_months,
        avg(g.value) filter (where g.in_basis) as basis_mean,
        avg(g.moving_range) filter (
            where not s.screen_outliers or g.moving_range < s.outlier_ratio * g.unscreened_mean_range
        ) as mean_range
    from group_ranges as g, settings as s
    group by all
),

limits as (
    select
        gs.area_type, gs.area_code, gs.metric_id, gs.rebase_group, gs.used_months,
        l.enough,
        case when l.enough then gs.basis_mean end as mean,
        case when l.enough then gs.mean_range end as mean_moving_range,
        case when l.enough then gs.basis_mean - s.sigma_limit * gs.mean_range end as lpl,
        case when l.enough then gs.basis_mean + s.sigma_limit * gs.mean_range end as upl,
        case when l.enough then gs.basis_mean - s.near_limit * gs.mean_range end as lnl,
        case when l.enough then gs.basis_mean + s.near_limit * gs.mean_range end as unl
    from group_stats as gs
    cross join settings as s
    cross join lateral (
        select gs.used_months >= s.min_points and gs.mean_range is not null as enough
    ) as l
),

points as (
    -- the months with a value, each judged twice: against its own group's limits ('own'), and
    -- against the limits of the group before it ('prior': did the change shift the process?)
    select m.*, 'own' as basis, l.mean, l.lpl, l.upl, l.lnl, l.unl
    from months as m
    join limits as l using (area_type, area_code, metric_id, rebase_group)
    where m.value is not null and not isnan(m.value) and l.enough
    union all
    select m.*, 'prior' as basis, l.mean, l.lpl, l.upl, l.lnl, l.unl
    from months as m
    join limits as l
        on l.area_type = m.area_type and l.area_code = m.area_code and l.metric_id = m.metric_id
        and l.rebase_group = m.rebase_group - 1
    where m.value is not null and not isnan(m.value) and l.enough
),

sequenced as (
    select
        p.*,
        row_number() over w as seq,
        sign(p.value - p.mean)::integer as side,
        sign(p.value - lag(p.value) over w)::integer as step,
        case when p.value > p.upl then 1 when p.value < p.lpl then -1 end as outside_dir,
        -- between the near limit and the process limit (a point on the process limit is inside)
        case when p.value > p.unl and p.value <= p.upl then 1
             when p.value < p.lnl and p.value >= p.lpl then -1
             else 0 end as near_side
    from points as p
    window w as (partition by p.area_type, p.area_code, p.metric_id, p.basis, p.rebase_group
                 order by p.period_month)
),

islands as (
    -- gaps and islands: consecutive points sharing a side (runs) or a step (trends)
    select
        q.*,
        q.seq - row_number() over (
            partition by q.area_type, q.area_code, q.metric_id, q.basis, q.rebase_group, q.side
            order by q.seq) as side_island,
        q.seq - row_number() over (
            partition by q.area_type, q.area_code, q.metric_id, q.basis, q.rebase_group, q.step
            order by q.seq) as step_island,
        -- a window of three points ending here, all on one side, two or more near that side
        q.side <> 0
            and q.side = lag(q.side, 1) over w and q.side = lag(q.side, 2) over w
            and (q.near_side <> 0)::integer + (lag(q.near_side, 1) over w <> 0)::integer
                + (lag(q.near_side, 2) over w <> 0)::integer >= 2 as two_in_three_window
    from sequenced as q
    window w as (partition by q.area_type, q.area_code, q.metric_id, q.basis, q.rebase_group
                 order by q.seq)
),

island_lengths as (
    select
        i.*,
        count(*) over (partition by i.area_type, i.area_code, i.metric_id, i.basis, i.rebase_group,
                                    i.side, i.side_island) as run_length,
        -- a trend of n points is n - 1 steps the same way
        count(*) over (partition by i.area_type, i.area_code, i.metric_id, i.basis, i.rebase_group,
                                    i.step, i.step_island) as step_length
    from islands as i
),

rule_directions as (
    select
        il.*,
        case when il.side <> 0 and il.run_length >= 7 then il.side end as run_dir,
        coalesce(
            -- a point inside a trend's steps ...
            case when il.step <> 0 and il.step_length >= 6 then il.step end,
            -- ... or the point the trend starts from
            case when lead(il.step) over w <> 0 and lead(il.step_length) over w >= 6
                      and lead(il.step) over w is distinct from il.step
                 then lead(il.step) over w end
        ) as trend_dir,
        case when il.near_side <> 0
                  and (il.two_in_three_window
                       or coalesce(lead(il.two_in_three_window, 1) over w, false)
                       or coalesce(lead(il.two_in_three_window, 2) over w, false))
             then il.near_side end as two_in_three_dir
    from island_lengths as il
    window w as (partition by il.area_type, il.area_code, il.metric_id, il.basis, il.rebase_group
                 order by il.seq)
),

classified as (
    select
        r.area_type, r.area_code, r.metric_id, r.period_month, r.basis,
        coalesce(r.outside_dir, r.trend_dir, r.two_in_three_dir, r.run_dir) as direction,
        case when r.outside_dir is not null then 'outside_limits'
             when r.trend_dir is not null then 'trend'
             when r.two_in_three_dir is not null then 'two_in_three'
             when r.run_dir is not null then 'run' end as special_cause_rule,
        r.higher_is_better
    from rule_directions as r
),

typed as (
    select
        c.*,
        case when c.direction is null then 'common_cause'
             when c.higher_is_better is null
                 then case when c.direction > 0 then 'special_cause_neutral_high'
                           else 'special_cause_neutral_low' end
             when (c.direction > 0) = c.higher_is_better then 'special_cause_improvement'
             else 'special_cause_concern' end as point_type
    from classified as c
)

select
    m.period_month,
    m.area_type,
    m.area_code,
    m.metric_id,
    m.value,
    m.status,
    m.plan_value,
    m.is_used,
    m.rebase_group,
    l.used_months,
    s.min_points,
    l.mean,
    l.lpl,
    l.upl,
    l.lnl,
    l.unl,
    own.point_type,
    own.special_cause_rule,
    case when m.period_month = m.last_month then own.point_type end as variation,
    case when m.period_month = m.last_month and l.enough and m.plan_value is not null
              and m.higher_is_better is not null then
        case when m.plan_value < l.lpl
                 then case when m.higher_is_better then 'consistent_pass' else 'consistent_fail' end
             when m.plan_value > l.upl
                 then case when m.higher_is_better then 'consistent_fail' else 'consistent_pass' end
             else 'inconsistent' end
    end as assurance,
    pl.mean as prior_mean,
    pl.lpl as prior_lpl,
    pl.upl as prior_upl,
    prior.point_type as prior_point_type
from months as m
cross join settings as s
left join limits as l
    on l.area_type = m.area_type and l.area_code = m.area_code and l.metric_id = m.metric_id
    and l.rebase_group = m.rebase_group
left join limits as pl
    on pl.area_type = m.area_type and pl.area_code = m.area_code and pl.metric_id = m.metric_id
    and pl.rebase_group = m.rebase_group - 1 and pl.enough
left join typed as own
    on own.basis = 'own' and own.area_type = m.area_type and own.area_code = m.area_code
    and own.metric_id = m.metric_id and own.period_month = m.period_month
left join typed as prior
    on prior.basis = 'prior' and prior.area_type = m.area_type and prior.area_code = m.area_code
    and prior.metric_id = m.metric_id and prior.period_month = m.period_month
