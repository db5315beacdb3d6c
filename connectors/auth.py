"""Authenticators: one class per manifest ``auth.type``, registered in :data:`AUTH_TYPES`.

Each authenticator decorates an outgoing :class:`OutgoingRequest` (``apply``) and may renew its
credentials (``refresh``). OAuth2 tokens are refreshed ahead of expiry (``expires_in`` minus a margin),
by one worker per connection at a time (a Redis lock when a client is given, an asyncio lock otherwise),
and saved through the TokenStore in one ``save`` call so a rotated refresh token is never lost.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import jmespath
import jwt

from connectors.errors import AuthFailed, ConnectorError
from connectors.manifest import (
    ApiKeyAuth,
    BasicAuth,
    CustomAuth,
    NhsSignedJwt,
    NoAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    SessionTokenAuth,
    SignedRequestAuth,
)
from connectors.templating import render
from engine.ports import TokenStore


@dataclass
class OutgoingRequest:
    """A request being prepared; authenticators edit it before it becomes an ``httpx.Request``."""

    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json_body: Any = None

    def build(self) -> httpx.Request:
        """The final httpx request."""
        content = None if self.json_body is None else json.dumps(self.json_body).encode()
        headers = dict(self.headers)
        if content is not None:
            headers.setdefault("Content-Type", "application/json")
        return httpx.Request(self.method, self.url, params=self.params or None, headers=headers, content=content)


class InMemoryTokenStore:
    """A TokenStore kept in this process (tests, CLI reads); ``save`` replaces the whole token set."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {}

    async def load(self, connection_id: str) -> Mapping[str, Any] | None:
        """The saved tokens of a connection, if any."""
        return self._data.get(connection_id)

    async def save(self, connection_id: str, tokens: Mapping[str, Any]) -> None:
        """Replace the tokens of a connection in one step."""
        self._data[connection_id] = dict(tokens)


@dataclass
class AuthContext:
    """What an authenticator may use: resolved URLs, the connection's config and secrets, the stores."""

    connector_id: str
    connection_id: str
    base_url: str
    token_url: str | None
    config: Mapping[str, Any]
    secrets: Mapping[str, Any]
    client: httpx.AsyncClient
    token_store: TokenStore
    redis: Any = None

    @property
    def template_context(self) -> dict[str, Any]:
        """Context for ``{config.x}`` / ``{secrets.y}`` placeholders."""
        return {"config": self.config, "secrets": self.secrets}


class Authenticator:
    """Base class: decorate requests; optionally renew credentials."""

    can_refresh: ClassVar[bool] = False

    def __init__(self, spec: Any, ctx: AuthContext) -> None:
        self.spec = spec
        self.ctx = ctx

    async def apply(self, request: OutgoingRequest) -> None:
        """Add credentials to ``request``."""

    async def refresh(self, *, force: bool) -> None:
        """Renew credentials (after a 401 when ``force``)."""
        raise AuthFailed("these credentials cannot be renewed")


# --------------------------------------------------------------------------- locking

_LOCAL_LOCKS: dict[tuple[int, str], asyncio.Lock] = {}


class _RefreshLock:
    """One refresh per connection at a time, across workers (Redis) or within this process (asyncio)."""

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx
        self._redis_lock: Any = None
        self._local: asyncio.Lock | None = None

    async def __aenter__(self) -> None:
        name = f"carehub:oauth-refresh:{self.ctx.connector_id}:{self.ctx.connection_id}"
        if self.ctx.redis is not None:
            self._redis_lock = self.ctx.redis.lock(name, timeout=60, blocking_timeout=90)
            if not await self._redis_lock.acquire():
                raise AuthFailed("timed out waiting for another worker to refresh the token")
            return
        key = (id(asyncio.get_running_loop()), name)
        self._local = _LOCAL_LOCKS.setdefault(key, asyncio.Lock())
        await self._local.acquire()

    async def __aexit__(self, *exc: object) -> None:
        if self._redis_lock is not None:
            with contextlib.suppress(Exception):  # the lock expired; nothing to release
                await self._redis_lock.release()
        if self._local is not None:
            self._local.release()


def _vendor_oauth_error(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300] or resp.reason_phrase
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("error", "error_description", "message") if body.get(k)]
        if parts:
            return ": ".join(parts)
    return json.dumps(body)[:300]


# --------------------------------------------------------------------------- OAuth2


class _OAuth2Base(Authenticator):
    """Shared token bookkeeping of the OAuth2 grants."""

    can_refresh = True

    def __init__(self, spec: Any, ctx: AuthContext) -> None:
        super().__init__(spec, ctx)
        self._tokens: dict[str, Any] | None = None
        self.refresh_count = 0

    def _expiring(self, tokens: Mapping[str, Any] | None) -> bool:
        if not tokens or not tokens.get("access_token"):
            return True
        expires_at = tokens.get("expires_at")
        if expires_at is None:
            return False
        return bool(float(expires_at) - float(self.spec.refresh_margin_seconds) <= time.time())

    async def _current(self) -> dict[str, Any]:
        if self._tokens is None:
            stored = await self.ctx.token_store.load(self.ctx.connection_id)
            self._tokens = dict(stored) if stored else self._seed()
        return self._tokens

    def _seed(self) -> dict[str, Any]:
        return {}

    def _client_auth(self, data: dict[str, str]) -> dict[str, str]:
        cid = str(self.ctx.secrets.get("client_id", ""))
        secret = str(self.ctx.secrets.get("client_secret", ""))
        if self.spec.client_auth == "body":
            data.update(client_id=cid, client_secret=secret)
            return {}
        raw = base64.b64encode(f"{cid}:{secret}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}

    async def _token_request(self, data: dict[str, str], headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        if not self.ctx.token_url:
            raise AuthFailed(f"{self.ctx.connector_id}: no token URL configured")
        hdrs = {"Accept": "application/json", **(headers or {})}
        try:
            resp = await self.ctx.client.post(self.ctx.token_url, data=data, headers=hdrs)
        except httpx.HTTPError as exc:
            raise ConnectorError(f"token endpoint unreachable: {exc!r}") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise ConnectorError(f"token endpoint answered {resp.status_code}: {_vendor_oauth_error(resp)}")
        if resp.status_code != 200:
            raise AuthFailed(f"token refresh refused: {_vendor_oauth_error(resp)}", status=resp.status_code)
        body = resp.json()
        if not isinstance(body, dict) or not body.get("access_token"):
            # Some vendors refuse with HTTP 200 and an error flag (Slack: {"ok": false, "error": "..."}).
            raise AuthFailed(f"token refresh refused: {_vendor_oauth_error(resp)}", status=resp.status_code)
        now = time.time()
        tokens: dict[str, Any] = {
            "access_token": body["access_token"],
            "token_type": body.get("token_type", "Bearer"),
            "obtained_at": now,
        }
        if body.get("expires_in") is not None:
            tokens["expires_at"] = now + float(body["expires_in"])
        if body.get("scope"):
            tokens["scope"] = body["scope"]
        if body.get("refresh_token"):  # rotating refresh tokens: keep the new one (``_renew`` picks it up)
            tokens["refresh_token"] = body["refresh_token"]
        return tokens

    async def apply(self, request: OutgoingRequest) -> None:
        """Send the bearer token, refreshing it first when it is about to expire."""
        tokens = await self._current()
        if self._expiring(tokens):
            await self.refresh(force=False)
            tokens = await self._current()
        request.headers["Authorization"] = f"Bearer {tokens['access_token']}"

    async def refresh(self, *, force: bool) -> None:
        """Refresh under the connection's lock; adopt a newer token another worker already saved."""
        mine = (self._tokens or {}).get("access_token")
        async with _RefreshLock(self.ctx):
            stored = await self.ctx.token_store.load(self.ctx.connection_id)
            if stored and stored.get("access_token") != mine and not self._expiring(stored):
                self._tokens = dict(stored)
                return
            current = dict(stored) if stored else (self._tokens or self._seed())
            if not force and not self._expiring(current):
                self._tokens = current
                return
            new = await self._renew(current)
            await self.ctx.token_store.save(self.ctx.connection_id, new)
            self._tokens = new
            self.refresh_count += 1

    async def _renew(self, current: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class OAuth2AuthorizationCodeAuthenticator(_OAuth2Base):
    """Authorization code grant: the code exchange happens in the Connect flow; here we refresh."""

    spec: OAuth2AuthorizationCode

    def _seed(self) -> dict[str, Any]:
        s = self.ctx.secrets
        tokens: dict[str, Any] = {k: s[k] for k in ("access_token", "refresh_token") if s.get(k)}
        if s.get("expires_at") is not None:
            tokens["expires_at"] = float(s["expires_at"])
        return tokens

    async def _renew(self, current: Mapping[str, Any]) -> dict[str, Any]:
        refresh_token = current.get("refresh_token")
        if not refresh_token:
            raise AuthFailed("no refresh token: reconnect this system")
        data = {"grant_type": "refresh_token", "refresh_token": str(refresh_token)}
        headers = self._client_auth(data)
        new = await self._token_request(data, headers)
        # Rotating refresh tokens: the reply's token replaces ours; keep the old one only if none came back.
        body_refresh = new.pop("refresh_token", None)
        new["refresh_token"] = body_refresh or refresh_token
        return new

    async def _token_request(self, data: dict[str, str], headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        tokens = await super()._token_request(data, headers)
        return tokens

    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None = None) -> dict[str, Any]:
        """Exchange an authorization code (Connect flow) and save the tokens."""
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier:
            data["code_verifier"] = code_verifier
        headers = self._client_auth(data)
        async with _RefreshLock(self.ctx):
            if not self.ctx.token_url:
                raise AuthFailed("no token URL configured")
            resp = await self.ctx.client.post(self.ctx.token_url, data=data,
                                              headers={"Accept": "application/json", **headers})
            if resp.status_code != 200:
                raise AuthFailed(f"code exchange refused: {_vendor_oauth_error(resp)}", status=resp.status_code)
            body = resp.json()
            if not isinstance(body, dict) or not body.get("access_token"):
                raise AuthFailed(f"code exchange refused: {_vendor_oauth_error(resp)}", status=resp.status_code)
            now = time.time()
            tokens = {"access_token": body["access_token"], "refresh_token": body.get("refresh_token"),
                      "expires_at": now + float(body.get("expires_in", 1800)), "obtained_at": now}
            await self.ctx.token_store.save(self.ctx.connection_id, tokens)
            self._tokens = tokens
            return tokens


class OAuth2ClientCredentialsAuthenticator(_OAuth2Base):
    """Client credentials grant: a new token whenever the old one is about to expire."""

    spec: OAuth2ClientCredentials

    async def _renew(self, current: Mapping[str, Any]) -> dict[str, Any]:
        data = {"grant_type": "client_credentials"}
        if self.spec.scopes:
            data["scope"] = " ".join(self.spec.scopes)
        return await self._token_request(data, self._client_auth(data))


class NhsSignedJwtAuthenticator(_OAuth2Base):
    """NHS England app-restricted access: an RS512 client assertion exchanged for a 10-minute token."""

    spec: NhsSignedJwt

    async def _renew(self, current: Mapping[str, Any]) -> dict[str, Any]:
        s = self.ctx.secrets
        api_key = str(s.get("api_key") or s.get("client_id") or "")
        now = int(time.time())
        claims = {"iss": api_key, "sub": api_key, "aud": self.ctx.token_url, "jti": str(uuid.uuid4()),
                  "exp": now + self.spec.assertion_lifetime_seconds}
        try:
            assertion = jwt.encode(claims, str(s.get("private_key", "")), algorithm=self.spec.algorithm,
                                   headers={"kid": str(s.get("kid", ""))})
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise AuthFailed(f"cannot sign the client assertion: {exc}") from exc
        data = {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        }
        return await self._token_request(data)


# --------------------------------------------------------------------------- static credentials


class ApiKeyAuthenticator(Authenticator):
    """API key in a header, the query string or the JSON body."""

    spec: ApiKeyAuth

    async def apply(self, request: OutgoingRequest) -> None:
        """Place the key where the manifest says."""
        key = str(self.ctx.secrets.get(self.spec.secret, ""))
        value = f"{self.spec.prefix}{key}"
        if self.spec.location == "header":
            request.headers[self.spec.name] = value
        elif self.spec.location == "query":
            request.params[self.spec.name] = value
        else:
            body = request.json_body if isinstance(request.json_body, dict) else {}
            body[self.spec.name] = value
            request.json_body = body


class BasicAuthenticator(Authenticator):
    """HTTP basic auth from rendered username/password templates."""

    spec: BasicAuth

    async def apply(self, request: OutgoingRequest) -> None:
        """Add the ``Authorization: Basic`` header."""
        ctx = self.ctx.template_context
        raw = f"{render(self.spec.username, ctx)}:{render(self.spec.password, ctx)}"
        request.headers["Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()


class SessionTokenAuthenticator(Authenticator):
    """Log in with credentials, keep the session token until its TTL or a 401."""

    spec: SessionTokenAuth
    can_refresh = True

    def __init__(self, spec: Any, ctx: AuthContext) -> None:
        super().__init__(spec, ctx)
        self._token: str | None = None
        self._expires = 0.0

    async def apply(self, request: OutgoingRequest) -> None:
        """Send the session token, logging in first if needed."""
        if self._token is None or time.time() >= self._expires:
            await self.refresh(force=True)
        request.headers[self.spec.header] = f"{self.spec.prefix}{self._token}"

    async def refresh(self, *, force: bool) -> None:
        """Log in again."""
        body = {k: render(v, self.ctx.template_context) for k, v in self.spec.login_body.items()}
        resp = await self.ctx.client.post(self.ctx.base_url.rstrip("/") + self.spec.login_path, json=body)
        if resp.status_code != 200:
            raise AuthFailed(f"login refused: {_vendor_oauth_error(resp)}", status=resp.status_code)
        token = jmespath.search(self.spec.token_path, resp.json())
        if not token:
            raise AuthFailed(f"login reply had no token at `{self.spec.token_path}`")
        self._token = str(token)
        self._expires = time.time() + self.spec.ttl_seconds


class SignedRequestAuthenticator(Authenticator):
    """HMAC signature over the query string, the URL without scheme, or the body."""

    spec: SignedRequestAuth

    async def apply(self, request: OutgoingRequest) -> None:
        """Sign the request as declared."""
        secret = str(self.ctx.secrets.get(self.spec.secret, "")).encode()
        built = request.build()
        if self.spec.signs == "query":
            message = built.url.query
        elif self.spec.signs == "url_without_scheme":
            message = str(built.url).split("://", 1)[-1].encode()
        else:
            message = built.content
        digest = hmac.new(secret, message, getattr(hashlib, self.spec.algorithm)).digest()
        sig = base64.b64encode(digest).decode() if self.spec.encoding == "base64" else digest.hex()
        request.headers[self.spec.signature_header] = sig
        for k, v in self.spec.extra_headers.items():
            request.headers[k] = render(v, self.ctx.template_context)


class NoAuthenticator(Authenticator):
    """Nothing to add."""

    spec: NoAuth


CustomFactory = Callable[[CustomAuth, AuthContext], Authenticator]
CUSTOM_AUTHS: dict[str, CustomFactory] = {}


def register_auth(name: str, factory: CustomFactory) -> None:
    """Register a Python authenticator usable from a manifest as ``auth: {type: custom, name: <name>}``."""
    CUSTOM_AUTHS[name] = factory


AUTH_TYPES: dict[str, type[Authenticator]] = {
    "oauth2_authorization_code": OAuth2AuthorizationCodeAuthenticator,
    "oauth2_client_credentials": OAuth2ClientCredentialsAuthenticator,
    "nhs_signed_jwt": NhsSignedJwtAuthenticator,
    "api_key": ApiKeyAuthenticator,
    "basic": BasicAuthenticator,
    "session_token": SessionTokenAuthenticator,
    "signed_request": SignedRequestAuthenticator,
    "none": NoAuthenticator,
}


def create_authenticator(spec: Any, ctx: AuthContext) -> Authenticator:
    """Build the authenticator a manifest's ``auth`` block asks for."""
    if isinstance(spec, CustomAuth):
        factory = CUSTOM_AUTHS.get(spec.name)
        if factory is None:
            raise ConnectorError(f"custom auth `{spec.name}` is not registered; known: {sorted(CUSTOM_AUTHS)}")
        return factory(spec, ctx)
    return AUTH_TYPES[spec.type](spec, ctx)
