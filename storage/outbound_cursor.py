"""The outbound cursor: how far an integration has read the care record versions, and the gaps below it.

A cursor is ``{"version_id": N, "gaps": {"id": first seen (epoch seconds), ...}}``. On PostgreSQL a version
id is taken when its row is inserted and becomes visible only at commit, so a later id can be read first;
the ids still missing below ``N`` are kept as gaps and looked at again on every batch for ``GAP_SECONDS``
(the ids of rolled-back transactions never appear and are dropped then). On SQLite, one writer at a time,
versions appear in id order and gaps stay empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from storage.models import CareRecordVersion

GAP_SECONDS = 600.0  # how long a cursor waits for a version id taken by an uncommitted transaction
MAX_GAPS = 500
# Only the ids this close below a batch's newest can still be in flight: a transaction commits at most a
# group of versions (5,000) while later ones are read; this leaves a wide margin.
GAP_WINDOW = 50_000


def cursor_gaps(cursor: Mapping[str, Any] | None, now: float) -> dict[int, float]:
    """The gaps of ``cursor`` still worth waiting for at ``now``."""
    stored = (cursor or {}).get("gaps") or {}
    return {int(k): float(t) for k, t in stored.items() if now - float(t) < GAP_SECONDS}


def version_cursor(version_id: int, gaps: Mapping[int, float]) -> dict[str, Any]:
    """The cursor to store: read up to ``version_id``, with ``gaps`` below it still to come."""
    cursor: dict[str, Any] = {"version_id": version_id}
    if gaps:
        cursor["gaps"] = {str(i): t for i, t in gaps.items()}
    return cursor


def open_gaps(s: Session, after: int, top: int, gaps: dict[int, float], now: float) -> dict[int, float]:
    """``gaps`` without the ids that have appeared, plus the ids missing in ``(after, top]`` (first seen ``now``)."""
    ver = col(CareRecordVersion.id)
    if gaps:
        seen = set(s.execute(select(ver).where(ver.in_(sorted(gaps)))).scalars())
        gaps = {i: t for i, t in gaps.items() if i not in seen}
    low = max(after, top - GAP_WINDOW)
    if top > low:
        present = int(s.execute(select(func.count()).where(ver > low, ver <= top)).scalar_one())
        if present < top - low:
            have = set(s.execute(select(ver).where(ver > low, ver <= top)).scalars())
            fresh = [i for i in range(low + 1, top + 1) if i not in have]
            gaps.update({i: now for i in fresh[-MAX_GAPS:]})
    return dict(sorted(gaps.items())[-MAX_GAPS:])
