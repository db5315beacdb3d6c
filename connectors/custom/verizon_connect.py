"""Verizon Connect Reveal REST (FIM) parts the manifest vocabulary cannot express.

* auth ``verizon_connect_token``: ``GET /token`` with HTTP basic (the Reveal REST integration user and password)
  answers the token as plain text (some tenants wrap it in JSON or quotes); it lives about 20 minutes. Every call
  then sends ``Authorization: Atmosphere atmosphere_app_id=<App ID>, Bearer <token>``. The token is renewed
  ahead of its expiry and again after a 401 (the runtime asks for exactly one renewal per call).
* paginator ``vehicle_windows``: Reveal has no paged feed across the fleet. The stream's own path lists the
  vehicles (``GET /cmd/v1/vehicles``); then, per vehicle, ``child_path`` is read in consecutive time windows
  (``/rad/v1/vehicles/{vehicle}/status/history?startdatetimeutc=&enddatetimeutc=``, or ``/segments`` with a
  start only). With ``mode: bulk`` the vehicle numbers are POSTed in chunks of ``page_size`` instead
  (``POST /rad/v1/vehicles/locations`` with a JSON list of numbers).

Paginator options:
    child_path: path of one vehicle's records, with ``{vehicle}``.
    vehicle_ids: JMESPath giving the vehicle numbers from the vehicle list (``[*].VehicleNumber``).
    vehicle_field: the record field that receives the vehicle number (``VehicleNumber``).
    start_param / end_param: the window's query parameters (``end_param`` may be left out: segments are the
        24 hours from the start).
    window_hours: the longest window asked for in one call.
    lookback_hours: how far back the first read starts when neither a cursor nor ``from_param`` is set.
    from_param: a request parameter (rendered from the connection's settings, then removed) naming where the
        first read starts; the incremental cursor (``incremental: {type: paginator}``) wins when set.
    overlap_minutes: how far before the cursor the next read starts (late device uploads); repeats are
        dropped by the engine's content hashes.
    nested: a list field inside each reply item to flatten (``Segments``), copying ``copy`` fields
        (``{DriverNumber: Driver.DriverNumber}``) from the item onto each element.
    mode: ``windows`` (default) or ``bulk``; ``bulk_value``: JMESPath of the record inside one bulk item
        (``ContentResource.Value``), items whose ``StatusCode`` is not 200 are left out.

The vehicle list and the read's time span live in the checkpoint, so a read resumes at the next window.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import jmespath

from connectors.auth import AuthContext, Authenticator, OutgoingRequest
from connectors.custom.session_logins import SessionLoginAuthenticator
from connectors.errors import AuthFailed, ConnectorError
from connectors.manifest import CustomAuth
from connectors.paginators import Paginator


def _reveal_message(resp: httpx.Response) -> str:
    """Reveal's error text: ASP.NET ``{"Message": ...}`` bodies, or plain text."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:300] or resp.reason_phrase
    if isinstance(body, dict):
        for key in ("Message", "message", "error_description", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return str(body)[:300]


def token_from_reply(text: str) -> str:
    """The token of a ``GET /token`` reply: plain text, a JSON string, or ``{"token": ...}``."""
    raw = text.strip()
    if raw.startswith("{"):
        try:
            body = json.loads(raw)
        except ValueError:
            return ""
        for key in ("token", "Token", "access_token", "AccessToken"):
            if isinstance(body.get(key), str):
                return str(body[key]).strip()
        return ""
    return raw.strip('"').strip()


class RevealTokenAuthenticator(SessionLoginAuthenticator):
    """Basic-auth token log-in, then the Atmosphere header with the app id and the bearer token."""

    default_ttl = 18 * 60.0  # tokens last about 20 minutes: renew two minutes early

    async def login(self) -> str:
        """``GET {token_url}`` with HTTP basic; the body is the token."""
        url = self.ctx.token_url or self.ctx.base_url.rstrip("/") + "/token"
        resp = await self.ctx.client.get(url, auth=(self.secret("username"), self.secret("password")),
                                         headers={"Accept": "text/plain"})
        if resp.status_code >= 500 or resp.status_code == 429:
            raise ConnectorError(f"Verizon Connect token request answered {resp.status_code}: {_reveal_message(resp)}")
        if resp.status_code != 200:
            raise AuthFailed(f"Verizon Connect refused the REST user name or password: {_reveal_message(resp)}",
                             status=resp.status_code)
        token = token_from_reply(resp.text)
        if not token:
            raise AuthFailed("Verizon Connect's token reply was empty")
        return token

    def decorate(self, request: OutgoingRequest, token: str) -> None:
        """``Authorization: Atmosphere atmosphere_app_id=<app id>, Bearer <token>``."""
        app_id = str(self.ctx.config.get("app_id") or "").strip()
        if not app_id:
            raise AuthFailed("verizon_connect: the connection has no App ID; add the App ID from the Reveal "
                             "developer portal (My Apps)")
        request.headers["Authorization"] = f"Atmosphere atmosphere_app_id={app_id}, Bearer {token}"


def verizon_connect_token(spec: CustomAuth, ctx: AuthContext) -> Authenticator:
    """Factory registered as ``verizon_connect_token``."""
    return RevealTokenAuthenticator(spec, ctx)


def _parse(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class VehicleWindowsPaginator(Paginator):
    """The vehicle list, then each vehicle's records in consecutive windows (or in bulk POSTs)."""

    type_name = "vehicle_windows"

    def initial(self) -> dict[str, Any]:
        return {"vehicles": None, "index": 0}

    @property
    def _opts(self) -> dict[str, Any]:
        return dict(self.spec.options)

    def _fmt(self, dt: datetime) -> str:
        return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _span(self, request: OutgoingRequest) -> tuple[datetime, datetime]:
        """Where this read starts and ends (fixed at the first request, kept in the position)."""
        configured = request.params.pop(str(self._opts.get("from_param", "from")), "")
        if self.pos.get("from") and self.pos.get("until"):
            return _parse(str(self.pos["from"])), _parse(str(self.pos["until"]))
        # The end is exclusive and sent in whole seconds: round up, so a point of this very second is in.
        until = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)
        if self.since:
            start = _parse(self.since) - timedelta(minutes=float(self._opts.get("overlap_minutes", 0)))
        elif configured:
            start = _parse(configured)
        else:
            start = until - timedelta(hours=float(self._opts.get("lookback_hours", 48)))
        return start, until

    def _window(self, start: datetime, until: datetime) -> tuple[datetime, datetime]:
        ws = _parse(str(self.pos["window"])) if self.pos.get("window") else start
        return ws, min(ws + timedelta(hours=float(self._opts.get("window_hours", 24))), until)

    def prepare(self, request: OutgoingRequest) -> None:
        start, until = self._span(request)
        vehicles = self.pos.get("vehicles")
        if vehicles is None:  # the vehicle list
            self.pos = {**self.pos, "from": start.isoformat(), "until": until.isoformat()}
            return
        opts = self._opts
        request.params = {}
        if opts.get("mode") == "bulk":
            size = max(1, int(self.spec.page_size))
            index = int(self.pos.get("index", 0))
            request.method = "POST"
            request.url = self.base_url.rstrip("/") + str(opts["child_path"])
            request.json_body = [str(v) for v in vehicles[index * size:(index + 1) * size]]
            return
        vehicle = str(vehicles[int(self.pos.get("index", 0))])
        request.url = self.base_url.rstrip("/") + str(opts["child_path"]).replace("{vehicle}", quote(vehicle, safe=""))
        ws, we = self._window(start, until)
        if opts.get("start_param"):
            request.params[str(opts["start_param"])] = self._fmt(ws)
        if opts.get("end_param"):
            request.params[str(opts["end_param"])] = self._fmt(we)

    def _current_vehicle(self) -> str | None:
        vehicles = self.pos.get("vehicles")
        if vehicles is None or self._opts.get("mode") == "bulk":
            return None
        index = int(self.pos.get("index", 0))
        return str(vehicles[index]) if index < len(vehicles) else None

    def enrich(self, records: list[Any]) -> list[Any]:
        if self.pos.get("vehicles") is None:
            return []  # the vehicle list is not a page of child records
        opts = self._opts
        field = str(opts.get("vehicle_field", "VehicleNumber"))
        if opts.get("mode") == "bulk":
            value_path = str(opts.get("bulk_value", "ContentResource.Value"))
            out = []
            for item in records:
                if not isinstance(item, dict) or int(item.get("StatusCode") or 200) != 200:
                    continue
                value = jmespath.search(value_path, item)
                if isinstance(value, dict):
                    out.append({field: item.get(field), **value})
            return out
        vehicle = self._current_vehicle()
        flat: list[Any] = []
        nested = opts.get("nested")
        for item in records:
            if not isinstance(item, dict):
                continue
            if nested:
                copies = {k: jmespath.search(str(e), item) for k, e in dict(opts.get("copy") or {}).items()}
                flat.extend({**child, **copies, field: vehicle} for child in item.get(str(nested)) or []
                            if isinstance(child, dict))
            else:
                flat.append({**item, field: item.get(field) or vehicle})
        return flat

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        opts = self._opts
        start, until = self._span(request)
        if self.pos.get("vehicles") is None:
            ids = [str(v) for v in (jmespath.search(str(opts.get("vehicle_ids", "[*].VehicleNumber")), body) or [])
                   if v not in (None, "")]
            self.pos = {**self.pos, "vehicles": ids, "index": 0, "window": None}
            return bool(ids)
        vehicles = list(self.pos["vehicles"])
        index = int(self.pos.get("index", 0))
        if opts.get("mode") == "bulk":
            size = max(1, int(self.spec.page_size))
            if (index + 1) * size >= len(vehicles):
                return False
            self.pos = {**self.pos, "index": index + 1}
            return True
        _ws, we = self._window(start, until)
        if opts.get("start_param") and we < until:
            self.pos = {**self.pos, "window": we.isoformat()}
            return True
        if index + 1 >= len(vehicles):
            return False
        self.pos = {**self.pos, "index": index + 1, "window": None}
        return True
