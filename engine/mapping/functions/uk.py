"""UK identifiers: NHS number, NI number, postcode, phone (E.164), sort code, account number."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine import identifiers as ids
from engine.mapping.errors import StepError
from engine.mapping.functions.registry import ArgSpec, Example, Step, register


def _normaliser(fn: Callable[[Any], str | None], label: str) -> Step:
    def step(v: Any, _r: Mapping[str, Any]) -> Any:
        if v == "":
            return None
        out = fn(v)
        if out is None:
            raise StepError(f"{v!r} is not a valid {label}")
        return out

    return step


def _same(_a: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("identity", {})


@register("nhs_number", "uk identifiers", "Tidies an NHS number to 10 digits and checks its check digit (modulus 11).",
          [Example("943 476 5919", "9434765919"), Example("999-000-0018", "9990000018")],
          phrase="checked as an NHS number", inverse=_same)
def _nhs(_a: dict[str, Any]) -> Step:
    return _normaliser(ids.normalise_nhs_number, "NHS number")


@register("ni_number", "uk identifiers", "Tidies a National Insurance number (capitals, no spaces) and checks its format.",
          [Example("ab 12 34 56 c", "AB123456C")], phrase="checked as a National Insurance number", inverse=_same)
def _ni(_a: dict[str, Any]) -> Step:
    return _normaliser(ids.normalise_ni_number, "National Insurance number")


@register("postcode", "uk identifiers", "Tidies a UK postcode (capitals, one space) and checks its format.",
          [Example("sw1a1aa", "SW1A 1AA"), Example(" m1 1ae ", "M1 1AE")], phrase="tidied as a UK postcode", inverse=_same)
def _postcode(_a: dict[str, Any]) -> Step:
    return _normaliser(ids.normalise_postcode, "UK postcode")


@register(
    "phone_e164", "uk identifiers", "Turns a written phone number into international form (+447911123456).",
    [Example("07911 123456", "+447911123456"), Example("020 7946 0018", "+442079460018")],
    [ArgSpec("region", "string", "The country to assume for numbers without a +code.", default="GB"),
     ArgSpec("write_back_as", "string", "How to write the number back to the other system.", default="international",
             choices=("international", "national"))],
    phrase="put into international phone format",
    inverse=lambda a: ("identity", {}) if a["write_back_as"] == "international" else ("phone_national", {"region": a["region"]}),
)
def _phone(a: dict[str, Any]) -> Step:
    region: str = a["region"]
    return _normaliser(lambda v: ids.normalise_phone(v, region), "phone number")


@register(
    "phone_national", "uk identifiers", "Writes a phone number the way it is dialled inside the country (07911 123456).",
    [Example("+447911123456", "07911 123456")],
    [ArgSpec("region", "string", "The country the number is in.", default="GB")],
    phrase="written as a national phone number", inverse=lambda a: ("phone_e164", {"region": a["region"]}),
)
def _phone_national(a: dict[str, Any]) -> Step:
    region: str = a["region"]
    return _normaliser(lambda v: ids.format_phone_national(v, region), "phone number")


@register("sort_code", "uk identifiers", "Tidies a bank sort code to 12-34-56.", [Example("123456", "12-34-56")],
          phrase="tidied as a sort code", inverse=_same)
def _sort_code(_a: dict[str, Any]) -> Step:
    return _normaliser(ids.normalise_sort_code, "sort code")


@register("account_number", "uk identifiers", "Tidies a UK bank account number to 8 digits.",
          [Example("1234 5678", "12345678")], phrase="tidied as a bank account number", inverse=_same)
def _account(_a: dict[str, Any]) -> Step:
    return _normaliser(ids.normalise_account_number, "bank account number")
