/*
model: int_month_discharges
kind: month
grain: procode, provspno
period_column: disdate
depends_on: int_spells
description: Canonical spells discharged in the month (DISDATE in the month), all ages, day cases
  and admission methods, with their length of stay and discharge delay in days.
*/
select
    *,
    disdate - admidate as length_of_stay,
    disdate - discharge_ready_date as delay_days
from int_spells
where disdate between $period_start and $period_end
