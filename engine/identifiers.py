"""UK identifier checks and normalisers: NHS number, NI number, postcode, phone, bank details, codes.

Every ``is_valid_*`` takes any value and never raises; every ``normalise_*`` returns the
canonical form or ``None`` when the value is not a valid identifier of that kind.
"""

from __future__ import annotations

import re
from typing import Any

import phonenumbers

_NON_DIGIT = re.compile(r"[\s\-]")
_NHS_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def nhs_check_digit(first_nine: str) -> int | None:
    """Modulus 11 check digit for the first nine digits of an NHS number (None: no valid digit)."""
    total = sum(int(d) * w for d, w in zip(first_nine, _NHS_WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def normalise_nhs_number(value: Any) -> str | None:
    """``'943 476 5919'`` -> ``'9434765919'`` when the modulus 11 check passes, else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    digits = _NON_DIGIT.sub("", value)
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return None
    check = nhs_check_digit(digits[:9])
    if check is None or check != int(digits[9]):
        return None
    return digits


def is_valid_nhs_number(value: Any) -> bool:
    """True when ``value`` is a 10-digit NHS number with a correct modulus 11 check digit."""
    return normalise_nhs_number(value) is not None


_NI = re.compile(r"^(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]$")


def normalise_ni_number(value: Any) -> str | None:
    """``'ab 12 34 56 c'`` style input -> ``'AB123456C'`` when it follows HMRC's format, else None."""
    if not isinstance(value, str):
        return None
    compact = value.replace(" ", "").upper()
    return compact if _NI.match(compact) else None


def is_valid_ni_number(value: Any) -> bool:
    """True for a National Insurance number with an allowed prefix, six digits and suffix A-D."""
    return normalise_ni_number(value) is not None


_POSTCODE = re.compile(r"^(GIR0AA|[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?\d[ABD-HJLNP-UW-Z]{2})$")


def normalise_postcode(value: Any) -> str | None:
    """``'sw1a1aa'`` -> ``'SW1A 1AA'`` for a well-formed UK postcode, else None."""
    if not isinstance(value, str) or len(value) > 16:
        return None
    compact = value.replace(" ", "").upper()
    if not _POSTCODE.match(compact):
        return None
    return f"{compact[:-3]} {compact[-3:]}"


def is_valid_postcode(value: Any) -> bool:
    """True for a well-formed UK postcode (format only; not checked against the PAF)."""
    return normalise_postcode(value) is not None


def normalise_phone(value: Any, region: str = "GB") -> str | None:
    """Any written phone number -> E.164 (``'+447700900123'``) when valid for ``region``, else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > 40:
        return None
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def format_phone_national(value: Any, region: str = "GB") -> str | None:
    """E.164 (or any valid number) -> national format such as ``'07700 900123'``."""
    e164 = normalise_phone(value, region)
    if e164 is None:
        return None
    parsed = phonenumbers.parse(e164, region)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)


def is_valid_phone(value: Any, region: str = "GB") -> bool:
    """True when ``value`` is a valid phone number (UK by default)."""
    return normalise_phone(value, region) is not None


def normalise_sort_code(value: Any) -> str | None:
    """``'123456'`` / ``'12 34 56'`` -> ``'12-34-56'``, else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:06d}"
    if not isinstance(value, str):
        return None
    digits = _NON_DIGIT.sub("", value)
    if len(digits) != 6 or not digits.isascii() or not digits.isdigit():
        return None
    return f"{digits[:2]}-{digits[2:4]}-{digits[4:]}"


def is_valid_sort_code(value: Any) -> bool:
    """True for a six-digit UK bank sort code."""
    return normalise_sort_code(value) is not None


def normalise_account_number(value: Any) -> str | None:
    """An eight-digit UK bank account number, spaces removed; None otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:08d}"
    if not isinstance(value, str):
        return None
    digits = _NON_DIGIT.sub("", value)
    if len(digits) != 8 or not digits.isascii() or not digits.isdigit():
        return None
    return digits


def is_valid_account_number(value: Any) -> bool:
    """True for an eight-digit UK bank account number (format only, no modulus table)."""
    return normalise_account_number(value) is not None


_ODS = re.compile(r"^[A-Z0-9]{3,10}$")


def is_valid_ods_code(value: Any) -> bool:
    """True for an NHS ODS organisation code shape (3 to 10 upper-case letters and digits)."""
    return isinstance(value, str) and bool(_ODS.match(value)) and any(c.isdigit() for c in value)


# Verhoeff tables, used by SNOMED CT (and so dm+d) identifiers.
_VD = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VP = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_VINV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)


def verhoeff_check_digit(digits: str) -> int:
    """The Verhoeff check digit to append to ``digits``."""
    c = 0
    for i, d in enumerate(reversed(digits)):
        c = _VD[c][_VP[(i + 1) % 8][int(d)]]
    return _VINV[c]


def is_valid_snomed_code(value: Any) -> bool:
    """True for a SNOMED CT (or dm+d) concept id: 6 to 18 digits with a valid Verhoeff check digit."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 6 <= len(value) <= 18:
        return False
    if not value.isascii() or not value.isdigit() or value[0] == "0":
        return False
    return verhoeff_check_digit(value[:-1]) == int(value[-1])


_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


def is_valid_email(value: Any) -> bool:
    """True for a plausible e-mail address (one @, a dotted domain)."""
    return isinstance(value, str) and len(value) <= 254 and bool(_EMAIL.match(value))
