"""Slack OAuth v2 with token rotation.

Slack answers ``oauth.v2.access`` with HTTP 200 even on failure (``{"ok": false, "error":
"invalid_refresh_token"}``), sends client credentials in the form body, and returns ``expires_in`` and a
new ``refresh_token`` only when token rotation is on for the app (then access tokens last 12 hours).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from connectors.auth import AuthContext, OAuth2AuthorizationCodeAuthenticator
from connectors.errors import AuthFailed, ConnectorError
from connectors.manifest import CustomAuth, OAuth2AuthorizationCode


class SlackOAuthV2Authenticator(OAuth2AuthorizationCodeAuthenticator):
    """Refresh rotating Slack tokens at ``oauth.v2.access``; read the ``ok`` flag, not the status."""

    async def _token_request(self, data: dict[str, str], headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        if not self.ctx.token_url:
            raise AuthFailed("slack: no token URL configured")
        form = {**data, "client_id": str(self.ctx.secrets.get("client_id", "")),
                "client_secret": str(self.ctx.secrets.get("client_secret", ""))}
        try:
            resp = await self.ctx.client.post(self.ctx.token_url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ConnectorError(f"Slack token endpoint unreachable: {exc!r}") from exc
        if resp.status_code == 429 or resp.status_code >= 500:
            raise ConnectorError(f"Slack token endpoint answered {resp.status_code}")
        try:
            body = resp.json()
        except ValueError:
            raise AuthFailed(f"Slack token endpoint answered {resp.status_code} without JSON") from None
        if not isinstance(body, dict) or body.get("ok") is not True or not body.get("access_token"):
            error = body.get("error") if isinstance(body, dict) else None
            reason = error or f"HTTP {resp.status_code} without an access token"
            raise AuthFailed(f"Slack refused the token refresh: {reason}", status=resp.status_code)
        now = time.time()
        tokens: dict[str, Any] = {"access_token": body["access_token"], "token_type": body.get("token_type", "bot"),
                                  "obtained_at": now}
        if body.get("expires_in") is not None:
            tokens["expires_at"] = now + float(body["expires_in"])
        if body.get("refresh_token"):
            tokens["refresh_token"] = body["refresh_token"]
        if body.get("scope"):
            tokens["scope"] = body["scope"]
        return tokens


def slack_oauth_v2(spec: CustomAuth, ctx: AuthContext) -> SlackOAuthV2Authenticator:
    """Factory registered as ``auth: {type: custom, name: slack_oauth_v2, options: {scopes: [...]}}``."""
    inner = OAuth2AuthorizationCode(type="oauth2_authorization_code", client_auth="body",
                                    scopes=list(spec.options.get("scopes", [])),
                                    refresh_margin_seconds=int(spec.options.get("refresh_margin_seconds", 300)))
    return SlackOAuthV2Authenticator(inner, ctx)
