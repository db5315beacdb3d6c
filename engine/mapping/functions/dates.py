"""Dates and times: ISO, UK day-first, US month-first, unix seconds/ms, .NET ``/Date(ms+0000)/``.

Times without a zone are read as Europe/London wall-clock time (so BST is honoured);
outputs are ISO 8601 dates or date-times with the London offset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil import parser as dateutil_parser

from engine.mapping.errors import StepError
from engine.mapping.functions.registry import ArgSpec, Example, Step, register

LONDON = ZoneInfo("Europe/London")
FORMATS = ("iso", "uk", "us", "unix", "unix_ms", "dotnet", "text")
_DMY = re.compile(r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$")
_DOTNET = re.compile(r"^/Date\((-?\d{1,15})([+-]\d{4})?\)/$")
_NUMBER = re.compile(r"^-?\d{1,16}(\.\d{1,9})?$")
_DESCRIBE = {
    "iso": "an ISO date", "uk": "a UK-style date (day first)", "us": "a US-style date (month first)",
    "unix": "a unix timestamp in seconds", "unix_ms": "a unix timestamp in milliseconds",
    "dotnet": "a .NET JSON date", "text": "a written date",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _year(text: str) -> int:
    y = int(text)
    if len(text) == 2:
        y += 2000 if y < 50 else 1900
    return y


def parse_instant(value: Any, fmt: str, tz: ZoneInfo = LONDON) -> datetime:
    """Parse ``value`` written in ``fmt`` into an aware datetime (naive input read in ``tz``)."""
    try:
        if fmt in ("unix", "unix_ms"):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise StepError(f"{value!r} is not {_DESCRIBE[fmt]}")
            if isinstance(value, str):
                if not _NUMBER.match(value.strip()):
                    raise StepError(f"{value!r} is not {_DESCRIBE[fmt]}")
                number: float | int = float(value) if "." in value else int(value)
            else:
                number = value
            if fmt == "unix_ms":
                return (_EPOCH + timedelta(milliseconds=number)).astimezone(tz)
            return (_EPOCH + timedelta(seconds=number)).astimezone(tz)
        if not isinstance(value, str):
            if isinstance(value, datetime):
                return value if value.tzinfo else value.replace(tzinfo=tz)
            if isinstance(value, date):
                return datetime(value.year, value.month, value.day, tzinfo=tz)
            raise StepError(f"{value!r} is not {_DESCRIBE[fmt]}")
        text = value.strip()
        if len(text) > 64:
            raise StepError("the date text is too long")
        if fmt == "dotnet":
            m = _DOTNET.match(text)
            if not m:
                raise StepError(f"{value!r} is not {_DESCRIBE[fmt]}")
            return (_EPOCH + timedelta(milliseconds=int(m.group(1)))).astimezone(tz)
        if fmt in ("uk", "us"):
            m = _DMY.match(text)
            if not m:
                raise StepError(f"{value!r} is not {_DESCRIBE[fmt]}")
            a, b, y = int(m.group(1)), int(m.group(2)), _year(m.group(3))
            day, month = (a, b) if fmt == "uk" else (b, a)
            hh, mm, ss = int(m.group(4) or 0), int(m.group(5) or 0), int(m.group(6) or 0)
            return datetime(y, month, day, hh, mm, ss, tzinfo=tz)
        if fmt == "iso":
            if len(text) == 10:
                d = date.fromisoformat(text)
                return datetime(d.year, d.month, d.day, tzinfo=tz)
            dt = datetime.fromisoformat(text)
        else:
            dt = dateutil_parser.parse(text, dayfirst=True)
        return dt if dt.tzinfo else dt.replace(tzinfo=tz)
    except StepError:
        raise
    except (ValueError, OverflowError) as exc:
        raise StepError(f"{value!r} is not {_DESCRIBE.get(fmt, 'a date')} ({exc})") from None


def _iso_datetime(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds" if dt.microsecond else "seconds")


def format_instant(dt: datetime, fmt: str, as_date: bool) -> Any:
    """Write an aware datetime in ``fmt`` (a date-only value when ``as_date``)."""
    if fmt == "iso":
        return dt.date().isoformat() if as_date else _iso_datetime(dt)
    if fmt == "uk":
        return dt.strftime("%d/%m/%Y") if as_date else dt.strftime("%d/%m/%Y %H:%M:%S")
    if fmt == "us":
        return dt.strftime("%m/%d/%Y") if as_date else dt.strftime("%m/%d/%Y %H:%M:%S")
    ms = (dt - _EPOCH) // timedelta(milliseconds=1)
    if fmt == "unix":
        return ms // 1000 if ms % 1000 == 0 else ms / 1000
    if fmt == "unix_ms":
        return ms
    if fmt == "dotnet":
        return f"/Date({ms}+0000)/"
    raise StepError(f"cannot write dates as {fmt!r}")


_FROM = ArgSpec("from", "string", "How the source writes dates.", default="iso", choices=FORMATS)
_TZ = ArgSpec("timezone", "string", "The zone for times written without one.", default="Europe/London")
_TO = ArgSpec("to", "string", "How the other system writes dates.", default="iso", choices=FORMATS[:-1])


def _zone(a: dict[str, Any]) -> ZoneInfo:
    try:
        return ZoneInfo(str(a.get("timezone") or "Europe/London"))
    except (KeyError, ValueError):
        raise StepError(f"unknown time zone {a.get('timezone')!r}") from None


@register(
    "to_date", "dates", "Reads a date written in the source's style and gives an ISO date (YYYY-MM-DD).",
    [Example("03/04/2024", "2024-04-03", {"from": "uk"}), Example("04/03/2024", "2024-04-03", {"from": "us"}),
     Example("/Date(1518685950940+0000)/", "2018-02-15", {"from": "dotnet"}),
     Example(1719788400, "2024-07-01", {"from": "unix"}), Example("2024-06-30T23:30:00Z", "2024-07-01", {"from": "iso"})],
    [_FROM, _TZ],
    phrase=lambda a: f"read as {_DESCRIBE[a['from']].replace('a date', 'date').replace('an ISO date', 'ISO date')}",
    inverse=lambda a: ("format_date", {"to": a["from"]}) if a["from"] in ("iso", "uk", "us") else None,
)
def _to_date(a: dict[str, Any]) -> Step:
    fmt: str = a["from"]
    tz = _zone(a)
    if fmt == "iso":
        def iso_date(v: Any, _r: Mapping[str, Any]) -> Any:
            if isinstance(v, str) and len(v) == 10 and v[4] == "-" and v[7] == "-":
                try:
                    return date.fromisoformat(v).isoformat()
                except ValueError:
                    raise StepError(f"{v!r} is not a real date") from None
            return parse_instant(v, fmt, tz).astimezone(tz).date().isoformat()

        return iso_date
    if fmt in ("uk", "us"):
        dayfirst = fmt == "uk"

        def dmy_date(v: Any, _r: Mapping[str, Any]) -> Any:
            m = _DMY.match(v) if isinstance(v, str) and len(v) <= 64 else None
            if m is None or m.group(4) is not None:
                return parse_instant(v, fmt, tz).astimezone(tz).date().isoformat()
            a, b = int(m.group(1)), int(m.group(2))
            try:
                return date(_year(m.group(3)), b if dayfirst else a, a if dayfirst else b).isoformat()
            except ValueError:
                raise StepError(f"{v!r} is not {_DESCRIBE[fmt]}") from None

        return dmy_date
    return lambda v, _r: parse_instant(v, fmt, tz).astimezone(tz).date().isoformat()


@register(
    "to_datetime", "dates",
    "Reads a date and time written in the source's style and gives an ISO date-time in UK time (BST in summer).",
    [Example("01/07/2024 09:00", "2024-07-01T09:00:00+01:00", {"from": "uk"}),
     Example(1704099600, "2024-01-01T09:00:00+00:00", {"from": "unix"}),
     Example(1719820800000, "2024-07-01T09:00:00+01:00", {"from": "unix_ms"}),
     Example("/Date(1719820800000+0000)/", "2024-07-01T09:00:00+01:00", {"from": "dotnet"})],
    [_FROM, _TZ],
    phrase=lambda a: f"read as {_DESCRIBE[a['from']].replace('date', 'date and time')}",
    inverse=lambda a: ("format_datetime", {"to": a["from"]}) if a["from"] != "text" else None,
)
def _to_datetime(a: dict[str, Any]) -> Step:
    fmt: str = a["from"]
    tz = _zone(a)
    return lambda v, _r: _iso_datetime(parse_instant(v, fmt, tz).astimezone(tz))


@register(
    "format_date", "dates", "Writes an ISO date in another system's style.",
    [Example("2024-04-03", "03/04/2024", {"to": "uk"}), Example("2024-04-03", "04/03/2024", {"to": "us"})],
    [_TO], phrase=lambda a: f"written as {_DESCRIBE[a['to']]}",
    inverse=lambda a: ("to_date", {"from": a["to"]}) if a["to"] in ("iso", "uk", "us") else None,
)
def _format_date(a: dict[str, Any]) -> Step:
    fmt: str = a["to"]
    return lambda v, _r: format_instant(parse_instant(v, "iso"), fmt, as_date=True)


@register(
    "format_datetime", "dates", "Writes an ISO date-time in another system's style.",
    [Example("2024-07-01T09:00:00+01:00", "/Date(1719820800000+0000)/", {"to": "dotnet"}),
     Example("2024-07-01T09:00:00+01:00", 1719820800, {"to": "unix"})],
    [_TO, _TZ], phrase=lambda a: f"written as {_DESCRIBE[a['to']].replace('date', 'date and time')}",
    inverse=lambda a: ("to_datetime", {"from": a["to"], "timezone": a["timezone"]}),
)
def _format_datetime(a: dict[str, Any]) -> Step:
    fmt: str = a["to"]
    tz = _zone(a)
    return lambda v, _r: format_instant(parse_instant(v, "iso", tz).astimezone(tz), fmt, as_date=False)
