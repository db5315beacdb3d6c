"""OBIE authentication and the account-access consent flow.

* :class:`ObieAuthenticator` (``auth: {type: custom, name: obie}``): the authorization-code authenticator of
  the framework (refresh ahead of expiry, one refresh on a 401), with ``private_key_jwt`` client
  authentication (PS256) at the token endpoint and the FAPI headers on every call
  (``x-fapi-interaction-id``, ``x-fapi-auth-date``, ``x-fapi-customer-ip-address``) plus the bank profile's
  extra headers (Lloyds ``x-lbg-channel``).
* :func:`create_consent`, :func:`authorization_url`, :func:`complete_authorisation`, :func:`get_consent`: the
  Connect flow (client-credentials token → ``POST /account-access-consents`` → PSU authorises at the bank with
  a request object naming the consent → code exchange → the consent reads ``Authorised``);
  :func:`consent_expiry`, :func:`consent_days_left`, :func:`needs_reauthorisation`: the 90-day consent.
"""

from __future__ import annotations

import math
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from connectors.auth import (
    AuthContext,
    OAuth2AuthorizationCodeAuthenticator,
    OutgoingRequest,
    register_auth,
)
from connectors.banking.profiles import profile_for
from connectors.errors import AuthFailed, VendorError
from connectors.manifest import CustomAuth, OAuth2AuthorizationCode
from connectors.runtime import ConnectorSession

AIS_PREFIX = "/open-banking/v3.1/aisp"
CONSENT_DAYS = 90  # how long a consent is asked for (the customer re-confirms access at least this often)
REAUTHORISE_DAYS = 14  # from this many days before the end, prompt the home to re-authorise
AUTHORISED = ("Authorised", "AUTH")
DEFAULT_PERMISSIONS = ("ReadAccountsDetail", "ReadBalances", "ReadTransactionsCredits", "ReadTransactionsDebits",
                       "ReadTransactionsDetail")


def client_assertion(client_id: str, audience: str, private_key: str, kid: str = "") -> str:
    """A ``private_key_jwt`` client assertion (PS256, 5 minutes)."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": audience, "jti": str(uuid.uuid4()), "iat": now,
              "exp": now + 300}
    try:
        return jwt.encode(claims, private_key, algorithm="PS256", headers={"kid": kid} if kid else None)
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise AuthFailed(f"cannot sign the client assertion: {exc}") from exc


class ObieAuthenticator(OAuth2AuthorizationCodeAuthenticator):
    """Authorization code + refresh, ``private_key_jwt`` client auth and FAPI headers."""

    def __init__(self, spec: CustomAuth, ctx: AuthContext) -> None:
        opts = spec.options
        inner = OAuth2AuthorizationCode(type="oauth2_authorization_code", scopes=list(opts.get("scopes", ["accounts"])),
                                        refresh_margin_seconds=int(opts.get("refresh_margin_seconds", 60)))
        super().__init__(inner, ctx)
        self.profile = profile_for(ctx.config.get("environment"))

    def _client_auth(self, data: dict[str, str]) -> dict[str, str]:
        s = self.ctx.secrets
        data["client_id"] = str(s.get("client_id", ""))
        data["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        data["client_assertion"] = client_assertion(str(s.get("client_id", "")), str(self.ctx.token_url or ""),
                                                    str(s.get("private_key", "")), str(s.get("kid", "")))
        return {}

    def fapi_headers(self) -> dict[str, str]:
        """Headers every AIS call carries."""
        headers = {"x-fapi-interaction-id": str(uuid.uuid4())}
        cfg = self.ctx.config
        if cfg.get("psu_last_logged_in"):
            headers["x-fapi-auth-date"] = str(cfg["psu_last_logged_in"])
        if cfg.get("psu_ip_address"):
            headers["x-fapi-customer-ip-address"] = str(cfg["psu_ip_address"])
        if self.profile is not None:
            headers.update(self.profile.extra_headers)
        return headers

    async def apply(self, request: OutgoingRequest) -> None:
        """Bearer token (refreshed ahead of expiry) plus the FAPI and profile headers."""
        await super().apply(request)
        for key, value in self.fapi_headers().items():
            request.headers.setdefault(key, value)

    async def client_credentials_token(self) -> str:
        """A TPP token (``client_credentials``, scope ``accounts``) for the consent endpoints."""
        data = {"grant_type": "client_credentials", "scope": "accounts"}
        tokens = await self._token_request(data, self._client_auth(data))
        return str(tokens["access_token"])


register_auth("obie", lambda spec, ctx: ObieAuthenticator(spec, ctx))


def _obie(session: ConnectorSession) -> ObieAuthenticator:
    if not isinstance(session.auth, ObieAuthenticator):
        raise AuthFailed(f"{session.manifest.id} does not use OBIE authentication")
    return session.auth


def _raise_for(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        body = resp.json()
    except ValueError:
        body = {}
    errors = body.get("Errors") if isinstance(body, dict) else None
    if errors:
        msg = "; ".join(f"{e.get('ErrorCode')}: {e.get('Message')}" for e in errors if isinstance(e, dict))
        raise VendorError(resp.status_code, msg, code=str(errors[0].get("ErrorCode")))
    raise VendorError(resp.status_code, resp.text[:300] or resp.reason_phrase)


async def create_consent(session: ConnectorSession, permissions: Sequence[str] = DEFAULT_PERMISSIONS, *,
                         transaction_from: str | None = None, expires: str | None = None) -> dict[str, Any]:
    """``POST /account-access-consents`` with a TPP token; returns the consent's ``Data`` (``ConsentId``...)."""
    data: dict[str, Any] = {"Permissions": list(permissions)}
    if transaction_from:
        data["TransactionFromDateTime"] = transaction_from
    if expires:
        data["ExpirationDateTime"] = expires
    resp = await _tpp_call(session, "POST", "/account-access-consents", {"Data": data, "Risk": {}})
    consent: dict[str, Any] = resp.json()["Data"]
    return consent


async def _tpp_call(session: ConnectorSession, method: str, path: str, body: Any = None) -> httpx.Response:
    """A consent-endpoint call with a TPP (``client_credentials``) token; OBIE errors raised as VendorError."""
    auth = _obie(session)
    token = await auth.client_credentials_token()
    resp = await session.client.request(method, f"{session.base_url}{AIS_PREFIX}{path}", json=body,
                                        headers={"Authorization": f"Bearer {token}", **auth.fapi_headers()})
    _raise_for(resp)
    return resp


def authorization_url(session: ConnectorSession, consent_id: str, redirect_uri: str, *, state: str | None = None,
                      nonce: str | None = None, public_base: str | None = None) -> str:
    """Where to send the PSU: the bank's authorize endpoint with a signed request object for the consent.

    ``public_base`` is where a browser reaches the bank when the manifest's authorize URL is a path (a local
    sandbox served in-process: the session's own base URL is not one a browser can open).
    """
    _obie(session)
    envs = session.manifest.environments
    env = envs.get(str(session.config.get("environment", "production")))
    if env is None or env.base_url.rstrip("/") != session.base_url:
        env = envs.get("sandbox") if "sandbox" in envs else env  # a base-URL override means a local sandbox
    authorize = (env.authorize_url if env else None) or ""
    if "://" not in authorize:
        authorize = (public_base or session.base_url).rstrip("/") + authorize
    s = session.secrets
    client_id = str(s.get("client_id", ""))
    nonce = nonce or secrets.token_hex(4)  # Lloyds accepts at most 8 characters
    state = state or secrets.token_urlsafe(12)
    intent = {"value": consent_id, "essential": True}
    claims = {"iss": client_id, "aud": authorize.split("/as/")[0] if "/as/" in authorize else authorize,
              "response_type": "code id_token", "client_id": client_id, "redirect_uri": redirect_uri,
              "scope": "openid accounts", "state": state, "nonce": nonce, "max_age": 86400,
              "exp": int(time.time()) + 300,
              "claims": {"userinfo": {"openbanking_intent_id": intent},
                         "id_token": {"openbanking_intent_id": intent,
                                      "acr": {"essential": True, "values": ["urn:openbanking:psd2:sca",
                                                                            "urn:openbanking:psd2:ca"]}}}}
    request_object = jwt.encode(claims, str(s.get("private_key", "")), algorithm="PS256",
                                headers={"kid": str(s.get("kid", ""))} if s.get("kid") else None)
    query = {"response_type": "code id_token", "client_id": client_id, "redirect_uri": redirect_uri,
             "scope": "openid accounts", "state": state, "nonce": nonce, "request": request_object}
    return f"{authorize}?{urlencode(query)}"


async def complete_authorisation(session: ConnectorSession, code: str, redirect_uri: str) -> Mapping[str, Any]:
    """Exchange the code the bank redirected back with; tokens are saved in the session's token store."""
    tokens = await _obie(session).exchange_code(code, redirect_uri)
    return {**tokens, "authorised_at": datetime.now(UTC).isoformat()}


async def get_consent(session: ConnectorSession, consent_id: str) -> dict[str, Any]:
    """``GET /account-access-consents/{id}`` with a TPP token; the consent's ``Data``."""
    resp = await _tpp_call(session, "GET", f"/account-access-consents/{consent_id}")
    consent: dict[str, Any] = resp.json()["Data"]
    return consent


def consent_authorised(status: str) -> bool:
    """True for an authorised consent (``Authorised`` in v3.1, ``AUTH`` in v4)."""
    return status in AUTHORISED


def consent_expiry(now: datetime | None = None, days: int = CONSENT_DAYS) -> str:
    """The ``ExpirationDateTime`` to ask for: ``days`` from now (OBIE ISO 8601 with offset, whole seconds)."""
    at = (now or datetime.now(UTC)) + timedelta(days=days)
    return at.astimezone(UTC).replace(microsecond=0).isoformat()


def consent_days_left(expires: str | None, now: datetime | None = None) -> int | None:
    """Days until the consent ends, a part-day counted whole (negative once it has ended); None without an end."""
    if not expires:
        return None
    try:
        at = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    seconds = (at - (now or datetime.now(UTC))).total_seconds()
    # a part-day counts as a day: "1 day left" until the very end, "-1" as soon as it has ended
    return math.ceil(seconds / 86400) if seconds >= 0 else -math.ceil(-seconds / 86400)


def needs_reauthorisation(expires: str | None, now: datetime | None = None, warn_days: int = REAUTHORISE_DAYS) -> bool:
    """True when the consent ends within ``warn_days`` (or has ended): time to ask the customer again."""
    left = consent_days_left(expires, now)
    return left is not None and left <= warn_days


async def revoke_consent(session: ConnectorSession, consent_id: str) -> None:
    """``DELETE /account-access-consents/{id}`` with a TPP token (a consent replaced by a new one)."""
    await _tpp_call(session, "DELETE", f"/account-access-consents/{consent_id}")
