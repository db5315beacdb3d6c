"""Log-in-then-token authenticators the manifest vocabulary cannot express.

* ``wheniwork_login``: When I Work. ``POST {token_url}`` (``https://api.login.wheniwork.com/login``) with the
  developer key in a ``W-Key`` header and ``{email, password}``; the reply's ``token`` goes in ``W-Token``
  on every call, with ``W-UserId`` choosing the account when the login sees several. Tokens last about a
  week.
* ``kashflow_session``: KashFlow REST. ``POST /v2/sessiontoken {UserName, Password}`` gives a temporary
  token and the positions of three memorable-word characters; ``PUT /v2/sessiontoken`` with those
  characters gives the session token, sent as ``Authorization: KfToken {token}``.

Both keep the token in the connection's TokenStore (so every worker shares one log-in), log in again
after a 401 (the runtime asks for exactly one refresh), and serialise log-ins per connection.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from connectors.auth import AuthContext, Authenticator, OutgoingRequest
from connectors.errors import AuthFailed, ConnectorError
from connectors.manifest import CustomAuth


def _vendor_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300] or resp.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "Message", "error", "Error", "error_description"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return str(body)[:300]


class SessionLoginAuthenticator(Authenticator):
    """Base: a token obtained by logging in, cached in the TokenStore until its time-to-live runs out."""

    can_refresh = True
    default_ttl = 3600.0

    def __init__(self, spec: CustomAuth, ctx: AuthContext) -> None:
        super().__init__(spec, ctx)
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.logins = 0

    @property
    def ttl(self) -> float:
        """Seconds a token is trusted before logging in again."""
        return float(self.spec.options.get("ttl_seconds", self.default_ttl))

    def secret(self, name: str) -> str:
        """A credential of the connection, or an AuthFailed naming what is missing."""
        value = self.ctx.secrets.get(name)
        if not value:
            raise AuthFailed(f"{self.ctx.connector_id}: the connection has no `{name}`; reconnect and enter it")
        return str(value)

    async def apply(self, request: OutgoingRequest) -> None:
        """Send the session token, logging in first when there is none."""
        if self._token is None or time.time() >= self._expires:
            stored = await self.ctx.token_store.load(self.ctx.connection_id)
            if stored and stored.get("access_token") and float(stored.get("expires_at", 0)) > time.time():
                self._token, self._expires = str(stored["access_token"]), float(stored["expires_at"])
            else:
                await self.refresh(force=False)
        assert self._token is not None
        self.decorate(request, self._token)

    async def refresh(self, *, force: bool) -> None:
        """Log in again (once per connection at a time; a log-in finished meanwhile is adopted)."""
        seen = self._token
        async with self._lock:
            if self._token != seen and self._token is not None:
                return
            try:
                token = await self.login()
            except httpx.HTTPError as exc:
                raise ConnectorError(f"{self.ctx.connector_id} log-in unreachable: {exc!r}") from exc
            self.logins += 1
            self._token, self._expires = token, time.time() + self.ttl
            await self.ctx.token_store.save(self.ctx.connection_id,
                                            {"access_token": token, "expires_at": self._expires,
                                             "obtained_at": time.time()})

    async def login(self) -> str:
        """Obtain a new token."""
        raise NotImplementedError

    def decorate(self, request: OutgoingRequest, token: str) -> None:
        """Put the token on a request."""
        raise NotImplementedError


class WhenIWorkAuthenticator(SessionLoginAuthenticator):
    """When I Work: developer key + email/password log-in, ``W-Token`` and ``W-UserId`` headers."""

    default_ttl = 6 * 24 * 3600.0  # tokens last a week; log in again a day early

    async def login(self) -> str:
        """``POST {token_url}`` with ``W-Key``; the reply carries ``token``."""
        url = self.ctx.token_url or "https://api.login.wheniwork.com/login"
        resp = await self.ctx.client.post(url, headers={"W-Key": self.secret("developer_key"),
                                                        "Accept": "application/json"},
                                          json={"email": self.secret("email"), "password": self.secret("password")})
        if resp.status_code >= 500 or resp.status_code == 429:
            raise ConnectorError(f"When I Work log-in answered {resp.status_code}: {_vendor_text(resp)}")
        if resp.status_code != 200:
            raise AuthFailed(f"When I Work refused the log-in: {_vendor_text(resp)}", status=resp.status_code)
        token = resp.json().get("token")
        if not token:
            raise AuthFailed("When I Work's log-in reply had no token")
        return str(token)

    def decorate(self, request: OutgoingRequest, token: str) -> None:
        """``W-Token`` always; ``W-UserId`` when the connection names the account's user."""
        request.headers["W-Token"] = token
        user_id = self.ctx.config.get("user_id")
        if user_id:
            request.headers["W-UserId"] = str(user_id)


class KashFlowAuthenticator(SessionLoginAuthenticator):
    """KashFlow REST: two-step session token with memorable-word characters, ``KfToken`` header."""

    default_ttl = 50 * 60.0  # session tokens lapse after inactivity; renew well inside an hour

    async def login(self) -> str:
        """``POST`` then ``PUT /v2/sessiontoken``; the memorable word's asked-for characters go in step two."""
        url = self.ctx.base_url.rstrip("/") + str(self.spec.options.get("path", "/v2/sessiontoken"))
        first = await self.ctx.client.post(url, json={"UserName": self.secret("username"),
                                                      "Password": self.secret("password")})
        if first.status_code >= 500 or first.status_code == 429:
            raise ConnectorError(f"KashFlow log-in answered {first.status_code}: {_vendor_text(first)}")
        if first.status_code != 200:
            raise AuthFailed(f"KashFlow refused the log-in: {_vendor_text(first)}", status=first.status_code)
        body: dict[str, Any] = first.json()
        word = self.secret("memorable_word")
        chars = []
        for item in body.get("MemorableWordList") or []:
            pos = int(item.get("Position", 0))
            if not 1 <= pos <= len(word):
                raise AuthFailed(f"KashFlow asked for character {pos} of the memorable word, which is shorter")
            chars.append({"Position": pos, "Value": word[pos - 1]})
        second = await self.ctx.client.put(url, json={"TemporaryToken": body.get("TemporaryToken"),
                                                      "MemorableWordList": chars})
        if second.status_code != 200:
            raise AuthFailed(f"KashFlow refused the memorable word: {_vendor_text(second)}", status=second.status_code)
        token = second.json().get("SessionToken")
        if not token:
            raise AuthFailed("KashFlow's reply had no SessionToken")
        return str(token)

    def decorate(self, request: OutgoingRequest, token: str) -> None:
        """``Authorization: KfToken {token}``."""
        request.headers["Authorization"] = f"KfToken {token}"


def wheniwork_login(spec: CustomAuth, ctx: AuthContext) -> Authenticator:
    """Factory registered as ``wheniwork_login``."""
    return WhenIWorkAuthenticator(spec, ctx)


def kashflow_session(spec: CustomAuth, ctx: AuthContext) -> Authenticator:
    """Factory registered as ``kashflow_session``."""
    return KashFlowAuthenticator(spec, ctx)
