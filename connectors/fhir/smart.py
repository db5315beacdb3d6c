"""SMART on FHIR backend services (Cerner / Oracle Health Millennium, Epic) and per-resident FHIR searches.

* Auth ``smart_backend``: discover the token endpoint at ``{fhir base}/.well-known/smart-configuration``, then
  ``client_credentials`` with a ``private_key_jwt`` client assertion (RS384 by default, header ``kid`` naming
  the key in the app's registered JWKS, optional ``jku``; claims ``iss`` = ``sub`` = client id, ``aud`` = the
  token endpoint, a fresh ``jti`` and ``exp`` at most five minutes ahead). Scopes are SMART ``system/*.read``
  ones when the vendor wants them (Cerner does; Epic takes the scopes registered with the app).
* Paginator ``fhir_patients``: hospital EPRs refuse clinical searches without a patient, so a stream reads one
  resident after another (``patient=<id>`` from the connection's list) and follows each searchset Bundle's
  ``link[relation=next]``; the checkpoint holds the resident and the next link, so a read resumes exactly.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import jwt

from connectors.auth import AuthContext, OutgoingRequest, _OAuth2Base, register_auth
from connectors.errors import AuthFailed, ConnectorError
from connectors.manifest import CustomAuth
from connectors.paginators import Paginator, register_paginator
from connectors.templating import render

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_SPLIT = re.compile(r"[\s,]+")


def next_link(body: Any) -> str | None:
    """The ``next`` link of a FHIR Bundle, if any."""
    if not isinstance(body, dict):
        return None
    for link in body.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


class SmartBackendAuthenticator(_OAuth2Base):
    """SMART backend services: a signed client assertion exchanged for a short-lived bearer token.

    Options (manifest ``auth.options``): ``fhir_base`` (path of the FHIR base under the base URL, may use
    ``{config.x}``), ``algorithm`` (RS384 or ES384), ``scopes`` (list; empty sends none), ``lifetime_seconds``
    (assertion lifetime, at most 300), ``refresh_margin_seconds``.
    """

    def __init__(self, spec: CustomAuth, ctx: AuthContext) -> None:
        super().__init__(spec, ctx)
        opts = spec.options
        self.algorithm = str(opts.get("algorithm", "RS384"))
        self.scopes = [str(s) for s in opts.get("scopes", [])]
        self.lifetime = min(300, int(opts.get("lifetime_seconds", 300)))
        self.margin = float(opts.get("refresh_margin_seconds", 30))
        self.fhir_base = render(str(opts.get("fhir_base", "")), ctx.template_context).rstrip("/")
        self.discovered: dict[str, Any] | None = None

    def _expiring(self, tokens: Mapping[str, Any] | None) -> bool:
        if not tokens or not tokens.get("access_token"):
            return True
        expires_at = tokens.get("expires_at")
        return expires_at is not None and float(expires_at) - self.margin <= time.time()

    async def discover(self) -> dict[str, Any]:
        """``GET {fhir base}/.well-known/smart-configuration`` (once per session); sets the token URL."""
        if self.discovered is not None:
            return self.discovered
        url = f"{self.ctx.base_url}{self.fhir_base}/.well-known/smart-configuration"
        try:
            resp = await self.ctx.client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ConnectorError(f"SMART configuration unreachable at {url}: {exc!r}") from exc
        if resp.status_code != 200:
            raise ConnectorError(f"SMART configuration at {url} answered {resp.status_code}")
        body = resp.json()
        if not isinstance(body, dict) or not body.get("token_endpoint"):
            raise AuthFailed(f"{url} names no token_endpoint")
        methods = body.get("token_endpoint_auth_methods_supported") or ["private_key_jwt"]
        if "private_key_jwt" not in methods:
            raise AuthFailed(f"this server does not accept private_key_jwt client assertions ({methods})")
        self.discovered = body
        self.ctx.token_url = str(body["token_endpoint"])
        return body

    def assertion(self, token_url: str, now: int | None = None) -> str:
        """The signed client assertion for ``token_url``."""
        s = self.ctx.secrets
        client_id = str(s.get("client_id", ""))
        issued = int(now if now is not None else time.time())
        claims = {"iss": client_id, "sub": client_id, "aud": token_url, "jti": str(uuid.uuid4()),
                  "iat": issued, "nbf": issued, "exp": issued + self.lifetime}
        headers = {"kid": str(s.get("kid", "")), "typ": "JWT"}
        if s.get("jku"):
            headers["jku"] = str(s["jku"])
        try:
            return jwt.encode(claims, str(s.get("private_key", "")), algorithm=self.algorithm, headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise AuthFailed(f"cannot sign the client assertion: {exc}") from exc

    async def _renew(self, current: Mapping[str, Any]) -> dict[str, Any]:
        await self.discover()
        assert self.ctx.token_url is not None
        data = {"grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": self.assertion(self.ctx.token_url)}
        if self.scopes:
            data["scope"] = " ".join(self.scopes)
        return await self._token_request(data)


def smart_backend(spec: CustomAuth, ctx: AuthContext) -> SmartBackendAuthenticator:
    """Factory registered as ``auth: {type: custom, name: smart_backend}``."""
    return SmartBackendAuthenticator(spec, ctx)


class FhirPatientsPaginator(Paginator):
    """One resident after another (``patient=<id>``), following each Bundle's next link.

    Options: ``ids_param`` (the request parameter carrying the connection's list, removed before sending),
    ``param`` (the search parameter naming the patient, ``patient`` by default), ``count_param``.
    """

    type_name = "fhir_patients"

    def initial(self) -> dict[str, Any]:
        return {"index": 0}

    def _ids(self, request: OutgoingRequest) -> list[str]:
        raw = request.params.pop(str(self.spec.options.get("ids_param", "patient_ids")), "")
        return [part for part in _SPLIT.split(raw) if part]

    def prepare(self, request: OutgoingRequest) -> None:
        ids = self._ids(request)
        index = int(self.pos.get("index", 0))
        if index >= len(ids):
            name = self.spec.options.get("ids_param", "patient_ids")
            raise ConnectorError(f"nothing to read: the connection's list `{name}` is empty or shorter than the "
                                 f"checkpoint ({index + 1} needed, {len(ids)} given)")
        if self._apply_next_url(request):
            return
        request.params[str(self.spec.options.get("param", "patient"))] = ids[index]
        request.params[str(self.spec.options.get("count_param", "_count"))] = str(self.spec.page_size)

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        ids = self._ids(request)
        index = int(self.pos.get("index", 0))
        link = next_link(body)
        if link and records:
            self._follow(request, link)
            self.pos["index"] = index
            return True
        if index + 1 >= len(ids):
            return False
        self.pos = {"index": index + 1}
        return True


register_auth("smart_backend", smart_backend)
register_paginator("fhir_patients", FhirPatientsPaginator)
