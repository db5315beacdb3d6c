"""Cornerstone OnDemand OAuth 2.0: client credentials sent as a JSON body (``clientId``, ``clientSecret``,
``grantType``, ``scope``) to ``https://{corp}.csod.com/services/api/oauth2/token``, as csod.dev's
Authentication guide shows; the reply is the usual ``{access_token, expires_in, token_type, scope}``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from connectors.auth import (
    AuthContext,
    Authenticator,
    OAuth2ClientCredentialsAuthenticator,
    _vendor_oauth_error,
)
from connectors.errors import AuthFailed, ConnectorError
from connectors.manifest import CustomAuth, OAuth2ClientCredentials


class CsodClientCredentials(OAuth2ClientCredentialsAuthenticator):
    """Client credentials with Cornerstone's JSON token request."""

    async def _renew(self, current: Mapping[str, Any]) -> dict[str, Any]:
        if not self.ctx.token_url:
            raise AuthFailed("cornerstone: no token URL configured")
        body = {"clientId": str(self.ctx.secrets.get("client_id", "")),
                "clientSecret": str(self.ctx.secrets.get("client_secret", "")),
                "grantType": "client_credentials", "scope": " ".join(self.spec.scopes)}
        try:
            resp = await self.ctx.client.post(self.ctx.token_url, json=body, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ConnectorError(f"token endpoint unreachable: {exc!r}") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise ConnectorError(f"token endpoint answered {resp.status_code}: {_vendor_oauth_error(resp)}")
        reply = resp.json() if resp.content else {}
        if resp.status_code != 200 or not isinstance(reply, dict) or not reply.get("access_token"):
            raise AuthFailed(f"token request refused: {_vendor_oauth_error(resp)}", status=resp.status_code)
        now = time.time()
        return {"access_token": reply["access_token"], "token_type": reply.get("token_type", "Bearer"),
                "obtained_at": now, "expires_at": now + float(reply.get("expires_in", 3600)),
                "scope": reply.get("scope", "")}


def csod_client_credentials(spec: CustomAuth, ctx: AuthContext) -> Authenticator:
    """Factory for ``auth: {type: custom, name: csod_client_credentials, options: {scopes: [...]}}``."""
    inner = OAuth2ClientCredentials(type="oauth2_client_credentials", scopes=list(spec.options.get("scopes", [])),
                                    refresh_margin_seconds=int(spec.options.get("refresh_margin_seconds", 120)))
    return CsodClientCredentials(inner, ctx)
