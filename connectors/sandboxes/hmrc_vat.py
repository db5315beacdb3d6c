"""HMRC Making Tax Digital VAT (MTD) API 1.0 sandbox, from ``hmrc/vat-api`` ``application.yaml``:
obligations (from/to window of at most 366 days, status O/F), returns (submit, view), liabilities,
payments; ``Accept: application/vnd.hmrc.1.0+json``; ``X-CorrelationId`` on every reply; receipt headers
on a submission; ``{code, message}`` errors; a subset of ``Gov-Test-Scenario`` values.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    add_oauth_routes,
    bearer,
    new_state,
    rng_for,
)

VRN = "123456789"
ACCEPT = "application/vnd.hmrc.1.0+json"
BOXES = ("vatDueSales", "vatDueAcquisitions", "totalVatDue", "vatReclaimedCurrPeriod", "netVatDue",
         "totalValueSalesExVAT", "totalValuePurchasesExVAT", "totalValueGoodsSuppliedExVAT", "totalAcquisitionsExVAT")


def _err(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status,
                        headers={"X-CorrelationId": str(uuid.uuid4())})


def _throttle(state: SandboxState) -> Response:
    resp = _err(429, "MESSAGE_THROTTLED_OUT", "The request for the API is throttled as you have exceeded your quota.")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def _quarters(today: date) -> list[tuple[date, date]]:
    out = []
    start = date(2018, 1, 1)
    while start <= today:
        month = start.month + 3
        nxt = date(start.year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
        out.append((start, nxt - timedelta(days=1)))
        start = nxt
    return out


def _key(start: date) -> str:
    return f"{start.year % 100:02d}A{(start.month - 1) // 3 + 1}"


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The HMRC MTD VAT sandbox app."""
    cfg = config or SandboxConfig(token_ttl_seconds=4 * 3600)
    state = new_state(cfg, "HMRC")
    returns: dict[str, dict[str, Any]] = {}
    state.extra["returns"] = returns
    app = FastAPI(title="HMRC MTD VAT sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/oauth",))
    add_control_routes(app, state)
    add_oauth_routes(app, state, authorize_path="/oauth/authorize", token_path="/oauth/token")
    base = "/organisations/vat/{vrn}"

    def obligations(scenario: str | None) -> list[dict[str, Any]]:
        today = datetime.now(UTC).date()
        out = []
        for start, end in _quarters(today):
            due = end + timedelta(days=38)
            key = _key(start)
            filed = key in returns or (scenario != "QUARTERLY_NONE_MET" and due < today - timedelta(days=60))
            ob: dict[str, Any] = {"start": f"{start}", "end": f"{end}", "due": f"{due}", "status": "F" if filed else "O",
                                  "periodKey": key}
            if filed:
                ob["received"] = f"{min(due - timedelta(days=2), today)}"
            out.append(ob)
        return out

    def check(request: Request, vrn: str) -> Response | None:
        if request.headers.get("accept") != ACCEPT:
            return _err(406, "ACCEPT_HEADER_INVALID", "The accept header is missing or invalid")
        if not state.token_valid(bearer(request)):
            return _err(401, "INVALID_CREDENTIALS", "Invalid Authentication information provided")
        if not (vrn.isdigit() and len(vrn) == 9):
            return _err(400, "VRN_INVALID", "The provided VRN is invalid")
        if vrn != VRN:
            return _err(403, "CLIENT_OR_AGENT_NOT_AUTHORISED", "The client and/or agent is not authorised")
        if request.headers.get("gov-test-scenario") == "INSOLVENT_TRADER":
            return _err(403, "RULE_INSOLVENT_TRADER", "The remote endpoint has indicated that the Trader is insolvent")
        return None

    def window(request: Request, required: bool = True) -> tuple[date, date] | Response | None:
        q = request.query_params
        if not required and not q.get("from") and not q.get("to"):
            return None
        try:
            frm = date.fromisoformat(q.get("from", ""))
        except ValueError:
            return _err(400, "INVALID_DATE_FROM", "The provided from date is invalid")
        try:
            to = date.fromisoformat(q.get("to", ""))
        except ValueError:
            return _err(400, "INVALID_DATE_TO", "The provided to date is invalid")
        if to < frm or (to - frm).days > 365:
            return _err(400, "INVALID_DATE_RANGE", "Invalid date range, must be 366 days or less")
        return frm, to

    def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers={"X-CorrelationId": str(uuid.uuid4()), **(headers or {})})

    @app.get(base + "/obligations")
    async def get_obligations(vrn: str, request: Request) -> Response:
        denied = check(request, vrn)
        if denied:
            return denied
        status = request.query_params.get("status")
        if status not in (None, "O", "F"):
            return _err(400, "INVALID_STATUS", "The provided data is failed validation, invalid status")
        win = window(request, required=status != "O")
        if isinstance(win, Response):
            return win
        scenario = request.headers.get("gov-test-scenario")
        obs = obligations(scenario)
        if win is not None:
            frm, to = win
            obs = [o for o in obs if date.fromisoformat(o["end"]) >= frm and date.fromisoformat(o["start"]) <= to]
        if status:
            obs = [o for o in obs if o["status"] == status]
        if not obs or scenario == "NOT_FOUND":
            return _err(404, "NOT_FOUND", "The requested resource could not be found")
        return ok({"obligations": obs})

    @app.post(base + "/returns")
    async def submit(vrn: str, request: Request) -> Response:
        denied = check(request, vrn)
        if denied:
            return denied
        scenario = request.headers.get("gov-test-scenario")
        try:
            body = await request.json()
        except ValueError:
            return _err(400, "INVALID_REQUEST", "Invalid request")
        if not isinstance(body, dict) or not isinstance(body.get("periodKey"), str) or len(body["periodKey"]) != 4:
            return _err(400, "PERIOD_KEY_INVALID", "Invalid period key")
        for box in BOXES:
            if not isinstance(body.get(box), int | float):
                return _err(400, "INVALID_NUMERIC_VALUE", "please provide a numeric field")
        if round(body["vatDueSales"] + body["vatDueAcquisitions"], 2) != round(body["totalVatDue"], 2):
            return _err(400, "VAT_TOTAL_VALUE",
                        "totalVatDue should be equal to the sum of vatDueSales and vatDueAcquisitions")
        if round(abs(body["totalVatDue"] - body["vatReclaimedCurrPeriod"]), 2) != round(body["netVatDue"], 2):
            return _err(400, "VAT_NET_VALUE", "netVatDue should be the difference between the largest and the "
                                              "smallest values among totalVatDue and vatReclaimedCurrPeriod")
        if body.get("finalised") is not True:
            return _err(403, "NOT_FINALISED", "User has not declared VAT return as final")
        if scenario == "TAX_PERIOD_NOT_ENDED":
            return _err(403, "TAX_PERIOD_NOT_ENDED",
                        "The remote endpoint has indicated that the submission is for a tax period that has not ended")
        if body["periodKey"] in returns or scenario == "DUPLICATE_SUBMISSION":
            return _err(403, "DUPLICATE_SUBMISSION", "The VAT return was already submitted for the given period")
        now = datetime.now(UTC)
        returns[body["periodKey"]] = {k: body[k] for k in ("periodKey", *BOXES)}
        receipt = {"processingDate": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", "paymentIndicator": "BANK",
                   "formBundleNumber": f"{rng_for(cfg.seed, 'fb', len(returns)).randrange(10**11, 10**12)}",
                   "chargeRefNumber": uuid.uuid4().hex[:16]}
        return ok(receipt, 201, {"Receipt-ID": str(uuid.uuid4()), "Receipt-Timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                 "Receipt-Signature": "DO NOT USE"})

    @app.get(base + "/returns/{period_key}")
    async def view_return(vrn: str, period_key: str, request: Request) -> Response:
        denied = check(request, vrn)
        if denied:
            return denied
        if period_key not in returns:
            return _err(404, "NOT_FOUND", "The requested resource could not be found")
        return ok(returns[period_key])

    def money(kind: str, frm: date, to: date) -> list[dict[str, Any]]:
        out = []
        for start, end in _quarters(datetime.now(UTC).date()):
            if end < frm or start > to:
                continue
            r = rng_for(cfg.seed, kind, start.toordinal())
            amount = round(r.uniform(800, 9500), 2)
            due = end + timedelta(days=38)
            if kind == "liabilities":
                out.append({"taxPeriod": {"from": f"{start}", "to": f"{end}"}, "type": "VAT Return Debit Charge",
                            "originalAmount": amount, "outstandingAmount": 0.0, "due": f"{due}"})
            elif due < datetime.now(UTC).date():
                out.append({"amount": amount, "received": f"{due - timedelta(days=3)}"})
        return out

    @app.get(base + "/liabilities")
    async def liabilities(vrn: str, request: Request) -> Response:
        denied = check(request, vrn)
        if denied:
            return denied
        win = window(request)
        if isinstance(win, Response) or win is None:
            return win or _err(400, "INVALID_DATE_FROM", "The provided from date is invalid")
        items = money("liabilities", *win)
        return ok({"liabilities": items}) if items else _err(404, "NOT_FOUND", "The requested resource could not be found")

    @app.get(base + "/payments")
    async def payments(vrn: str, request: Request) -> Response:
        denied = check(request, vrn)
        if denied:
            return denied
        win = window(request)
        if isinstance(win, Response) or win is None:
            return win or _err(400, "INVALID_DATE_FROM", "The provided from date is invalid")
        items = money("payments", *win)
        return ok({"payments": items}) if items else _err(404, "NOT_FOUND", "The requested resource could not be found")

    return app
