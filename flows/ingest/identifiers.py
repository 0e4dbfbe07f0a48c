"""NHS numbers: modulus-11 validation and keyed pseudonymisation, as SQL expressions.

Both run inside DuckDB so that NHS numbers never pass through Python objects, logs or errors.
The pseudonym is HMAC-SHA-256 (RFC 2104) under JOINEDUP_PSEUDO_KEY, written in the letters a-p
(hex with digits shifted to letters): no run of digits in a stored id can look like an NHS number.
"""
from __future__ import annotations

import hashlib
import re

BLOCK_SIZE = 64  # SHA-256 block size in bytes, as HMAC needs
# Used for the councils' own CLIENT_IDs when no key is set: they are not NHS numbers, but are
# still kept out of the database in clear.
CLIENT_ID_SALT = b"joinedup:client-id"
PSEUDONYM_CHARS = 32


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """The inner and outer padded keys of HMAC-SHA-256."""
    if len(key) > BLOCK_SIZE:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK_SIZE, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def key_parameters(pseudo_key: str | None) -> dict[str, bytes]:
    """Named SQL parameters for `pseudonym_sql`: the NHS-number key and the client-id key."""
    inner, outer = hmac_pads(pseudo_key.encode() if pseudo_key else b"")
    client_inner, client_outer = hmac_pads(
        pseudo_key.encode() if pseudo_key else CLIENT_ID_SALT)
    return {"hmac_inner": inner, "hmac_outer": outer,
            "client_inner": client_inner, "client_outer": client_outer}


def pseudonym_sql(value: str, *, pad: str = "hmac") -> str:
    """SQL for the pseudonym of text `value` (NULL stays NULL)."""
    digest = f"sha256(${pad}_outer || unhex(sha256(${pad}_inner || ({value})::blob)))"
    return f"translate(left({digest}, {PSEUDONYM_CHARS}), '0123456789', 'ghijklmnop')"


# "Could be an NHS number": ten or more digits in a row, bare or with any mix of whitespace
# (spaces, tabs, newlines, no-break and thin spaces), hyphens and dashes, or dots between them:
# 9434765919, 943 476 5919, 943  476\t5919, 943 - 476 - 5919, 943.476.5919, 94-34-76-59-19.
# Every run is masked whether or not it passes modulus 11: a mistyped NHS number still points
# at a person, and a longer run (an account or phone number) contains ten digits that may be
# one. Dates (2025-10-03: eight digits) and counts stay readable. Both renderings below come
# from this one definition, so Python and DuckDB agree on what is withheld.
_SEPARATORS = ("\t\n\v\f\r \u00a0\u1680\u180e\u2000\u2001\u2002\u2003\u2004\u2005"
               "\u2006\u2007\u2008\u2009\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
               ".\u00b7\u2024\u2027\u2219\u22c5\uff0e"
               "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d")
MIN_DIGITS = 10
WITHHELD = "<10-digit number withheld>"


def _possible_nhs_number_pattern(digit: str) -> str:
    separator = "[" + _SEPARATORS + "\\-]"      # the hyphen escaped, last in the class
    return f"{digit}(?:{separator}*{digit}){{{MIN_DIGITS - 1},}}"


# Python's \d is any decimal digit (also full-width ０-９); RE2 spells that \p{Nd}.
_POSSIBLE_NHS_NUMBER = re.compile(_possible_nhs_number_pattern(r"\d"))
_POSSIBLE_NHS_NUMBER_SQL = _possible_nhs_number_pattern(r"\p{Nd}")


def could_be_nhs_number(text: str | None) -> bool:
    """True when the text holds a run of digits that could be an NHS number (see above).
    The one test of it: every writer of stored, logged or published text masks with it."""
    return bool(text) and _POSSIBLE_NHS_NUMBER.search(text) is not None


def withhold_numbers(text: str | None) -> str | None:
    """`text` with every run that could be an NHS number replaced by a marker."""
    if text is None:
        return None
    return _POSSIBLE_NHS_NUMBER.sub(WITHHELD, text)


def withhold_numbers_sql(text: str) -> str:
    """The same as SQL, for quarantine details, which quote the values they reject."""
    pattern = _POSSIBLE_NHS_NUMBER_SQL.replace("'", "''")
    return f"regexp_replace({text}, '{pattern}', '{WITHHELD}', 'g')"


def could_be_nhs_number_sql(text: str) -> str:
    """The same test as SQL (NULL for NULL)."""
    pattern = _POSSIBLE_NHS_NUMBER_SQL.replace("'", "''")
    return f"regexp_matches({text}, '{pattern}')"


def clean_nhs_number_sql(value: str) -> str:
    """Spaces and hyphens are formatting ('943 476 5919'), not part of the number."""
    return f"regexp_replace(trim({value}), '[\\s-]', '', 'g')"


def nhs_number_valid_sql(clean: str, number: str) -> str:
    """Modulus 11 (NHS Data Dictionary); ten identical digits are never valid.

    `clean` is the text, `number` the same as BIGINT: digits by integer arithmetic are about
    three times faster than by substring.
    """
    digit = lambda i: f"(({number} // {10 ** (10 - i)}) % 10)"  # noqa: E731 - i-th digit, 1-based
    weighted = " + ".join(f"{digit(i)} * {11 - i}" for i in range(1, 10))
    check = f"(11 - (({weighted}) % 11))"
    return (f"(regexp_full_match({clean}, '[0-9]{{10}}') "
            f"and replace({clean}, left({clean}, 1), '') <> '' "
            f"and (case when {check} = 11 then 0 else {check} end) = {number} % 10)")


def nhs_number_valid(number: str) -> bool:
    """The same rule in Python, for generators and tests."""
    digits = number.replace(" ", "").replace("-", "")
    if len(digits) != 10 or not digits.isdigit() or len(set(digits)) == 1:
        return False
    check = 11 - sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1))) % 11
    return (0 if check == 11 else check) == int(digits[9])
