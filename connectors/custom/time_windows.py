"""Reads in consecutive time windows with page numbers inside each window (Cornerstone Transcript Search:
at most 24 hours per call, 50 records a page, ``pageNumber`` from 1).

Options:
    start_param / end_param: the window's query parameters (``ModificationStartDate``/``ModificationEndDate``).
    window_hours: the longest window the vendor accepts.
    page_param: the page number parameter (pages count from 1); a page shorter than ``page_size`` ends the window.
    from_param: a request parameter (rendered from the connection's settings, then removed) giving where the first
        read starts (``2026-10-01``); the incremental cursor (``incremental: {type: paginator}``) wins when set.
    format: how times are written, ``iso_z`` (``2026-10-01T00:00:00Z``) or ``iso``.

The window runs up to the time the read started, so a read always ends; the next read starts at the newest
change seen, and the engine's content hashes drop the records seen twice at the boundary.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.auth import OutgoingRequest
from connectors.paginators import Paginator


def _parse(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class TimeWindowPaginator(Paginator):
    """Consecutive windows of at most ``window_hours``, page numbers within each."""

    type_name = "time_windows"

    def initial(self) -> dict[str, Any]:
        return {}

    @property
    def _opts(self) -> dict[str, Any]:
        return dict(self.spec.options)

    def _fmt(self, dt: datetime) -> str:
        if self._opts.get("format", "iso_z") == "iso_z":
            return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")

    def _start(self, request: OutgoingRequest) -> datetime:
        configured = request.params.pop(str(self._opts.get("from_param", "from")), "")
        if self.pos.get("start"):
            return _parse(str(self.pos["start"]))
        if self.since:
            return _parse(self.since)
        if configured:
            return _parse(configured)
        return datetime.now(UTC) - timedelta(hours=float(self._opts.get("window_hours", 24)))

    def _window(self, request: OutgoingRequest) -> tuple[datetime, datetime, datetime]:
        start = self._start(request)
        until = _parse(str(self.pos["until"])) if self.pos.get("until") else datetime.now(UTC)
        end = min(start + timedelta(hours=float(self._opts.get("window_hours", 24))), until)
        return start, end, until

    def prepare(self, request: OutgoingRequest) -> None:
        start, end, until = self._window(request)
        if not self.pos.get("start"):
            self.pos = {"start": start.isoformat(), "until": until.isoformat(), "page": 1}
        request.params[str(self._opts.get("start_param", "start"))] = self._fmt(start)
        request.params[str(self._opts.get("end_param", "end"))] = self._fmt(end)
        request.params[str(self._opts.get("page_param", "pageNumber"))] = str(self.pos.get("page", 1))

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        _, end, until = self._window(request)
        if len(records) >= int(self.spec.page_size):
            self.pos = {**self.pos, "page": int(self.pos.get("page", 1)) + 1}
            return True
        if end >= until:
            return False
        self.pos = {"start": end.isoformat(), "until": until.isoformat(), "page": 1}
        return True
