"""UK Open Banking (OBIE) Account and Transaction API sandbox, after ``OpenBankingUK/read-write-api-specs``
``dist/openapi/account-info-openapi.yaml`` (payload shapes of the file's version 4.0.0; served under both
``/open-banking/v3.1/aisp`` and ``/open-banking/v4.0/aisp``):

* FAPI-style OAuth2: ``client_credentials`` (scope ``accounts``) for the TPP, with ``private_key_jwt`` client
  authentication (PS256, claims checked; signature checked once a public key is registered); PSU
  authorisation at ``/as/authorization.oauth2`` with a request object naming the consent
  (``openbanking_intent_id``): a browser sees the bank's consent screen (Approve / Reject), an API client gets
  the decision set with ``POST /_sandbox/ob/psu-decision``; ``authorization_code`` and rotating
  ``refresh_token`` grants bound to it; a practice TPP key is registered from the start (``practice_key``,
  handed to practice mode as ``app.state.credentials``);
* ``POST/GET/DELETE /account-access-consents`` (``AWAU`` → ``AUTH`` / ``RJCT`` / ``CANC``; past its
  ``ExpirationDateTime`` an authorised consent reads as ``Expired``);
* ``GET /accounts``, ``/accounts/{id}``, ``/balances``, ``/accounts/{id}/balances``, ``/transactions``,
  ``/accounts/{id}/transactions`` with ``fromBookingDateTime``/``toBookingDateTime``, ``Links``
  (``Self``, ``First``, ``Prev``, ``Next``, ``Last``) and ``Meta.TotalPages``;
* ``x-fapi-interaction-id`` echoed on every reply; ``OBErrorResponse1`` error envelope with the 4-character
  ISO ``ExternalReason1Code`` error codes of that version (DT01 invalid date, FF01 invalid or missing field,
  AG01 forbidden by the consent, AC01 unknown account, NARR other); ``429`` with ``Retry-After``;
  permissions enforced per consent.
"""

from __future__ import annotations

import html
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import jwt
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from connectors.sandboxes.common import (
    BASE_TIME,
    SUPPLIERS,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    bearer,
    new_state,
    pools,
    rng_for,
)
from connectors.sandboxes.nhs_auth import rsa_key_pair

PREFIXES = ("/open-banking/v3.1/aisp", "/open-banking/v4.0/aisp")
CLIENT_ID = "carehub-tpp-0001"
TOKEN_PATH = "/as/token.oauth2"
AUTHORIZE_PATH = "/as/authorization.oauth2"
ACCOUNTS = (  # (nickname, sort code + account number, sub type, opening balance)
    ("Willow Court Care Home - Operating", "20457712345678", "CACC", 84_250.00),
    ("Willow Court - Care Fees Deposit", "20457787654321", "SVGS", 212_900.00),
    ("Residents' Comfort Fund", "20457711223344", "CACC", 3_418.55),
)
PAGE_SIZE = 25
DEMO_CONSENT = "aac-demo-0000"  # pre-authorised, so demo mode works without the bank's consent screen


@dataclass
class Consent:
    """An account-access consent."""

    consent_id: str
    permissions: list[str]
    created: datetime
    status: str = "AWAU"
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    expires: str | None = None
    from_dt: str | None = None
    to_dt: str | None = None


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _money(value: float) -> str:
    return f"{abs(value):.2f}"


def ob_error(status: int, code: str, message: str, error_code: str, path: str | None = None,
             interaction_id: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """An ``OBErrorResponse1`` reply."""
    err: dict[str, Any] = {"ErrorCode": error_code, "Message": message}
    if path:
        err["Path"] = path
    body = {"Code": code, "Id": uuid.uuid4().hex[:32], "Message": message, "Errors": [err]}
    return JSONResponse(body, status_code=status,
                        headers={"x-fapi-interaction-id": interaction_id or str(uuid.uuid4()), **(headers or {})})


def _throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    return ob_error(429, "429 TooManyRequests", "Too many requests: the ASPSP's rate limit was exceeded",
                    "NARR", headers=headers)


PERMISSION_WORDS = {
    "ReadAccountsBasic": "your account names and types", "ReadAccountsDetail": "your account names and numbers",
    "ReadBalances": "your balances", "ReadTransactionsBasic": "your transactions (amounts and dates)",
    "ReadTransactionsCredits": "money coming in", "ReadTransactionsDebits": "money going out",
    "ReadTransactionsDetail": "transaction details (payee, reference)",
}


@lru_cache(maxsize=1)
def practice_key() -> tuple[str, str]:
    """The practice TPP's signing key pair (private PEM, public PEM), registered with the sandbox bank."""
    return rsa_key_pair()


def consent_screen(consent: Consent, request: Request) -> str:
    """The bank's consent screen: what the TPP asks to see, until when, and Approve / Reject."""
    def choice(decision: str) -> str:
        return html.escape(str(request.url.include_query_params(psu_decision=decision)), quote=True)

    asks = "".join(f"<li>{html.escape(PERMISSION_WORDS.get(p, p))}</li>" for p in consent.permissions)
    until = html.escape(consent.expires or "until you withdraw it")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>CareHub sandbox bank: allow access"
            f"</title></head><body><main><h1>CareHub sandbox bank</h1><p>CareHub asks to see, for the accounts of "
            f"WILLOW COURT CARE LTD:</p><ul>{asks}</ul><p>Access lasts until {until}.</p>"
            f"<p><a href=\"{choice('approve')}\" role=button>Approve</a> "
            f"<a href=\"{choice('reject')}\" role=button>Reject</a></p></main></body></html>")


def transactions_for(seed: int, account_index: int, n: int) -> list[dict[str, Any]]:
    """``n`` booked transactions of one account, oldest first, with a running balance."""
    opening = ACCOUNTS[account_index][3]
    account_id = f"acc-{account_index + 1:03d}"
    balance = opening
    out: list[dict[str, Any]] = []
    p = pools(seed)
    for i in range(n):
        r = rng_for(seed, f"ob-tx-{account_index}", i)
        at = BASE_TIME + timedelta(hours=9 * i + account_index)
        credit = r.random() < (0.55 if account_index == 0 else 0.35)
        if credit:
            payer = r.choice((f"{r.choice(p.last_names).upper()} {r.choice(p.first_names)[0]}",
                              "LEEDS CITY COUNCIL", "NHS WEST YORKSHIRE ICB", "KENT COUNTY COUNCIL"))
            amount = round(r.choice((1177.5, 1250.0, 1320.0, 945.0, 2820.88)) * r.choice((1, 1, 4)), 2)
            info = f"{payer} CARE FEES {at:%b %Y}".upper()
            code, sub = ("ReceivedCreditTransfer", "DomesticCreditTransfer")
            prop = "BGC"
        else:
            payee = r.choice(SUPPLIERS)
            amount = round(r.uniform(12, 4800), 2)
            info = payee.upper()[:60]
            code, sub = ("IssuedDirectDebits", "DirectDebit") if r.random() < 0.4 else \
                ("IssuedCreditTransfers", "DomesticCreditTransfer")
            prop = "DD" if code == "IssuedDirectDebits" else "FPO"
        balance = round(balance + (amount if credit else -amount), 2)
        tx: dict[str, Any] = {
            "AccountId": account_id,
            "TransactionId": f"{account_id}-tx-{i + 1:06d}",
            "TransactionReference": f"REF{account_index}{i:07d}",
            "CreditDebitIndicator": "Credit" if credit else "Debit",
            "Status": "BOOK",
            "BookingDateTime": _iso(at),
            "ValueDateTime": _iso(at),
            "TransactionInformation": info,
            "Amount": {"Amount": _money(amount), "Currency": "GBP"},
            "BankTransactionCode": {"Code": code, "SubCode": sub},
            "ProprietaryBankTransactionCode": {"Code": prop, "Issuer": "CareHub Sandbox Bank"},
            "Balance": {"CreditDebitIndicator": "Credit" if balance >= 0 else "Debit", "Type": "ITBD",
                        "Amount": {"Amount": _money(balance), "Currency": "GBP"}},
        }
        if not credit:
            tx["MerchantDetails"] = {"MerchantName": info[:350]}
            tx["CreditorAccount"] = {"SchemeName": "UK.OBIE.SortCodeAccountNumber",
                                     "Identification": f"{r.randrange(10**13, 10**14)}", "Name": info[:70]}
        out.append(tx)
    return out


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Open Banking sandbox; ``config.records`` = transactions per account."""
    cfg = config or SandboxConfig(records=120)
    state = new_state(cfg, "Open Banking sandbox bank")
    n = cfg.count("transactions", 120)
    txs = {f"acc-{k + 1:03d}": transactions_for(cfg.seed, k, n) for k in range(len(ACCOUNTS))}
    consents: dict[str, Consent] = {}
    token_consent: dict[str, str] = {}
    refresh_consent: dict[str, str] = {}
    codes: dict[str, tuple[str, str, float]] = {}
    tpp_tokens: set[str] = set()
    consents[DEMO_CONSENT] = Consent(DEMO_CONSENT, ["ReadAccountsDetail", "ReadBalances", "ReadTransactionsCredits",
                                                    "ReadTransactionsDebits", "ReadTransactionsDetail"],
                                     created=BASE_TIME, status="AUTH")
    requests_seen: list[dict[str, str]] = []
    state.extra.update(consents=consents, requests=requests_seen, client_public_key=practice_key()[1],
                       page_size=PAGE_SIZE, psu_decision="approve")
    app = FastAPI(title="Open Banking AIS sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/as/",))
    add_control_routes(app, state)

    # ------------------------------------------------------------------ OAuth2 (FAPI-flavoured)

    def check_client(form: Any, request: Request) -> JSONResponse | None:
        assertion = form.get("client_assertion")
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" or not assertion:
            return JSONResponse({"error": "invalid_client", "error_description": "private_key_jwt is required"}, 401)
        try:
            header = jwt.get_unverified_header(str(assertion))
            key = state.extra.get("client_public_key")
            if key:
                claims = jwt.decode(str(assertion), key, algorithms=["PS256"], options={"verify_aud": False})
            else:
                claims = jwt.decode(str(assertion), options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            return JSONResponse({"error": "invalid_client", "error_description": f"client assertion: {exc}"}, 401)
        if header.get("alg") != "PS256":
            return JSONResponse({"error": "invalid_client", "error_description": "client assertion must be PS256"}, 401)
        if claims.get("iss") != CLIENT_ID or claims.get("sub") != CLIENT_ID:
            return JSONResponse({"error": "invalid_client", "error_description": "unknown client"}, 401)
        if not str(claims.get("aud", "")).endswith(TOKEN_PATH) or float(claims.get("exp", 0)) < time.time():
            return JSONResponse({"error": "invalid_client", "error_description": "assertion audience or expiry"}, 401)
        return None

    @app.post(TOKEN_PATH)
    async def token(request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        bad = check_client(form, request)
        if bad is not None:
            return bad
        if grant == "client_credentials":
            issued = state.issue_tokens()
            issued.pop("refresh_token")
            issued["scope"] = "accounts"
            tpp_tokens.add(issued["access_token"])
            return JSONResponse(issued)
        if grant == "authorization_code":
            entry = codes.pop(str(form.get("code", "")), None)
            if entry is None or entry[2] < time.time() or entry[1] != form.get("redirect_uri"):
                return JSONResponse({"error": "invalid_grant", "error_description": "code invalid or used"}, 400)
            issued = state.issue_tokens()
            token_consent[issued["access_token"]] = entry[0]
            refresh_consent[issued["refresh_token"]] = entry[0]
            return JSONResponse({**issued, "scope": "openid accounts"})
        if grant == "refresh_token":
            rt = str(form.get("refresh_token", ""))
            exp = state.refresh_tokens.pop(rt, None)
            consent_id = refresh_consent.pop(rt, None)
            if exp is None or consent_id is None or exp < time.time() or state.faults.revoke_tokens:
                return JSONResponse({"error": "invalid_grant", "error_description": "refresh token invalid"}, 400)
            issued = state.issue_tokens()
            token_consent[issued["access_token"]] = consent_id
            refresh_consent[issued["refresh_token"]] = consent_id
            return JSONResponse({**issued, "scope": "openid accounts"})
        return JSONResponse({"error": "unsupported_grant_type"}, 400)

    @app.get(AUTHORIZE_PATH, response_model=None)
    async def authorize(request: Request) -> Response:
        q = request.query_params
        redirect_uri = q.get("redirect_uri", "")
        try:
            key = state.extra.get("client_public_key")
            obj = jwt.decode(q.get("request", ""), key, algorithms=["PS256"], options={"verify_aud": False}) \
                if key else jwt.decode(q.get("request", ""), options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            return JSONResponse({"error": "invalid_request_object", "error_description": str(exc)}, 400)
        intent = (((obj.get("claims") or {}).get("id_token") or {}).get("openbanking_intent_id") or {}).get("value")
        consent = consents.get(str(intent))
        if consent is None or consent.status != "AWAU" or obj.get("client_id") != CLIENT_ID:
            return JSONResponse({"error": "invalid_request", "error_description": "unknown or used consent"}, 400)
        if obj.get("redirect_uri") != redirect_uri:
            return JSONResponse({"error": "invalid_request", "error_description": "redirect_uri mismatch"}, 400)
        decision = q.get("psu_decision")
        if decision is None and "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(consent_screen(consent, request))  # a browser: the bank's consent screen
        # API clients (and the simulated browser of the UI tests) get the decision set on the control API
        decision = decision or str(state.extra.get("psu_decision") or "approve")
        consent.updated = datetime.now(UTC)
        if decision != "approve":
            consent.status = "RJCT"
            return RedirectResponse(f"{redirect_uri}?{urlencode({'error': 'access_denied', 'state': q.get('state', '')})}",
                                    302)
        consent.status = "AUTH"
        code = secrets.token_urlsafe(16)
        codes[code] = (consent.consent_id, redirect_uri, time.time() + 120)
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': q.get('state', '')})}", 302)

    @app.post("/_sandbox/ob/psu-decision")
    async def psu_decision(request: Request) -> dict[str, str]:
        """What the customer answers at the bank when no browser shows the consent screen: approve or reject."""
        decision = str((await request.json()).get("decision", "approve"))
        if decision not in ("approve", "reject"):
            decision = "approve"
        state.extra["psu_decision"] = decision
        return {"decision": decision}

    @app.post("/_sandbox/ob/post-transaction")
    async def post_transaction(request: Request) -> dict[str, Any]:
        """Book a new transaction now (tests of incremental reads): ``{account_id, amount, information}``."""
        body = await request.json()
        acc = str(body.get("account_id", "acc-001"))
        prev = txs[acc][-1]
        amount = float(body.get("amount", 100.0))
        balance = float(prev["Balance"]["Amount"]["Amount"]) * (1 if prev["Balance"]["CreditDebitIndicator"] == "Credit"
                                                                else -1) + amount
        at = max(datetime.now(UTC), datetime.fromisoformat(prev["BookingDateTime"]) + timedelta(seconds=1))
        tx = {**prev, "TransactionId": f"{acc}-tx-{len(txs[acc]) + 1:06d}", "BookingDateTime": _iso(at),
              "ValueDateTime": _iso(at), "CreditDebitIndicator": "Credit" if amount >= 0 else "Debit",
              "TransactionInformation": str(body.get("information", "NEW TRANSACTION")),
              "Amount": {"Amount": _money(amount), "Currency": "GBP"},
              "Balance": {"CreditDebitIndicator": "Credit" if balance >= 0 else "Debit", "Type": "ITBD",
                          "Amount": {"Amount": _money(balance), "Currency": "GBP"}}}
        txs[acc].append(tx)
        return tx

    @app.post("/_sandbox/ob/register-client")
    async def register_client(request: Request) -> dict[str, Any]:
        """Register the TPP's public key (PEM), standing in for dynamic client registration."""
        state.extra["client_public_key"] = (await request.json())["public_key_pem"]
        return {"client_id": CLIENT_ID}

    # ------------------------------------------------------------------ API

    def fapi_id(request: Request) -> str:
        return request.headers.get("x-fapi-interaction-id") or str(uuid.uuid4())

    def reply(request: Request, body: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers={"x-fapi-interaction-id": fapi_id(request)})

    def psu_consent(request: Request, needs: tuple[str, ...]) -> Consent | JSONResponse:
        requests_seen.append({k.lower(): v for k, v in request.headers.items()})
        tok = bearer(request)
        if not state.token_valid(tok):
            return JSONResponse({}, status_code=401, headers={"x-fapi-interaction-id": fapi_id(request),
                                                                "WWW-Authenticate": 'Bearer error="invalid_token"'})
        bound = token_consent.get(tok or "")
        if bound is None and tok not in tpp_tokens:
            bound = DEMO_CONSENT  # a token minted by /_sandbox/tokens (demo mode, CLI) reads the demo consent
        consent = consents.get(bound or "")
        if consent is None:
            return ob_error(403, "403 Forbidden", "This token is not bound to an account-access consent",
                            "AG01", interaction_id=fapi_id(request))
        if consent.status == "AUTH" and consent.expires and (parse_when(consent.expires) or datetime.max.replace(
                tzinfo=UTC)) < datetime.now(UTC):
            consent.status = "Expired"
        if consent.status != "AUTH":
            return ob_error(403, "403 Forbidden", f"Consent {consent.consent_id} is not authorised ({consent.status})",
                            "AG01", interaction_id=fapi_id(request))
        if not any(p in consent.permissions for p in needs):
            return ob_error(403, "403 Forbidden", f"The consent does not grant {' or '.join(needs)}",
                            "AG01", interaction_id=fapi_id(request))
        return consent

    def account_json(k: int) -> dict[str, Any]:
        nickname, ident, sub, _ = ACCOUNTS[k]
        return {"AccountId": f"acc-{k + 1:03d}", "Status": "Enabled", "StatusUpdateDateTime": _iso(BASE_TIME),
                "Currency": "GBP", "AccountCategory": "Business", "AccountTypeCode": sub, "Nickname": nickname,
                "OpeningDate": "2015-04-01T00:00:00+00:00",
                "Account": [{"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": ident,
                             "Name": "WILLOW COURT CARE LTD"}]}

    def parse_when(value: str | None) -> datetime | None:
        if not value:
            return None
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return dt.replace(tzinfo=UTC)  # the spec: "the ASPSP must ignore the timezone component"

    def paged(request: Request, key: str, items: list[dict[str, Any]]) -> JSONResponse:
        size = int(state.extra.get("page_size") or PAGE_SIZE)
        total_pages = max(1, (len(items) + size - 1) // size)
        try:
            page = max(1, int(request.query_params.get("page") or 1))
        except ValueError:
            return ob_error(400, "400 BadRequest", "page must be a number", "FF01", "page",
                            fapi_id(request))
        def link(p: int) -> str:
            return str(request.url.include_query_params(page=str(p)))

        links: dict[str, str] = {"Self": link(page), "First": link(1), "Last": link(total_pages)}
        if page > 1:
            links["Prev"] = link(page - 1)
        if page < total_pages:
            links["Next"] = link(page + 1)
        chunk = items[(page - 1) * size: page * size]
        meta: dict[str, Any] = {"TotalPages": total_pages}
        if items:
            meta["FirstAvailableDateTime"] = items[0].get("BookingDateTime", _iso(BASE_TIME))
            meta["LastAvailableDateTime"] = items[-1].get("BookingDateTime", _iso(BASE_TIME))
        return reply(request, {"Data": {key: chunk}, "Links": links, "Meta": meta})

    def filter_txs(request: Request, consent: Consent, account_id: str | None) -> list[dict[str, Any]] | JSONResponse:
        q = request.query_params
        start, end = parse_when(q.get("fromBookingDateTime")), parse_when(q.get("toBookingDateTime"))
        for name in ("fromBookingDateTime", "toBookingDateTime"):
            if q.get(name) and parse_when(q.get(name)) is None:
                return ob_error(400, "400 BadRequest", f"{name} is not an ISO 8601 date-time",
                                "DT01", name, fapi_id(request))
        lo, hi = parse_when(consent.from_dt), parse_when(consent.to_dt)
        out = []
        keys = [account_id] if account_id else list(txs)
        for acc in keys:
            for tx in txs[acc]:
                at = datetime.fromisoformat(tx["BookingDateTime"])
                if (start and at < start) or (end and at > end) or (lo and at < lo) or (hi and at > hi):
                    continue
                if "ReadTransactionsDetail" not in consent.permissions:
                    tx = {k: v for k, v in tx.items() if k not in ("TransactionInformation", "MerchantDetails",
                                                                    "CreditorAccount", "Balance")}
                if tx["CreditDebitIndicator"] == "Credit" and not {"ReadTransactionsCredits", "ReadTransactionsDetail",
                                                                  "ReadTransactionsBasic"} & set(consent.permissions):
                    continue
                out.append(tx)
        out.sort(key=lambda t: (t["BookingDateTime"], t["TransactionId"]))
        return out

    def balances_of(k: int) -> list[dict[str, Any]]:
        acc = f"acc-{k + 1:03d}"
        last: dict[str, Any] = txs[acc][-1]["Balance"] if txs[acc] else {"CreditDebitIndicator": "Credit",
                                                        "Amount": {"Amount": _money(ACCOUNTS[k][3]), "Currency": "GBP"}}
        at = txs[acc][-1]["BookingDateTime"] if txs[acc] else _iso(BASE_TIME)
        return [{"AccountId": acc, "CreditDebitIndicator": last["CreditDebitIndicator"], "Type": t, "DateTime": at,
                 "Amount": dict(last["Amount"])} for t in ("ITBD", "ITAV")]

    for prefix in PREFIXES:
        @app.post(prefix + "/account-access-consents")
        async def create_consent(request: Request) -> Response:
            tok = bearer(request)
            if not state.token_valid(tok) or tok not in tpp_tokens:
                return JSONResponse({}, status_code=401, headers={"x-fapi-interaction-id": fapi_id(request)})
            try:
                body = await request.json()
                data = body["Data"]
                perms = list(data["Permissions"])
            except (ValueError, KeyError, TypeError):
                return ob_error(400, "400 BadRequest", "Data.Permissions is required", "FF01",
                                "Data.Permissions", fapi_id(request))
            if not isinstance(body.get("Risk"), dict):
                return ob_error(400, "400 BadRequest", "Risk is required", "FF01", "Risk",
                                fapi_id(request))
            unknown = [p for p in perms if not str(p).startswith("Read")]
            if not perms or unknown:
                return ob_error(400, "400 BadRequest", f"Unknown permissions: {unknown}", "FF01",
                                "Data.Permissions", fapi_id(request))
            state.extra["last_consent_body"] = body
            consent = Consent(consent_id=f"aac-{uuid.uuid4()}", permissions=perms, created=datetime.now(UTC),
                              expires=data.get("ExpirationDateTime"), from_dt=data.get("TransactionFromDateTime"),
                              to_dt=data.get("TransactionToDateTime"))
            consents[consent.consent_id] = consent
            return reply(request, {"Data": consent_json(consent), "Risk": {},
                                   "Links": {"Self": f"{str(request.url).split('?')[0]}/{consent.consent_id}"},
                                   "Meta": {"TotalPages": 1}}, 201)

        @app.get(prefix + "/account-access-consents/{consent_id}")
        async def get_consent(consent_id: str, request: Request) -> Response:
            if not state.token_valid(bearer(request)):
                return JSONResponse({}, status_code=401, headers={"x-fapi-interaction-id": fapi_id(request)})
            consent = consents.get(consent_id)
            if consent is None:
                return ob_error(400, "400 BadRequest", "Consent not found", "AC01",
                                interaction_id=fapi_id(request))
            return reply(request, {"Data": consent_json(consent), "Risk": {},
                                   "Links": {"Self": str(request.url)}, "Meta": {"TotalPages": 1}})

        @app.delete(prefix + "/account-access-consents/{consent_id}")
        async def delete_consent(consent_id: str, request: Request) -> Response:
            if not state.token_valid(bearer(request)):
                return JSONResponse({}, status_code=401, headers={"x-fapi-interaction-id": fapi_id(request)})
            consent = consents.get(consent_id)
            if consent is not None:
                consent.status = "CANC"
            return Response(status_code=204, headers={"x-fapi-interaction-id": fapi_id(request)})

        @app.get(prefix + "/accounts")
        async def accounts(request: Request) -> Response:
            c = psu_consent(request, ("ReadAccountsBasic", "ReadAccountsDetail"))
            if isinstance(c, JSONResponse):
                return c
            return paged(request, "Account", [account_json(k) for k in range(len(ACCOUNTS))])

        @app.get(prefix + "/accounts/{account_id}")
        async def account(account_id: str, request: Request) -> Response:
            c = psu_consent(request, ("ReadAccountsBasic", "ReadAccountsDetail"))
            if isinstance(c, JSONResponse):
                return c
            k = _account_index(account_id)
            if k is None:
                return ob_error(400, "400 BadRequest", f"Account {account_id} not found", "AC01",
                                "AccountId", fapi_id(request))
            return paged(request, "Account", [account_json(k)])

        @app.get(prefix + "/balances")
        async def balances(request: Request) -> Response:
            c = psu_consent(request, ("ReadBalances",))
            if isinstance(c, JSONResponse):
                return c
            return paged(request, "Balance", [b for k in range(len(ACCOUNTS)) for b in balances_of(k)])

        @app.get(prefix + "/accounts/{account_id}/balances")
        async def account_balances(account_id: str, request: Request) -> Response:
            c = psu_consent(request, ("ReadBalances",))
            if isinstance(c, JSONResponse):
                return c
            k = _account_index(account_id)
            if k is None:
                return ob_error(400, "400 BadRequest", f"Account {account_id} not found", "AC01",
                                "AccountId", fapi_id(request))
            return paged(request, "Balance", balances_of(k))

        @app.get(prefix + "/transactions")
        async def transactions(request: Request) -> Response:
            c = psu_consent(request, ("ReadTransactionsBasic", "ReadTransactionsDetail"))
            if isinstance(c, JSONResponse):
                return c
            items = filter_txs(request, c, None)
            return items if isinstance(items, JSONResponse) else paged(request, "Transaction", items)

        @app.get(prefix + "/accounts/{account_id}/transactions")
        async def account_transactions(account_id: str, request: Request) -> Response:
            c = psu_consent(request, ("ReadTransactionsBasic", "ReadTransactionsDetail"))
            if isinstance(c, JSONResponse):
                return c
            if _account_index(account_id) is None:
                return ob_error(400, "400 BadRequest", f"Account {account_id} not found", "AC01",
                                "AccountId", fapi_id(request))
            items = filter_txs(request, c, account_id)
            return items if isinstance(items, JSONResponse) else paged(request, "Transaction", items)

    def consent_json(c: Consent) -> dict[str, Any]:
        out: dict[str, Any] = {"ConsentId": c.consent_id, "CreationDateTime": _iso(c.created), "Status": c.status,
                               "StatusUpdateDateTime": _iso(c.updated), "Permissions": c.permissions}
        for key, value in (("ExpirationDateTime", c.expires), ("TransactionFromDateTime", c.from_dt),
                           ("TransactionToDateTime", c.to_dt)):
            if value:
                out[key] = value
        return out

    def _account_index(account_id: str) -> int | None:
        for k in range(len(ACCOUNTS)):
            if account_id == f"acc-{k + 1:03d}":
                return k
        return None

    app.state.credentials = {"client_id": CLIENT_ID, "private_key": practice_key()[0]}  # practice mode
    app.state.config = {}
    return app
