"""Shiftboard's JSON-RPC 2.0 API over signed HTTPS GETs: an authenticator and a paginator.

Every call is ``GET {host}/?access_key_id=…&jsonrpc=2.0&id=<n>&method=<rpc method>&params=<base64 JSON>
&signature=<base64 HMAC-SHA1>``, the signature keyed with the account's signature key over the text
``"method" + method + "params" + <the JSON text of params>`` (Shiftboard's own clients,
``shiftboard/python-api-client`` ``shiftboard/call.py`` and ``shiftboard/postman-api-client``).

A manifest describes a call the usual way and the authenticator turns it into that envelope: the RPC
method is the stream's (or write's) ``method`` query parameter and the RPC params are the request's JSON
body (a stream's ``body``, a write's payload, a look-up's ``body``); the HTTP verb always becomes GET.

The ``shiftboard_page`` paginator adds ``page: {start, batch}`` to the RPC params (``start`` counts from 1)
and follows ``result.page.next`` until Shiftboard leaves it out. Shiftboard's list methods have no
"changed since" filter that we could confirm, so with ``days_back``/``days_ahead`` it also selects a rolling
window of shift dates (``select.start_date``/``select.end_date``) fixed when the read starts, so a
checkpoint resumes in the same window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import jmespath

from connectors.auth import AuthContext, Authenticator, OutgoingRequest
from connectors.errors import ConnectorError
from connectors.manifest import CustomAuth
from connectors.paginators import Paginator
from connectors.templating import render

JSONRPC_VERSION = "2.0"


def params_json(params: Any) -> str:
    """The JSON text of RPC params, as sent (base64) and signed: compact, keys in the order given."""
    return json.dumps({} if params is None else params, separators=(",", ":"))


def signature(signature_key: str, method: str, params_text: str) -> str:
    """base64(HMAC-SHA1(signature_key, ``"method" + method + "params" + params_text``))."""
    message = f"method{method}params{params_text}".encode()
    return base64.b64encode(hmac.new(signature_key.encode(), message, hashlib.sha1).digest()).decode()


def signed_query(access_key_id: str, signature_key: str, method: str, params: Any, call_id: int) -> dict[str, str]:
    """The query string of one signed GET call."""
    text = params_json(params)
    return {
        "access_key_id": access_key_id,
        "jsonrpc": JSONRPC_VERSION,
        "id": str(call_id),
        "method": method,
        "params": base64.b64encode(text.encode()).decode(),
        "signature": signature(signature_key, method, text),
    }


def to_local_times(params: Any, fields: list[str], default_zone: str) -> Any:
    """Shiftboard takes shift times as local wall-clock times without an offset (``2026-12-24T07:00:00``) in the
    shift's ``timezone``; rewrite ISO values that carry an offset (a care record's instant) to that form."""
    if not isinstance(params, dict) or not fields:
        return params
    out = dict(params)
    try:
        zone = ZoneInfo(str(out.get("timezone") or default_zone))
    except (KeyError, ValueError):
        raise ConnectorError(f"Shiftboard: unknown time zone {out.get('timezone')!r}") from None
    for name in fields:
        value = out.get(name)
        if not isinstance(value, str):
            continue
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            continue  # a date or a value Shiftboard will explain in its own error
        if parsed.tzinfo is not None:
            out[name] = parsed.astimezone(zone).replace(tzinfo=None).isoformat(timespec="seconds")
    return out


class ShiftboardSignature(Authenticator):
    """Turn a described call into Shiftboard's signed JSON-RPC GET (see the module docstring).

    Options: ``access_key_id`` / ``signature_key`` templates, and ``local_time_fields`` (RPC params written as
    local times without an offset, in the params' ``timezone`` or ``default_timezone``).
    """

    def __init__(self, spec: CustomAuth, ctx: AuthContext) -> None:
        super().__init__(spec, ctx)
        self._ids = itertools.count(1)

    def _credential(self, name: str) -> str:
        template = self.spec.options.get(name)
        value = render(str(template), self.ctx.template_context) if template else (
            self.ctx.secrets.get(name) or self.ctx.config.get(name))
        if not value:
            raise ConnectorError(f"Shiftboard: the connection has no {name.replace('_', ' ')}; add it in the "
                                 "connection settings (Shiftboard admin > API configuration)")
        return str(value)

    async def apply(self, request: OutgoingRequest) -> None:
        """Sign the call: RPC method from ``params['method']``, RPC params from the JSON body."""
        method = request.params.pop("method", "")
        if not method:
            raise ConnectorError("Shiftboard: the call names no RPC method (a `method` parameter)")
        extra = sorted(request.params)
        if extra:
            # Anything outside the signed envelope would reach Shiftboard unsigned (or be ignored): refuse it.
            raise ConnectorError(f"Shiftboard: put {', '.join(extra)} in the RPC params (the body), not the query")
        opts = self.spec.options
        params = to_local_times(request.json_body, [str(f) for f in opts.get("local_time_fields") or []],
                                str(opts.get("default_timezone", "Europe/London")))
        request.params = signed_query(self._credential("access_key_id"), self._credential("signature_key"),
                                      method, params, next(self._ids))
        request.method = "GET"
        request.json_body = None


def shiftboard_signature(spec: CustomAuth, ctx: AuthContext) -> ShiftboardSignature:
    """Factory registered as ``auth: {type: custom, name: shiftboard_signature}``."""
    return ShiftboardSignature(spec, ctx)


class ShiftboardPagePaginator(Paginator):
    """``page: {start, batch}`` in the RPC params, following ``result.page.next``; optional date window.

    Options:
        next_path: JMESPath to the next page object (``result.page.next``).
        days_back / days_ahead: select shifts from ``days_back`` days before today to ``days_ahead`` after.
        start_field / end_field: the ``select`` keys of the window (``start_date`` / ``end_date``).
    """

    type_name = "shiftboard_page"

    @property
    def _opts(self) -> dict[str, Any]:
        return dict(self.spec.options)

    def initial(self) -> dict[str, Any]:
        opts = self._opts
        pos: dict[str, Any] = {"start": 1}
        if "days_back" in opts or "days_ahead" in opts:
            today = datetime.now(UTC).date()
            pos["from"] = (today - timedelta(days=int(opts.get("days_back", 28)))).isoformat()
            pos["to"] = (today + timedelta(days=int(opts.get("days_ahead", 56)))).isoformat()
        return pos

    def prepare(self, request: OutgoingRequest) -> None:
        body: dict[str, Any] = dict(request.json_body) if isinstance(request.json_body, dict) else {}
        if self.pos.get("from"):
            opts = self._opts
            select = dict(body.get("select") or {})
            select[str(opts.get("start_field", "start_date"))] = self.pos["from"]
            select[str(opts.get("end_field", "end_date"))] = self.pos["to"]
            body["select"] = select
        body["page"] = {"start": int(self.pos["start"]), "batch": int(self.spec.page_size)}
        request.json_body = body

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        nxt = jmespath.search(str(self._opts.get("next_path", "result.page.next")), body)
        if not isinstance(nxt, dict) or nxt.get("start") is None:
            return False
        start = int(nxt["start"])
        if start <= int(self.pos["start"]) or not records:
            return False  # a next page that does not move on would loop for ever
        self.pos = {**self.pos, "start": start}
        return True
