"""Per-field and per-record checks on mapped values, with plain-English, masked messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from engine import identifiers as ids
from engine.caretypes.model import FieldType, Sensitivity
from engine.mapping.errors import MappingError
from engine.mapping.models import RuleKind, ValidationRule

Check = Callable[[Any], "str | None"]  # returns the problem in words, or None when fine

MAX_PATTERN_CHARS = 200
MAX_CHECKED_TEXT = 10_000
_NESTED_QUANTIFIER = re.compile(r"\([^)]*[+*}][^)]*\)\s*[+*{]")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")

MASKED = frozenset({Sensitivity.PERSONAL, Sensitivity.HEALTH})


def mask(value: Any) -> str:
    """``'9434765976'`` -> ``'9*******76'``: first character and last two kept."""
    text = str(value)
    if len(text) <= 3:
        return "*" * len(text)
    return text[0] + "*" * (len(text) - 3) + text[-2:]


def show(value: Any, sensitive: bool) -> str:
    """How a value appears in a message: quoted, shortened, masked when sensitive."""
    if sensitive:
        return f'"{mask(value)}"'
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 80 else text[:77] + '..."'


def _is_date(v: Any) -> bool:
    if not isinstance(v, str) or len(v) != 10:
        return False
    try:
        date.fromisoformat(v)
    except ValueError:
        return False
    return True


def _is_datetime(v: Any) -> bool:
    if not isinstance(v, str) or not 16 <= len(v) <= 40:
        return False
    try:
        return datetime.fromisoformat(v).tzinfo is not None
    except ValueError:
        return False


def _canonical(fn: Callable[[Any], str | None]) -> Callable[[Any], bool]:
    return lambda v: fn(v) == v


_TYPE_TESTS: dict[FieldType, tuple[Callable[[Any], bool], str]] = {
    FieldType.STRING: (lambda v: isinstance(v, str), "text"),
    FieldType.TEXT: (lambda v: isinstance(v, str), "text"),
    FieldType.REFERENCE: (lambda v: isinstance(v, (str, int)) and not isinstance(v, bool), "a reference"),
    FieldType.URL: (lambda v: isinstance(v, str) and v.startswith(("https://", "http://")), "a web address"),
    FieldType.CURRENCY: (lambda v: isinstance(v, str) and bool(_CURRENCY.match(v)), "a currency code like GBP"),
    FieldType.INTEGER: (lambda v: type(v) is int, "a whole number"),
    FieldType.PENCE: (lambda v: type(v) is int, "a whole number of pence"),
    FieldType.NUMBER: (lambda v: type(v) in (int, float), "a number"),
    FieldType.BOOLEAN: (lambda v: type(v) is bool, "yes or no (true/false)"),
    FieldType.DATE: (_is_date, "an ISO date (YYYY-MM-DD)"),
    FieldType.DATETIME: (_is_datetime, "an ISO date and time with a time zone"),
    FieldType.EMAIL: (ids.is_valid_email, "a valid e-mail address"),
    FieldType.PHONE: (lambda v: isinstance(v, str) and bool(_E164.match(v)), "a phone number in international form (+44...)"),
    FieldType.POSTCODE: (_canonical(ids.normalise_postcode), "a valid UK postcode (like SW1A 1AA)"),
    FieldType.NHS_NUMBER: (_canonical(ids.normalise_nhs_number), "a valid NHS number (10 digits, correct check digit)"),
    FieldType.NI_NUMBER: (_canonical(ids.normalise_ni_number), "a valid National Insurance number (like AB123456C)"),
    FieldType.SORT_CODE: (_canonical(ids.normalise_sort_code), "a sort code (like 12-34-56)"),
    FieldType.ACCOUNT_NUMBER: (_canonical(ids.normalise_account_number), "an 8-digit bank account number"),
    FieldType.ODS_CODE: (ids.is_valid_ods_code, "a valid ODS code"),
    FieldType.SNOMED_CODE: (ids.is_valid_snomed_code, "a valid SNOMED CT / dm+d code"),
    FieldType.OBJECT: (lambda v: isinstance(v, dict), "a group of fields"),
    FieldType.LIST: (lambda v: isinstance(v, list), "a list"),
}

IDENTIFIER_TESTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "nhs_number": (ids.is_valid_nhs_number, "a valid NHS number"),
    "ni_number": (ids.is_valid_ni_number, "a valid National Insurance number"),
    "postcode": (ids.is_valid_postcode, "a valid UK postcode"),
    "phone": (ids.is_valid_phone, "a valid UK phone number"),
    "sort_code": (ids.is_valid_sort_code, "a valid sort code"),
    "account_number": (ids.is_valid_account_number, "a valid bank account number"),
    "ods_code": (ids.is_valid_ods_code, "a valid ODS code"),
    "snomed_code": (ids.is_valid_snomed_code, "a valid SNOMED CT code"),
    "email": (ids.is_valid_email, "a valid e-mail address"),
}


def type_check(field_type: FieldType) -> Check:
    """A check that the value has ``field_type``."""
    test, words = _TYPE_TESTS[field_type]

    def check(v: Any) -> str | None:
        return None if test(v) else f"is not {words}"

    return check


def allowed_check(values: tuple[Any, ...] | list[Any]) -> Check:
    """A check that the value is one of ``values``."""
    allowed = frozenset(values)
    listing = ", ".join(repr(v) for v in values)

    def check(v: Any) -> str | None:
        try:
            ok = v in allowed
        except TypeError:
            ok = False
        return None if ok else f"is not one of the allowed values ({listing})"

    return check


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a user regex, refusing long ones and nested quantifiers (catastrophic backtracking)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise MappingError(f"the pattern is longer than {MAX_PATTERN_CHARS} characters")
    if _NESTED_QUANTIFIER.search(pattern) or re.search(r"\\\d", pattern):
        raise MappingError("the pattern repeats a repeated group (or uses back-references); simplify it")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise MappingError(f"the pattern is not a valid regular expression: {exc}") from None


def rule_check(rule: ValidationRule) -> Check | None:
    """A per-value check for ``rule`` (None for rules handled elsewhere: required, type, after/before)."""
    kind = rule.rule
    if kind is RuleKind.PATTERN:
        if not rule.pattern:
            raise MappingError("a pattern rule needs a pattern")
        rx = compile_pattern(rule.pattern)

        def pattern(v: Any) -> str | None:
            text = v if isinstance(v, str) else str(v)
            if len(text) > MAX_CHECKED_TEXT or not rx.fullmatch(text):
                return rule.message or f"does not match the pattern {rule.pattern}"
            return None

        return pattern
    if kind is RuleKind.RANGE:
        lo, hi = rule.min, rule.max

        def in_range(v: Any) -> str | None:
            if type(v) not in (int, float):
                return "is not a number"
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                return rule.message or f"is outside the range {lo if lo is not None else '-'} to {hi if hi is not None else '-'}"
            return None

        return in_range
    if kind is RuleKind.LENGTH:
        lo_len, hi_len = rule.min, rule.max

        def length(v: Any) -> str | None:
            n = len(v) if isinstance(v, (str, list)) else len(str(v))
            if (lo_len is not None and n < lo_len) or (hi_len is not None and n > hi_len):
                return rule.message or f"has length {n}, outside {int(lo_len or 0)} to {int(hi_len) if hi_len is not None else 'any'}"
            return None

        return length
    if kind is RuleKind.ALLOWED_VALUES:
        if not rule.values:
            raise MappingError("an allowed-values rule needs a list of values")
        return allowed_check(rule.values)
    if kind is RuleKind.IDENTIFIER:
        if rule.identifier not in IDENTIFIER_TESTS:
            raise MappingError(f"unknown identifier kind {rule.identifier!r}; known: {', '.join(IDENTIFIER_TESTS)}")
        test, words = IDENTIFIER_TESTS[rule.identifier]
        return lambda v: None if test(v) else (rule.message or f"is not {words}")
    return None


def order_key(value: Any) -> str | None:
    """Comparable form of an ISO date or date-time (date-times compared in UTC)."""
    if not isinstance(value, str):
        return None
    if len(value) == 10:
        return value if _is_date(value) else None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is not None:
        from datetime import UTC

        dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
