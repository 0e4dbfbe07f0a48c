/*
model: published_totals_match
kind: audit
severity: fail
depends_on: published_checks, files, file_months
description: A published file's own totals must equal the sum of its rows (NHS England's A&E TOTAL
  row = the sum of the provider rows, column by column; a discharge sitrep's split = its total):
  a loaded file of the month whose check failed (see published_checks) blocks the month, as its
  provider rows are not what NHS England published. Load a corrected file to replace it.
*/
select f.file_name, c."check", c.column_name, c.published, c.computed
from published_checks as c
join files as f on f.file_id = c.file_id
where f.status = 'loaded'
  and not c.ok
  and c.file_id in (select m.file_id from file_months as m where m.month = $period_start)
