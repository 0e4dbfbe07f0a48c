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


# Ten digits, bare or written 3-3-4 with spaces or hyphens, not inside a longer run of digits:
# anything that could be an NHS number typed into the wrong column.
_TEN_DIGITS = r"([0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4})"
_NOT_DIGIT_BEFORE, _NOT_DIGIT_AFTER = r"(^|[^0-9])", r"([^0-9]|$)"
WITHHELD = "<10-digit number withheld>"


def withhold_numbers_sql(text: str) -> str:
    """SQL: `text` with every number that could be an NHS number replaced by a marker, for
    quarantine details, which quote the values they reject."""
    pattern = _NOT_DIGIT_BEFORE + _TEN_DIGITS + _NOT_DIGIT_AFTER
    once = f"regexp_replace({text}, '{pattern}', '\\1{WITHHELD}\\3', 'g')"
    # twice: a match takes the character after it, so a second number right behind is missed
    return f"regexp_replace({once}, '{pattern}', '\\1{WITHHELD}\\3', 'g')"


def withhold_numbers(text: str | None) -> str | None:
    """The same in Python, for details built outside SQL."""
    if text is None:
        return None
    return re.sub(rf"(?<![0-9]){_TEN_DIGITS}(?![0-9])", WITHHELD, text)


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
