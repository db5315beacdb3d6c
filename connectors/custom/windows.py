"""``rolling_window`` paginator: a date window around today, with offset paging inside it.

Rota APIs list shifts, attendance and leave only for a time window the caller names (RotaCloud
``start``/``end`` in Unix seconds, When I Work ``start``/``end`` date-times, Planday ``from``/``to``
dates) and offer no "changed since" filter. A sync therefore re-reads a rolling window: ``days_back``
before today to ``days_ahead`` after it, fixed when the read starts so a checkpoint resumes in the same
window.

Options:
    start_param / end_param: query parameters of the window (``start``/``end``).
    format: ``epoch`` (Unix seconds), ``date`` (YYYY-MM-DD), ``iso`` (``2026-11-28T00:00:00Z``) or
        ``iso_offset`` (``2026-11-28T00:00:00+00:00``).
    days_back / days_ahead: the window around today (defaults 28 and 56).
    offset_param / limit_param: offset paging inside the window; leave ``offset_param`` out when the
        vendor returns the whole window at once.
    total_path: JMESPath to the total count in the body (Planday ``paging.total``), optional.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jmespath

from connectors.auth import OutgoingRequest
from connectors.paginators import Paginator


def _format(ts: int, fmt: str) -> str:
    dt = datetime.fromtimestamp(ts, tz=UTC)
    if fmt == "epoch":
        return str(ts)
    if fmt == "date":
        return dt.date().isoformat()
    if fmt == "iso_offset":
        return dt.isoformat(timespec="seconds")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class RollingWindowPaginator(Paginator):
    """Offset pages of a date window around today (the window is part of the checkpoint)."""

    type_name = "rolling_window"

    @property
    def _opts(self) -> dict[str, Any]:
        return dict(self.spec.options)

    def initial(self) -> dict[str, Any]:
        opts = self._opts
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=int(opts.get("days_back", 28)))
        end = today + timedelta(days=int(opts.get("days_ahead", 56)))
        return {"start": int(start.timestamp()), "end": int(end.timestamp()) - 1, "offset": 0}

    def prepare(self, request: OutgoingRequest) -> None:
        opts = self._opts
        fmt = str(opts.get("format", "epoch"))
        request.params[str(opts.get("start_param", "start"))] = _format(int(self.pos["start"]), fmt)
        request.params[str(opts.get("end_param", "end"))] = _format(int(self.pos["end"]), fmt)
        if opts.get("offset_param"):
            request.params[str(opts["offset_param"])] = str(int(self.pos.get("offset", 0)))
        if opts.get("limit_param"):
            request.params[str(opts["limit_param"])] = str(self.spec.page_size)

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        opts = self._opts
        if not opts.get("offset_param") or len(records) < self.spec.page_size:
            return False
        offset = int(self.pos.get("offset", 0)) + len(records)
        if opts.get("total_path"):
            total = jmespath.search(str(opts["total_path"]), body)
            if total is not None and offset >= int(total):
                return False
        self.pos = {**self.pos, "offset": offset}
        return True
