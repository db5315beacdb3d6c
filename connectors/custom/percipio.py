"""Skillsoft Percipio: offset/max paging with the total in a response header, and the asynchronous
learning-activity report.

* ``percipio_offset`` (paginator): ``offset``/``max`` query parameters; the API answers a bare JSON array and
  puts the number of matching rows in ``x-total-count``. The catalog (content discovery v2) also answers an
  ``x-paging-request-id`` header that every later page must send back as ``pagingRequestId`` (a snapshot of
  the catalog, so pages do not shift while it is read).
* ``percipio_report`` (reader): the learning-activity report is a job. ``POST .../report-requests/
  learning-activity`` with a date window answers ``{id, status}``; ``GET .../report-requests/{id}`` answers a
  status object while the report is being built and the array of rows once it is ready. The poll waits grow
  (``poll_seconds`` times ``poll_factor``, at most ``max_poll_seconds``) until ``deadline_seconds`` have passed
  since the request; a ``FAILED`` report (or ``ERROR``/``CANCELLED``) ends the read with the vendor's reason.
  The stream is read in consecutive windows of at most ``window_days`` up to the time the read started, and
  each window's page carries the window's end as the checkpoint, so the next read asks only for newer
  activity. A paginator cannot wait between polls, so :class:`PercipioSession` (registered for ``percipio`` in
  ``connectors.sessions``) runs the report; the plain runtime refuses the stream with a clear message.

Report options (``paginator.options``):
    poll_path: the status path with ``{id}`` (``/reporting/v1/organizations/{config.org_id}/report-requests/{id}``).
    from_config: the connection setting giving where the first read starts (a date); otherwise ``initial_days``
        before now.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from connectors.auth import OutgoingRequest
from connectors.errors import ConnectorError
from connectors.manifest import CustomPaginator, StreamSpec
from connectors.paginators import Paginator, register_paginator
from connectors.runtime import ConnectorSession, _render_obj, parse_timestamp
from connectors.templating import render_map
from engine.ports import ReadPage, SourceRecord

FAILED_STATUSES = frozenset({"FAILED", "ERROR", "CANCELLED", "CANCELED"})
REPORT_PAGINATOR = "percipio_report"


class PercipioOffsetPaginator(Paginator):
    """``offset``/``max`` paging; stops at ``x-total-count`` or a short page; echoes ``x-paging-request-id``.

    Options: ``offset_param`` (offset), ``limit_param`` (max), ``total_header`` (x-total-count),
    ``paging_header`` (x-paging-request-id) and ``paging_param`` (pagingRequestId).
    """

    type_name = "percipio_offset"

    def initial(self) -> dict[str, Any]:
        return {"offset": 0}

    def _opt(self, name: str, default: str) -> str:
        return str(self.spec.options.get(name, default))

    def prepare(self, request: OutgoingRequest) -> None:
        request.params[self._opt("offset_param", "offset")] = str(int(self.pos.get("offset", 0)))
        request.params[self._opt("limit_param", "max")] = str(self.spec.page_size)
        if self.pos.get("paging_id"):
            request.params[self._opt("paging_param", "pagingRequestId")] = str(self.pos["paging_id"])

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        offset = int(self.pos.get("offset", 0)) + len(records)
        paging_id = response.headers.get(self._opt("paging_header", "x-paging-request-id")) or self.pos.get(
            "paging_id")
        total_text = response.headers.get(self._opt("total_header", "x-total-count"))
        total = int(total_text) if total_text and total_text.strip().isdigit() else None
        if not records or len(records) < int(self.spec.page_size) or (total is not None and offset >= total):
            return False
        self.pos = {"offset": offset, **({"paging_id": str(paging_id)} if paging_id else {})}
        return True


class PercipioReportPaginator(Paginator):
    """Marks a stream as the asynchronous report; only :class:`PercipioSession` can read it."""

    type_name = REPORT_PAGINATOR

    def prepare(self, request: OutgoingRequest) -> None:
        raise ConnectorError("Percipio's learning-activity report is asynchronous (request, wait, collect): read "
                             "it through the Percipio session (connectors.sessions.open_session), not the plain "
                             "ConnectorSession")


@dataclass(frozen=True)
class ReportOptions:
    """How the report is requested and waited for."""

    poll_path: str
    poll_seconds: float = 5.0
    poll_factor: float = 2.0
    max_poll_seconds: float = 60.0
    deadline_seconds: float = 1800.0
    window_days: int = 30
    initial_days: int = 365
    from_config: str = "activity_from"

    @classmethod
    def of(cls, spec: CustomPaginator) -> ReportOptions:
        """Options from the stream's paginator (unknown keys are ignored)."""
        o = dict(spec.options)
        if not o.get("poll_path"):
            raise ConnectorError("the percipio_report paginator needs options.poll_path with {id}")
        return cls(poll_path=str(o["poll_path"]), poll_seconds=float(o.get("poll_seconds", 5.0)),
                   poll_factor=float(o.get("poll_factor", 2.0)),
                   max_poll_seconds=float(o.get("max_poll_seconds", 60.0)),
                   deadline_seconds=float(o.get("deadline_seconds", 1800.0)),
                   window_days=max(1, int(o.get("window_days", 30))),
                   initial_days=max(1, int(o.get("initial_days", 365))),
                   from_config=str(o.get("from_config", "activity_from")))


class ReportFailed(ConnectorError):
    """Percipio could not build the report (its own status and reason are in the message)."""


def _zulu(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PercipioSession(ConnectorSession):
    """The manifest runtime, plus the asynchronous learning-activity report for ``percipio_report`` streams."""

    report_polls: int = 0

    async def read(self, stream: str, checkpoint: dict[str, Any] | None = None) -> AsyncIterator[ReadPage]:
        """Read a stream; the report streams run report jobs window by window, the others page as usual."""
        spec = self.stream(stream)
        pag = spec.paginator
        if isinstance(pag, CustomPaginator) and pag.name == REPORT_PAGINATOR:
            async for page in self._read_report(spec, ReportOptions.of(pag), dict(checkpoint or {})):
                yield page
            return
        async for page in super().read(stream, checkpoint):
            yield page

    def _first_start(self, opts: ReportOptions, cp: dict[str, Any], now: datetime) -> datetime:
        for value in (cp.get("since"), self.config.get(opts.from_config)):
            parsed = parse_timestamp(value) if value else None
            if parsed is not None:
                return parsed
        return now - timedelta(days=opts.initial_days)

    async def _read_report(self, spec: StreamSpec, opts: ReportOptions,
                           cp: dict[str, Any]) -> AsyncIterator[ReadPage]:
        now = datetime.now(UTC).replace(microsecond=0)
        start = self._first_start(opts, cp, now)
        if start >= now:  # read again straight away: nothing new can have happened
            yield ReadPage([], {"since": _zulu(start)})
            return
        while start < now:
            end = min(start + timedelta(days=opts.window_days), now)
            rows = await self.run_report(spec, opts, start, end)
            records: list[SourceRecord] = [self._to_record(spec, r) for r in rows if isinstance(r, dict)]
            yield ReadPage(records, {"since": _zulu(end)})
            start = end

    async def run_report(self, spec: StreamSpec, opts: ReportOptions, start: datetime,
                         end: datetime) -> list[Any]:
        """Request the report of one window, wait until it is ready and return its rows."""
        headers = render_map(spec.headers, self._ctx)
        body = {**(_render_obj(spec.body, self._ctx) if isinstance(spec.body, dict) else {}),
                "start": _zulu(start), "end": _zulu(end)}
        submit_url = self._url(spec.path)
        resp = await self.request(lambda: OutgoingRequest("POST", submit_url, {}, dict(headers), copy.deepcopy(body)))
        reply = resp.json() if resp.content else {}
        report_id = reply.get("id") if isinstance(reply, dict) else None
        if not report_id:
            raise ConnectorError(f"{self.manifest.name} accepted the learning-activity report request but sent no "
                                 f"report id: {str(reply)[:200]}")
        poll_url = self._url(opts.poll_path.replace("{id}", quote(str(report_id), safe="")))
        began = time.monotonic()
        wait = opts.poll_seconds
        while True:
            resp = await self.request(lambda: OutgoingRequest("GET", poll_url, {}, dict(headers)))
            self.report_polls += 1
            body_now = resp.json() if resp.content else []
            if isinstance(body_now, list):
                return body_now
            status = str(body_now.get("status", "")).upper() if isinstance(body_now, dict) else ""
            if not status:
                raise ConnectorError(f"{self.manifest.name} answered the report poll with neither rows nor a "
                                     f"status: {str(body_now)[:200]}")
            if status in FAILED_STATUSES:
                reason = body_now.get("error") or body_now.get("message") or "no reason given"
                raise ReportFailed(f"{self.manifest.name} could not build the learning-activity report {report_id} "
                                   f"for {_zulu(start)} to {_zulu(end)}: status {status}: {reason}")
            elapsed = time.monotonic() - began
            pause = min(wait, opts.max_poll_seconds)
            if elapsed + pause > opts.deadline_seconds:
                failure = ConnectorError(f"{self.manifest.name}'s learning-activity report {report_id} was still "
                                         f"{status} after {elapsed:.0f} seconds (deadline {opts.deadline_seconds:.0f}"
                                         f" seconds); the next run asks again")
                failure.retryable = True
                raise failure
            self.stats.slept_seconds += pause
            await asyncio.sleep(pause)
            wait *= opts.poll_factor


register_paginator(PercipioOffsetPaginator.type_name, PercipioOffsetPaginator)
register_paginator(PercipioReportPaginator.type_name, PercipioReportPaginator)
