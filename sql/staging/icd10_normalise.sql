/*
model: icd10_normalise
kind: macro
depends_on:
description: ICD-10 code as the code lists hold it: upper case, no dot, no trailing filler
  (X or -, as in HES 'J45X' or 'S72-'), at most 4 characters.
*/
create or replace macro icd10_normalise(code) as
    -- rtrim drops the trailing run of X and - (twice as fast as a regular expression)
    nullif(left(rtrim(upper(replace(trim(code), '.', '')), 'X-'), 4), '')
