"""Numbers and money: rounding, pounds <-> pence, VAT at 20/5/0 %, multiply/divide."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from engine.mapping.errors import StepError
from engine.mapping.functions.registry import ArgSpec, Example, Step, register

VAT_RATES = (20, 5, 0)
_MAX_DIGITS = 30


def to_decimal(v: Any) -> Decimal:
    """Read a number from an int, float or text such as ``'£1,234.50'``; StepError otherwise."""
    if isinstance(v, bool):
        raise StepError(f"{v!r} is not a number")
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise StepError(f"{v!r} is not a number")
        return Decimal(repr(v))
    if isinstance(v, Decimal):
        return v
    if isinstance(v, str):
        text = v.strip().replace(",", "").replace("£", "").replace(" ", "")
        if text.startswith("(") and text.endswith(")"):
            text = "-" + text[1:-1]
        if not text or len(text) > _MAX_DIGITS:
            raise StepError(f"{v!r} is not a number")
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise StepError(f"{v!r} is not a number") from None
        if not d.is_finite():
            raise StepError(f"{v!r} is not a number")
        return d
    raise StepError(f"{v!r} is not a number")


def _whole(d: Decimal) -> int:
    return int(d.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _number_out(d: Decimal) -> int | float:
    return int(d) if d == d.to_integral_value() else float(d)


@register("to_integer", "numbers", "Turns a number or numeric text into a whole number (rounding halves up).",
          [Example("37", 37), Example(7.5, 8)], phrase="as a whole number")
def _to_integer(_a: dict[str, Any]) -> Step:
    return lambda v, _r: v if type(v) is int else _whole(to_decimal(v))


@register("to_number", "numbers", "Turns numeric text into a number.", [Example("37.5", 37.5), Example("40", 40)],
          phrase="as a number", inverse=lambda _a: ("identity", {}))
def _to_number(_a: dict[str, Any]) -> Step:
    return lambda v, _r: v if type(v) in (int, float) else _number_out(to_decimal(v))


@register(
    "round", "numbers", "Rounds a number to some decimal places (halves go up).",
    [Example(2.345, 2.35, {"digits": 2}), Example(7.5, 8)],
    [ArgSpec("digits", "integer", "How many decimal places to keep.", default=0)],
    phrase=lambda a: f"rounded to {a['digits']} decimal places",
)
def _round(a: dict[str, Any]) -> Step:
    digits: int = a["digits"]
    if not 0 <= digits <= 10:
        raise StepError("round keeps between 0 and 10 decimal places")
    q = Decimal(1).scaleb(-digits)
    return lambda v, _r: _number_out(to_decimal(v).quantize(q, rounding=ROUND_HALF_UP))


@register(
    "pounds_to_pence", "money", "Turns an amount in pounds (12.34 or '£1,234.56') into whole pence (1234).",
    [Example("12.34", 1234), Example(1234.5, 123450), Example("£1,000.00", 100000), Example(-7.5, -750)],
    phrase="converted from pounds to pence", inverse=lambda _a: ("pence_to_pounds", {}),
)
def _p2p(_a: dict[str, Any]) -> Step:
    hundred = Decimal(100)
    return lambda v, _r: _whole(to_decimal(v) * hundred)


@register(
    "pence_to_pounds", "money", "Turns whole pence (1234) into pounds (12.34).",
    [Example(1234, 12.34), Example(100000, 1000), Example(1234, "12.34", {"as_text": True})],
    [ArgSpec("as_text", "boolean", "Give text with two decimal places instead of a number.", default=False)],
    phrase="converted from pence to pounds", inverse=lambda _a: ("pounds_to_pence", {}),
)
def _pence2pounds(a: dict[str, Any]) -> Step:
    as_text: bool = a["as_text"]
    cent = Decimal("0.01")

    def p2p(v: Any, _r: Mapping[str, Any]) -> Any:
        d = (to_decimal(v) / 100).quantize(cent)
        return f"{d:.2f}" if as_text else _number_out(d)

    return p2p


_RATE = ArgSpec("rate", "integer", "The VAT rate in percent.", default=20, choices=VAT_RATES)


@register(
    "add_vat", "money", "Adds VAT to a net amount in pence (rounding halves up).",
    [Example(1000, 1200), Example(1000, 1050, {"rate": 5}), Example(999, 999, {"rate": 0})],
    [_RATE], phrase=lambda a: f"with VAT at {a['rate']}% added", inverse=lambda a: ("remove_vat", {"rate": a["rate"]}),
)
def _add_vat(a: dict[str, Any]) -> Step:
    factor = Decimal(100 + a["rate"]) / 100
    return lambda v, _r: _whole(to_decimal(v) * factor)


@register(
    "remove_vat", "money", "Takes VAT off a gross amount in pence, leaving the net amount.",
    [Example(1200, 1000), Example(1050, 1000, {"rate": 5})],
    [_RATE], phrase=lambda a: f"with VAT at {a['rate']}% taken off", inverse=lambda a: ("add_vat", {"rate": a["rate"]}),
)
def _remove_vat(a: dict[str, Any]) -> Step:
    factor = Decimal(100 + a["rate"]) / 100
    return lambda v, _r: _whole(to_decimal(v) / factor)


_FACTOR = ArgSpec("factor", "number", "The number to multiply or divide by (not zero).", required=True)


@register("multiply", "numbers", "Multiplies by a number, e.g. hours to minutes with 60.",
          [Example(1.5, 90, {"factor": 60})], [_FACTOR], phrase=lambda a: f"multiplied by {a['factor']}",
          inverse=lambda a: ("divide", {"factor": a["factor"]}))
def _multiply(a: dict[str, Any]) -> Step:
    factor = to_decimal(a["factor"])
    if factor == 0:
        raise StepError("multiply by zero loses the value")
    return lambda v, _r: _number_out(to_decimal(v) * factor)


@register("divide", "numbers", "Divides by a number, e.g. minutes to hours with 60.",
          [Example(90, 1.5, {"factor": 60})], [_FACTOR], phrase=lambda a: f"divided by {a['factor']}",
          inverse=lambda a: ("multiply", {"factor": a["factor"]}))
def _divide(a: dict[str, Any]) -> Step:
    factor = to_decimal(a["factor"])
    if factor == 0:
        raise StepError("cannot divide by zero")
    return lambda v, _r: _number_out(to_decimal(v) / factor)
