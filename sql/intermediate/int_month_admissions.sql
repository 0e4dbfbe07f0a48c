/*
model: int_month_admissions
kind: month
grain: procode, provspno
period_column: admidate
depends_on: int_spells
description: Canonical spells admitted in the month (ADMIDATE in the month), all ages, residences
  and admission methods, each once in its latest state. Metrics pick their own cohort from it.
*/
select *
from int_spells
where admidate between $period_start and $period_end
