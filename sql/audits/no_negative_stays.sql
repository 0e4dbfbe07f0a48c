/*
model: no_negative_stays
kind: audit
severity: fail
depends_on: int_month_discharges
description: No discharge in the month has a negative length of stay.
*/
select procode, provspno, length_of_stay
from int_month_discharges
where length_of_stay < 0
