"""Zoom's Server-to-Server OAuth and webhook URL validation, which the manifest vocabulary cannot express.

* auth ``zoom_account_credentials``: ``POST https://zoom.us/oauth/token?grant_type=account_credentials&
  account_id=<id>`` with HTTP basic ``client_id:client_secret``; an hour-long token, no refresh token (a new
  one is requested when it is about to expire or after a 401).
* :func:`url_validation_reply`: Zoom's ``endpoint.url_validation`` challenge is answered with
  ``{"plainToken", "encryptedToken": hex HMAC-SHA256(secret token, plainToken)}`` within three seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

import httpx

from connectors.auth import AuthContext, OAuth2ClientCredentialsAuthenticator
from connectors.errors import AuthFailed, ConnectorError
from connectors.manifest import CustomAuth, OAuth2ClientCredentials


def _reason(resp: httpx.Response) -> str:
    """Zoom's token errors: ``{"reason": "...", "error": "invalid_client"}``."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300] or resp.reason_phrase
    if isinstance(body, dict):
        return str(body.get("reason") or body.get("error_description") or body.get("error") or body)[:300]
    return str(body)[:300]


class ZoomAccountCredentialsAuthenticator(OAuth2ClientCredentialsAuthenticator):
    """Server-to-Server OAuth: the grant and the account id travel in the token URL's query string."""

    async def _renew(self, current: Mapping[str, Any]) -> dict[str, Any]:
        if not self.ctx.token_url:
            raise AuthFailed("zoom: no token URL configured")
        params = {"grant_type": "account_credentials", "account_id": str(self.ctx.config.get("account_id", ""))}
        try:
            resp = await self.ctx.client.post(self.ctx.token_url, params=params,
                                              headers={"Accept": "application/json", **self._client_auth({})})
        except httpx.HTTPError as exc:
            raise ConnectorError(f"Zoom token endpoint unreachable: {exc!r}") from exc
        if resp.status_code == 429 or resp.status_code >= 500:
            raise ConnectorError(f"Zoom token endpoint answered {resp.status_code}: {_reason(resp)}")
        if resp.status_code != 200:
            raise AuthFailed(f"Zoom refused the token request: {_reason(resp)}", status=resp.status_code)
        body = resp.json()
        now = time.time()
        tokens: dict[str, Any] = {"access_token": body["access_token"], "token_type": body.get("token_type", "bearer"),
                                  "obtained_at": now, "expires_at": now + float(body.get("expires_in", 3599))}
        if body.get("scope"):
            tokens["scope"] = body["scope"]
        return tokens


def zoom_account_credentials(spec: CustomAuth, ctx: AuthContext) -> ZoomAccountCredentialsAuthenticator:
    """Factory registered as ``auth: {type: custom, name: zoom_account_credentials}``."""
    inner = OAuth2ClientCredentials(type="oauth2_client_credentials", client_auth="basic",
                                    refresh_margin_seconds=int(spec.options.get("refresh_margin_seconds", 300)))
    return ZoomAccountCredentialsAuthenticator(inner, ctx)


def url_validation_reply(secret_token: str, payload: Any) -> dict[str, str] | None:
    """The answer to an ``endpoint.url_validation`` event, or None when ``payload`` is not one."""
    if not isinstance(payload, dict) or payload.get("event") != "endpoint.url_validation":
        return None
    plain = str((payload.get("payload") or {}).get("plainToken", ""))
    if not plain:
        return None
    encrypted = hmac.new(secret_token.encode(), plain.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain, "encryptedToken": encrypted}
