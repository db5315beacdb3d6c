"""When an integration syncs next, from its sync frequency.

Frequencies (``SyncConfiguration.sync_frequency``): ``{"kind": "manual"}``, ``{"kind": "minutes",
"every": 15}``, ``{"kind": "hourly", "minute": 5}``, ``{"kind": "daily", "at": "02:30"}``,
``{"kind": "cron", "expression": "*/10 * * * *"}``. Times are UTC unless ``"timezone"`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter


class ScheduleError(ValueError):
    """The frequency cannot be understood; the message says what is expected."""


def _tz(freq: Mapping[str, Any]) -> ZoneInfo | None:
    name = freq.get("timezone")
    return ZoneInfo(str(name)) if name else None


def next_run_at(freq: Mapping[str, Any] | None, after: datetime) -> datetime | None:
    """The first scheduled time strictly after ``after`` (aware UTC), or None for manual syncs."""
    freq = freq or {}
    kind = str(freq.get("kind") or freq.get("type") or "manual").lower()
    after = after.astimezone(UTC) if after.tzinfo else after.replace(tzinfo=UTC)
    tz = _tz(freq)
    local = after.astimezone(tz) if tz else after
    if kind in ("manual", "webhook", "none"):
        return None
    if kind in ("minutes", "every", "interval", "realtime"):
        every = int(freq.get("every") or freq.get("minutes") or 15)
        if every < 1:
            raise ScheduleError("`every` must be at least 1 minute")
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        n = int((after - epoch).total_seconds() // (every * 60)) + 1
        return epoch + timedelta(minutes=every * n)
    if kind == "hourly":
        minute = int(freq.get("minute", 0))
        cand = local.replace(minute=minute, second=0, microsecond=0)
        if cand <= local:
            cand += timedelta(hours=1)
        return cand.astimezone(UTC)
    if kind == "daily":
        at = str(freq.get("at") or freq.get("time") or "02:00")
        try:
            hh, mm = (int(x) for x in at.split(":")[:2])
        except ValueError as exc:
            raise ScheduleError(f"daily `at` must look like 02:30, got {at!r}") from exc
        cand = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if cand <= local:
            cand = (cand + timedelta(days=1)).replace(hour=hh, minute=mm)
        return cand.astimezone(UTC)
    if kind == "cron":
        expr = str(freq.get("expression") or freq.get("cron") or "")
        if not croniter.is_valid(expr):
            raise ScheduleError(f"not a cron expression: {expr!r}")
        nxt: datetime = croniter(expr, local).get_next(datetime)
        return nxt.astimezone(UTC)
    raise ScheduleError(f"unknown sync frequency kind {kind!r}: use manual, minutes, hourly, daily or cron")


def is_due(freq: Mapping[str, Any] | None, next_sync: datetime | None, now: datetime) -> bool:
    """True when a scheduled integration should run now (never for manual ones)."""
    if next_run_at(freq, now) is None:
        return False
    if next_sync is None:
        return True
    ns = next_sync if next_sync.tzinfo else next_sync.replace(tzinfo=UTC)
    return ns <= now
