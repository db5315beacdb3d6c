"""Shiftboard sandbox: the JSON-RPC 2.0 API over signed HTTPS GETs (``/`` and ``/api/api.cgi``).

A call is ``GET /?access_key_id=…&jsonrpc=2.0&id=<n>&method=<rpc method>&params=<base64 JSON>&signature=…``;
the sandbox decodes ``params`` and recomputes base64(HMAC-SHA1(signature key, ``"method" + method + "params" +
<decoded JSON text>``)) itself before it answers (Shiftboard's clients ``shiftboard/python-api-client`` and
``shiftboard/postman-api-client`` sign that way). Replies are JSON-RPC objects: ``{"jsonrpc", "id", "result"}``
or ``{"jsonrpc", "id", "error": {"code", "message", "data": {"code", "message"}}}`` with HTTP 200, as the
official client expects (it raises on an ``error`` member). The numeric codes of ``error.data`` are this
sandbox's own (Shiftboard's list is not published): unconfirmed.

Methods: ``system.echo``, ``account.list``, ``workgroup.list``, ``timeclock.whosOn`` (members clocked in now,
one per covered shift running at this moment), ``shift.list`` (``select`` on ``start_date``/
``end_date`` dates, ``covering_member``, ``workgroup``, ``external_id``), ``shift.create`` and ``shift.update``.
Lists page with ``page: {start (from 1), batch}`` and answer ``{"count", "page": {"this", "next"?}, "<items>"}``.
Shift dates are local times (``start_date``, no offset) with a ``timezone``; shift ``i`` falls on day
``i // 3`` of a rota that starts 27 days before the sandbox was built, three shifts a day.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    CARE_HOMES,
    JOB_TITLES,
    Dataset,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
    pools,
    rng_for,
)

ACCESS_KEY_ID = "5f2c9e1a-4b7d-4c3e-9a61-0d8e7f6a5b41"
SIGNATURE_KEY = "sb-sandbox-signature-key-Qm3v8Xr2Lk9T"
FIRST_ACCOUNT = 100_001
FIRST_SHIFT = 5_000_001
FIRST_WORKGROUP = 7001
FIRST_LOCATION = 8001
MAX_BATCH = 1000
DAYS_BEFORE_TODAY = 27
TIMEZONE = "Europe/London"
# (start hour, start minute, end hour, end minute): early, late and night shifts
PATTERNS = ((7, 0, 15, 0), (14, 0, 22, 0), (21, 30, 7, 30))
SUBJECTS = ("Care Assistant", "Senior Care Assistant", "Registered Nurse", "Night Care Assistant")

_LOCAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
# error.data.code values of this sandbox (unconfirmed: Shiftboard does not publish its list)
ERR_AUTH = 1001  # unknown or revoked access key
ERR_SIGNATURE = 1002  # signature does not match the request
ERR_PARAMS = 2001  # params missing, not base64 JSON, or a field is wrong
ERR_NOT_FOUND = 2004  # no such record
ERR_RATE = 4029  # too many calls


def expected_signature(method: str, params_text: str, key: str = SIGNATURE_KEY) -> str:
    """What the sandbox expects in ``signature`` for a call (computed here, independent of the connector)."""
    digest = hmac.new(key.encode("utf-8"), ("method" + method + "params" + params_text).encode("utf-8"),
                      hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def rpc_error(call_id: Any, code: int, message: str, data_code: int, status: int = 200) -> JSONResponse:
    """A JSON-RPC error reply."""
    return JSONResponse({"jsonrpc": "2.0", "id": call_id,
                         "error": {"code": code, "message": message, "data": {"code": data_code, "message": message}}},
                        status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = rpc_error(None, -32000, "Too many API calls for this account; slow down and retry", ERR_RATE, status=429)
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def _int_ids(base: int) -> tuple[Callable[[int], str], Callable[[str], int | None]]:
    return (lambda i: str(base + i)), (lambda v: int(v) - base if v.isdigit() else None)


def _page(items: list[dict[str, Any]], total: int, start: int, batch: int, name: str) -> dict[str, Any]:
    page: dict[str, Any] = {"this": {"start": start, "batch": batch}}
    if start - 1 + len(items) < total:
        page["next"] = {"start": start + len(items), "batch": batch}
    return {"count": total, "page": page, name: items}


def _stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Shiftboard sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Shiftboard")
    seed = cfg.seed
    n_accounts = cfg.count("accounts", 60)
    first_day = datetime.now(UTC).date() - timedelta(days=DAYS_BEFORE_TODAY)
    workgroups = [{"id": str(FIRST_WORKGROUP + i), "name": f"{home} care team", "location": str(FIRST_LOCATION + i),
                   "description": f"Care and nursing staff rostered at {home}"} for i, home in enumerate(CARE_HOMES)]

    def account(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "accounts", i)
        p = pools(seed)
        first, last = r.choice(p.first_names), r.choice(p.last_names)
        return {"id": str(FIRST_ACCOUNT + i), "external_id": f"WC{i + 1:04d}", "first_name": first,
                "last_name": last, "screen_name": f"{first} {last[0]}.",
                "email": f"{first}.{last}{i}@willowcourt.example".lower().replace(" ", ""),
                "mobile_phone": f"07{r.randrange(700_000_000, 999_999_999)}", "title": r.choice(JOB_TITLES), "seniority_order": i + 1,
                "active": r.random() > 0.08, "created": _stamp(at), "updated": _stamp(at)}

    def shift(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "shifts", i)
        day = first_day + timedelta(days=i // len(PATTERNS))
        sh, sm, eh, em = PATTERNS[i % len(PATTERNS)]
        start = datetime(day.year, day.month, day.day, sh, sm)
        end = datetime(day.year, day.month, day.day, eh, em) + (timedelta(days=1) if eh < sh else timedelta())
        covered = r.random() > 0.12
        wg = r.randrange(len(workgroups))
        return {"id": str(FIRST_SHIFT + i), "subject": SUBJECTS[3] if sh >= 21 else r.choice(SUBJECTS[:3]),
                "workgroup": workgroups[wg]["id"], "location": workgroups[wg]["location"],
                "start_date": start.isoformat(timespec="seconds"), "end_date": end.isoformat(timespec="seconds"),
                "timezone": TIMEZONE, "covered": covered,
                "covering_member": str(FIRST_ACCOUNT + r.randrange(max(1, n_accounts))) if covered else None,
                "qty": 1, "details": "", "external_id": None, "created": _stamp(at), "updated": _stamp(at)}

    state.datasets = {
        "accounts": Dataset(n_accounts, account, *_int_ids(FIRST_ACCOUNT)),
        "shifts": Dataset(cfg.count("shifts", 230), shift, *_int_ids(FIRST_SHIFT)),
    }
    state.extra.update({"calls": [], "created": 0, "updated": 0, "next_shift": FIRST_SHIFT + cfg.count("shifts", 230)})
    app = FastAPI(title="Shiftboard sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def list_reply(call_id: Any, params: dict[str, Any], rows: Callable[[int, int], tuple[list[Any], int]],
                   name: str) -> JSONResponse:
        page = params.get("page") or {}
        try:
            start, batch = int(page.get("start", 1)), int(page.get("batch", 25))
        except (TypeError, ValueError, AttributeError):
            return rpc_error(call_id, -32602, "page.start and page.batch must be whole numbers", ERR_PARAMS)
        if start < 1 or not 1 <= batch <= MAX_BATCH:
            return rpc_error(call_id, -32602, f"page.start counts from 1 and page.batch is 1 to {MAX_BATCH}",
                             ERR_PARAMS)
        items, total = rows(start - 1, batch)
        return JSONResponse({"jsonrpc": "2.0", "id": call_id, "result": _page(items, total, start, batch, name)})

    def shift_filter(select: dict[str, Any]) -> Callable[[dict[str, Any]], bool] | None:
        lo, hi = select.get("start_date"), select.get("end_date")
        lo_d = date.fromisoformat(str(lo)[:10]) if lo else None
        hi_d = date.fromisoformat(str(hi)[:10]) if hi else None
        exact = {k: str(select[k]) for k in ("covering_member", "workgroup", "external_id", "id") if k in select}
        if lo_d is None and hi_d is None and not exact:
            return None

        def keep(row: dict[str, Any]) -> bool:
            day = date.fromisoformat(str(row["start_date"])[:10])
            if (lo_d and day < lo_d) or (hi_d and day > hi_d):
                return False
            return all(str(row.get(k)) == v for k, v in exact.items())

        return keep

    def create_shift(call_id: Any, params: dict[str, Any]) -> JSONResponse:
        missing = [f for f in ("workgroup", "start_date") if not params.get(f)]
        if missing:
            return rpc_error(call_id, -32602, f"Missing required parameter: {', '.join(missing)}", ERR_PARAMS)
        bad = _check_shift_fields(params)
        if bad:
            return rpc_error(call_id, -32602, bad, ERR_PARAMS)
        sid = str(state.extra["next_shift"])
        state.extra["next_shift"] += 1
        data = state.datasets["shifts"]
        now = datetime.now(UTC)
        record = {"id": sid, "subject": "", "location": None, "end_date": None, "timezone": TIMEZONE,
                  "covered": bool(params.get("covering_member")), "covering_member": None, "qty": 1, "details": "",
                  "external_id": None, **{k: v for k, v in params.items() if k != "id"},
                  "created": _stamp(now)}
        record["updated"] = _stamp(data.put(sid, record))
        state.extra["created"] += 1
        return JSONResponse({"jsonrpc": "2.0", "id": call_id, "result": {"id": sid}})

    def update_shift(call_id: Any, params: dict[str, Any]) -> JSONResponse:
        sid = str(params.get("id") or "")
        data = state.datasets["shifts"]
        current = data.get(sid) if sid else None
        if current is None:
            return rpc_error(call_id, -32602, f"Shift {sid or '(no id)'} was not found", ERR_NOT_FOUND)
        record = {**current, **{k: v for k, v in params.items() if k != "id"}}
        if "covering_member" in params:
            record["covered"] = bool(params["covering_member"])
        bad = _check_shift_fields(record)
        if bad:
            return rpc_error(call_id, -32602, bad, ERR_PARAMS)
        record["updated"] = _stamp(data.put(sid, record))
        state.extra["updated"] += 1
        return JSONResponse({"jsonrpc": "2.0", "id": call_id, "result": {}})

    def who_is_on() -> list[dict[str, Any]]:
        """Members clocked in now: one entry per covered shift running at this moment (UK wall-clock time)."""
        now_local = datetime.now(UTC).astimezone(ZoneInfo(TIMEZONE)).replace(tzinfo=None)
        out = []
        for row in state.datasets["shifts"].iter():
            if not row.get("covering_member") or not row.get("end_date"):
                continue
            start, end = datetime.fromisoformat(row["start_date"]), datetime.fromisoformat(row["end_date"])
            if not start <= now_local < end:
                continue
            clocked = start - timedelta(minutes=rng_for(seed, "timeclocks", int(row["id"])).randrange(0, 9))
            out.append({"id": f"tc-{row['id']}", "account": row["covering_member"], "workgroup": row["workgroup"],
                        "shift": row["id"], "clocked_in": _stamp(clocked.replace(tzinfo=ZoneInfo(TIMEZONE))),
                        "clocked_in_local": clocked.isoformat(timespec="seconds"), "clocked_out": None,
                        "timezone": TIMEZONE})
        return out

    async def rpc(request: Request) -> Response:
        q = request.query_params
        call_id = q.get("id")
        if request.method != "GET":
            return rpc_error(call_id, -32600, "Only GET requests are supported (batch POST is not emulated)",
                             ERR_PARAMS)
        if q.get("jsonrpc") != "2.0" or not q.get("method"):
            return rpc_error(call_id, -32600, "Invalid Request: jsonrpc must be 2.0 and method is required",
                             ERR_PARAMS)
        method = q["method"]
        if q.get("access_key_id") != ACCESS_KEY_ID or state.faults.revoke_tokens:
            return rpc_error(call_id, -32000, "Authentication failed: unknown or disabled access_key_id", ERR_AUTH)
        try:
            params_text = base64.b64decode(q.get("params", ""), validate=False).decode("utf-8")
            params = json.loads(params_text) if params_text else {}
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return rpc_error(call_id, -32700, "Parse error: params must be base64-encoded JSON", ERR_PARAMS)
        if not hmac.compare_digest(q.get("signature", "").encode(),
                                   expected_signature(method, params_text).encode()):
            return rpc_error(call_id, -32000, "Authentication failed: the signature does not match the request",
                             ERR_SIGNATURE)
        if not isinstance(params, dict):
            return rpc_error(call_id, -32602, "params must be a JSON object", ERR_PARAMS)
        state.extra["calls"].append({"method": method, "params": params})
        select = params.get("select") or {}
        if not isinstance(select, dict):
            return rpc_error(call_id, -32602, "select must be an object", ERR_PARAMS)
        if method == "system.echo":
            return JSONResponse({"jsonrpc": "2.0", "id": call_id, "result": params})
        if method == "account.list":
            accounts = state.datasets["accounts"]
            where = None
            if "external_id" in select:
                def where(row: dict[str, Any]) -> bool:
                    return str(row.get("external_id")) == str(select["external_id"])
            return list_reply(call_id, params, lambda o, n: accounts.page(None, o, n, where), "accounts")
        if method == "workgroup.list":
            return list_reply(call_id, params, lambda o, n: (workgroups[o:o + n], len(workgroups)), "workgroups")
        if method == "shift.list":
            try:
                keep = shift_filter(select)
            except ValueError:
                return rpc_error(call_id, -32602, "select.start_date and select.end_date must be YYYY-MM-DD dates",
                                 ERR_PARAMS)
            shifts = state.datasets["shifts"]
            return list_reply(call_id, params, lambda o, n: shifts.page(None, o, n, keep), "shifts")
        if method == "shift.create":
            return create_shift(call_id, params)
        if method == "shift.update":
            return update_shift(call_id, params)
        if method == "timeclock.whosOn":
            on = who_is_on()
            return list_reply(call_id, params, lambda o, n: (on[o:o + n], len(on)), "timeclocks")
        return rpc_error(call_id, -32601, f"Method not found: {method}", ERR_PARAMS)

    app.add_api_route("/", rpc, methods=["GET", "POST"])
    app.add_api_route("/api/api.cgi", rpc, methods=["GET", "POST"])
    app.state.credentials = {"signature_key": SIGNATURE_KEY}
    app.state.config = {"access_key_id": ACCESS_KEY_ID}
    app.state.started = time.time()
    return app


def _check_shift_fields(params: dict[str, Any]) -> str | None:
    """Why the dates of a shift are unusable, or None."""
    for name in ("start_date", "end_date"):
        if params.get(name) is not None and not _LOCAL_TIME.fullmatch(str(params[name])):
            return f"{name} must be a local time YYYY-MM-DDTHH:MM:SS (no offset), got {params[name]!r}"
    try:
        start = datetime.fromisoformat(str(params["start_date"])) if params.get("start_date") else None
        end = datetime.fromisoformat(str(params["end_date"])) if params.get("end_date") else None
    except ValueError:
        return "start_date and end_date must be real dates and times"
    if start is not None and end is not None and end <= start:
        return "end_date must be after start_date"
    return None
