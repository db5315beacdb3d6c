"""``ConnectorSession``: runs a manifest over httpx; satisfies ``engine.ports.StreamReader``/``StreamWriter``.

Every call goes through :meth:`ConnectorSession.request`, which owns the error rules: a token from the
(connector, tenant) bucket, ``Retry-After`` (seconds or HTTP date) on 429/503, Xero's
``X-Rate-Limit-Problem``, full-jitter backoff on 5xx and transport errors, one token refresh on a 401, an
overall deadline per call, and the vendor's own message on every other 4xx.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

import httpx

from connectors.auth import (
    AuthContext,
    Authenticator,
    InMemoryTokenStore,
    OutgoingRequest,
    create_authenticator,
)
from connectors.errors import AuthFailed, ConnectorError, RateLimited, VendorError
from connectors.jsonsearch import response_json, search
from connectors.manifest import (
    BodyFieldIdempotency,
    ConnectorManifest,
    DateWindow,
    DuplicateIsSuccess,
    ErrorRules,
    FhirLastUpdated,
    HeaderIdempotency,
    IfModifiedSince,
    LookupIdempotency,
    PaginatorSince,
    QueryIdempotency,
    QueryParamSince,
    QuickBooksCdc,
    QuickBooksWhere,
    RateLimits,
    StreamField,
    StreamSpec,
    WriteOperation,
)
from connectors.paginators import create_paginator
from connectors.ratelimit import RateLimiter
from connectors.ssrf import check_outbound_url
from connectors.templating import render, render_map
from connectors.tls import client_ssl_context
from connectors.vendor_errors import ERROR_PARSERS
from engine.ports import OutboundRecord, ReadPage, SourceRecord, TokenStore, WriteOutcome

_MS_JSON = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")


def parse_timestamp(value: Any, fmt: str = "iso") -> datetime | None:
    """Parse a vendor timestamp (ISO 8601, MS-JSON ``/Date(ms+0000)/`` or a date) into aware UTC."""
    if value is None or value == "":
        return None
    text = str(value)
    if fmt == "epoch":  # unix seconds, possibly with a fraction (Slack ``ts``: "1700000000.000200")
        try:
            return datetime.fromtimestamp(float(text), tz=UTC)
        except (ValueError, OverflowError, OSError):
            return None
    m = _MS_JSON.fullmatch(text)
    if m:
        return datetime.fromtimestamp(int(m.group(1)) / 1000, tz=UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


@dataclass
class ConnectionTest:
    """Result of :meth:`ConnectorSession.test_connection`: ``ok`` plus a reason a manager can read."""

    ok: bool
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class CallStats:
    """Counters of one session (for tests, logs and the health page)."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    server_errors: int = 0
    refreshes: int = 0
    failed_calls: int = 0
    slept_seconds: float = 0.0


class ConnectorSession:
    """A live connection to one vendor tenant, driven by its manifest.

    Args:
        manifest: the validated connector manifest.
        config: non-secret connection settings (tenant id, realm id, VRN...).
        secrets: credentials (client id/secret, tokens, API keys).
        base_url: override the production base URL (sandboxes); relative token URLs of the
            manifest's ``sandbox`` environment are joined to it.
        transport: an ``httpx.AsyncBaseTransport`` (``httpx.ASGITransport`` for in-process sandboxes).
        token_store: where OAuth tokens live; an in-memory store when omitted.
        redis: a ``redis.asyncio.Redis`` shared by all workers (rate limits, refresh lock).
        connection_id: identifies the connection for tokens, locks and rate-limit buckets.
        error_rules: override the manifest's retry/backoff rules (tests, CLI).
        allow_private: let the SSRF guard accept loopback/private hosts (local sandboxes).
        rate_limits: override the manifest's declared limits (sandboxes that do not enforce them).
    """

    def __init__(
        self,
        manifest: ConnectorManifest,
        config: Mapping[str, Any],
        secrets: Mapping[str, Any],
        *,
        base_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        token_store: TokenStore | None = None,
        redis: Any = None,
        connection_id: str,
        error_rules: ErrorRules | None = None,
        allow_private: bool = False,
        rate_limits: RateLimits | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.manifest = manifest
        self.config = dict(config)
        self.secrets = dict(secrets)
        self.connection_id = connection_id
        self.rules = error_rules or manifest.errors
        self.stats = CallStats()
        env_name = "sandbox" if base_url else str(self.config.get("environment", "production"))
        env = manifest.environments.get(env_name) or manifest.environments["production"]
        # Per-install hosts (Deputy ``https://{config.install}.{config.geo}.deputy.com``) come from the config.
        self.base_url = (base_url or render(env.base_url, {"config": self.config})).rstrip("/")
        if transport is None:
            check_outbound_url(self.base_url, allow_private=allow_private)
        token_url = render(env.token_url, {"config": self.config}) if env.token_url else None
        if token_url and "://" not in token_url:
            token_url = urljoin(self.base_url + "/", token_url.lstrip("/"))
        self.token_url = token_url
        verify: Any = True
        if manifest.client_certificate is not None and transport is None:  # mutual TLS (ADP)
            verify = client_ssl_context(manifest.client_certificate, self.secrets)
        self.client = httpx.AsyncClient(transport=transport, timeout=timeout, verify=verify)
        self.token_store: TokenStore = token_store or InMemoryTokenStore()
        self.auth: Authenticator = create_authenticator(
            manifest.auth,
            AuthContext(
                connector_id=manifest.id, connection_id=connection_id, base_url=self.base_url,
                token_url=token_url, config=self.config, secrets=self.secrets, client=self.client,
                token_store=self.token_store, redis=redis,
            ),
        )
        tenant = str(self.config.get("tenant_id") or self.config.get("realm_id") or self.config.get("vrn")
                     or self.config.get("business_id") or connection_id)
        self.limiter = RateLimiter(manifest.id, tenant, rate_limits or manifest.rate_limits, redis=redis)
        self._parse_error = ERROR_PARSERS[self.rules.format]

    async def __aenter__(self) -> ConnectorSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    # ------------------------------------------------------------------ core call

    @property
    def _ctx(self) -> dict[str, Any]:
        return {"config": self.config, "secrets": self.secrets}

    def _url(self, path: str) -> str:
        rendered = render(path, self._ctx)
        return rendered if "://" in rendered else f"{self.base_url}{rendered}"

    def _backoff(self, attempt: int) -> float:
        b = self.rules.backoff
        return random.uniform(0, min(b.cap_seconds, b.base_seconds * (2 ** max(0, attempt - 1))))

    async def request(self, make: Callable[[], OutgoingRequest], *, max_attempts: int | None = None) -> httpx.Response:
        """Send one logical call with the manifest's error rules; return the successful response.

        ``make`` builds a fresh request per attempt (same URL, body and idempotency key).
        Raises AuthFailed, RateLimited, VendorError or ConnectorError. With ``max_attempts`` the caller
        retries (and counts the failure) itself.
        """
        rules = self.rules
        deadline = time.monotonic() + rules.deadline_seconds
        refreshed = False
        attempt = 0
        # One id per logical call, the same on every retry (NHS X-Request-ID: "re-send with the same value").
        call_ctx = {**self._ctx, "request_id": str(uuid.uuid4())}
        while True:
            attempt += 1
            out = make()
            out.headers = {**render_map(self.manifest.headers, call_ctx), **out.headers}
            await self.auth.apply(out)
            remaining = deadline - time.monotonic()
            throttled: RateLimited | None = None
            failure: ConnectorError
            try:
                async with self.limiter.slot():
                    self.stats.requests += 1
                    resp = await asyncio.wait_for(self._send(out.build()), timeout=max(0.01, remaining))
            except (httpx.TransportError, TimeoutError) as exc:
                wait = self._backoff(attempt)
                failure = ConnectorError(f"network problem talking to {self.manifest.name}: {exc!r}")
                failure.retryable = True
            else:
                status = resp.status_code
                if status < 400:
                    return resp
                message, code = self._parse_error(resp)
                if status == 401:
                    if self.auth.can_refresh and not refreshed:
                        refreshed = True
                        self.stats.refreshes += 1
                        await self.auth.refresh(force=True)
                        continue
                    self.stats.failed_calls += 1
                    raise AuthFailed(f"{self.manifest.name} rejected the credentials: {message}", status=401)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if retry_after is None and rules.retry_after_header:
                    vendor_wait = parse_retry_after(resp.headers.get(rules.retry_after_header))
                    if vendor_wait is not None and rules.retry_after_unit == "milliseconds":
                        vendor_wait /= 1000
                    retry_after = vendor_wait
                problem = (resp.headers.get(rules.rate_limit_problem_header or "") or "").lower() or None
                if status in rules.throttle_statuses or (status == 503 and retry_after is not None):
                    self.stats.throttled += 1
                    wait = retry_after if retry_after is not None else rules.default_retry_after_seconds
                    throttled = RateLimited(wait, f"{self.manifest.name} throttled the call ({problem or status}): "
                                                  f"{message}", problem=problem)
                    failure = throttled
                    if problem in ("day", "daily"):
                        self.stats.failed_calls += 1
                        raise throttled
                elif status in rules.retry_statuses:
                    self.stats.server_errors += 1
                    wait = retry_after if retry_after is not None else self._backoff(attempt)
                    failure = VendorError(status, message, code=code, retryable=True)
                else:
                    self.stats.failed_calls += 1
                    raise VendorError(status, message, code=code)
            if attempt >= (max_attempts or rules.max_attempts) or time.monotonic() + wait > deadline:
                if max_attempts is None:
                    self.stats.failed_calls += 1
                raise failure
            self.stats.retries += 1
            self.stats.slept_seconds += wait
            await asyncio.sleep(wait)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        resp = await self.client.send(request)
        await resp.aread()
        body_errors = self.rules.body_errors
        if body_errors is not None and resp.status_code < 400 and resp.content:
            try:
                body = response_json(resp)
            except ValueError:
                return resp
            if isinstance(body, dict) and search(body_errors.ok_path, body) is False:
                code = str(search(body_errors.error_path, body) or "")
                status = body_errors.statuses.get(code, body_errors.default_status)
                return httpx.Response(status, headers=resp.headers, content=resp.content, request=request)
        return resp

    # ------------------------------------------------------------------ reading

    def stream(self, name: str) -> StreamSpec:
        """The stream spec, or a ConnectorError naming the known streams."""
        try:
            return self.manifest.streams[name]
        except KeyError:
            raise ConnectorError(
                f"{self.manifest.id} has no stream `{name}`; streams: {', '.join(self.manifest.streams)}"
            ) from None

    def stream_fields(self, stream: str) -> list[StreamField]:
        """The field schema of a stream (for the designer)."""
        return list(self.stream(stream).fields)

    def _to_record(self, spec: StreamSpec, raw: Any) -> SourceRecord:
        key = search(spec.primary_key, raw)
        updated = parse_timestamp(search(spec.updated_at, raw), spec.date_format) if spec.updated_at else None
        deleted = isinstance(raw, dict) and str(raw.get("status", "")).lower() == "deleted"
        return SourceRecord(external_id=str(key), data=raw, updated_at=updated, deleted=deleted)

    def _format_since(self, since: str, fmt: str) -> str:
        dt = parse_timestamp(since) or datetime.fromtimestamp(0, tz=UTC)
        if fmt == "http_date":
            return dt.strftime("%a, %d %b %Y %H:%M:%S GMT")
        if fmt == "iso_z":
            return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        if fmt == "date":
            return dt.date().isoformat()
        if fmt == "epoch":
            return str(int(dt.timestamp()))
        return dt.replace(tzinfo=None).isoformat(timespec="seconds")

    async def read(self, stream: str, checkpoint: dict[str, Any] | None = None) -> AsyncIterator[ReadPage]:
        """Read a stream page by page from ``checkpoint``; each page carries the checkpoint to commit.

        The checkpoint is ``{"since": ..., "max_seen": ..., "page": <paginator position>}`` mid-read and
        ``{"since": <newest updated_at>}`` once the stream is exhausted.
        """
        spec = self.stream(stream)
        cp = dict(checkpoint or {})
        since: str | None = cp.get("since")
        max_seen: str | None = cp.get("max_seen") or since
        inc = spec.incremental
        if isinstance(inc, DateWindow):
            async for page in self._read_windows(spec, inc, cp):
                yield page
            return
        if isinstance(inc, QuickBooksCdc) and since and not cp.get("page"):
            async for page in self._read_cdc(spec, inc, since):
                yield page
            return
        paginator = create_paginator(spec.paginator, cp.get("page"), self.base_url)
        base = OutgoingRequest(spec.method, self._url(spec.path), params=render_map(spec.params, self._ctx),
                               headers=render_map(spec.headers, self._ctx),
                               json_body=_render_obj(spec.body, self._ctx) if spec.body is not None else None)
        if since and inc is not None:
            if isinstance(inc, IfModifiedSince):
                base.headers["If-Modified-Since"] = self._format_since(since, inc.format)
            elif isinstance(inc, QueryParamSince):
                base.params[inc.param] = inc.template.replace("{since}", self._format_since(since, inc.format))
            elif isinstance(inc, FhirLastUpdated):
                base.params["_lastUpdated"] = "gt" + self._format_since(since, "iso_z")
            elif isinstance(inc, QuickBooksWhere | QuickBooksCdc):
                paginator.where = f" WHERE MetaData.LastUpdatedTime > '{self._format_since(since, 'iso_z')}'"
            elif isinstance(inc, PaginatorSince):
                paginator.since = self._format_since(since, inc.format)
        while True:
            def make() -> OutgoingRequest:
                req = OutgoingRequest(base.method, base.url, dict(base.params), dict(base.headers),
                                      copy.deepcopy(base.json_body))
                paginator.prepare(req)
                return req

            resp = await self.request(make)
            body = response_json(resp) if resp.content else {}
            raw_records = paginator.enrich(search(spec.records, body) or [])
            records = [self._to_record(spec, r) for r in raw_records]
            stamps = [r.updated_at for r in records if r.updated_at is not None]
            if stamps:
                newest = max(stamps)
                if max_seen is None or (parse_timestamp(max_seen) or newest) < newest:
                    max_seen = newest.isoformat()
            probe = OutgoingRequest(base.method, base.url, dict(base.params), dict(base.headers))
            more = paginator.advance(probe, resp, body, raw_records)
            if more:
                yield ReadPage(records, {"since": since, "max_seen": max_seen, "page": paginator.state()})
            else:
                yield ReadPage(records, {"since": max_seen} if max_seen else {})
                return

    async def _read_cdc(self, spec: StreamSpec, inc: QuickBooksCdc, since: str) -> AsyncIterator[ReadPage]:
        params = {"entities": inc.entity, "changedSince": self._format_since(since, "iso_z")}
        url = self._url(inc.path)
        resp = await self.request(lambda: OutgoingRequest("GET", url, dict(params)))
        body = response_json(resp)
        raw = search(f"CDCResponse[0].QueryResponse[0].{inc.entity}", body) or []
        records = [self._to_record(spec, r) for r in raw]
        stamps = [r.updated_at for r in records if r.updated_at is not None]
        newest = max(stamps).isoformat() if stamps else since
        yield ReadPage(records, {"since": newest})

    async def _read_windows(self, spec: StreamSpec, inc: DateWindow, cp: dict[str, Any]) -> AsyncIterator[ReadPage]:
        start = date.fromisoformat(str(cp.get("since") or inc.default_start)[:10])
        today = datetime.now(UTC).date()
        seen: set[str] = set()  # windows need not align with periods: a period may overlap two windows
        while True:
            end = min(start + timedelta(days=inc.max_days - 1), today)
            params = {**render_map(spec.params, self._ctx), inc.from_param: start.isoformat(),
                      inc.to_param: end.isoformat()}
            url = self._url(spec.path)
            try:
                resp = await self.request(lambda p=params, u=url: OutgoingRequest(spec.method, u, dict(p)))  # type: ignore[misc]
                raw = search(spec.records, response_json(resp)) or []
            except VendorError as exc:
                if exc.status != 404:
                    raise
                raw = []
            records = [r for r in (self._to_record(spec, x) for x in raw) if r.external_id not in seen]
            seen.update(r.external_id for r in records)
            nxt = end + timedelta(days=1)
            if end >= today:
                # Re-read the open window next time: obligations change status without new dates.
                yield ReadPage(records, {"since": start.isoformat()})
                return
            yield ReadPage(records, {"since": nxt.isoformat()})
            start = nxt

    async def sample(self, stream: str, n: int = 10) -> list[SourceRecord]:
        """Up to ``n`` live records of a stream (first pages only), for the designer's preview."""
        out: list[SourceRecord] = []
        async for page in self.read(stream):
            out.extend(page.records)
            if len(out) >= n:
                break
        return out[:n]

    async def test_connection(self) -> ConnectionTest:
        """Try the credentials on a cheap read; explain the outcome in plain English."""
        name = self.manifest.test_stream or next(iter(self.manifest.streams))
        try:
            async for page in self.read(name):
                return ConnectionTest(True, f"Connected to {self.manifest.name}: read {len(page.records)} "
                                            f"{self.stream(name).title.lower()} on the first page.",
                                      {"stream": name, "records": len(page.records)})
        except AuthFailed as exc:
            return ConnectionTest(False, f"{self.manifest.name} did not accept the credentials. Reconnect the "
                                         f"account and try again. ({exc})")
        except RateLimited as exc:
            return ConnectionTest(False, f"{self.manifest.name} is limiting requests right now; try again in "
                                         f"{int(exc.retry_after)} seconds.")
        except VendorError as exc:
            return ConnectionTest(False, f"{self.manifest.name} answered with an error: {exc.vendor_message}",
                                  {"status": exc.status})
        except ConnectorError as exc:
            return ConnectionTest(False, f"Could not reach {self.manifest.name}: {exc}")
        return ConnectionTest(True, f"Connected to {self.manifest.name}.")

    # ------------------------------------------------------------------ writing

    async def write(self, stream: str, records: Sequence[OutboundRecord]) -> list[WriteOutcome]:
        """Create/update records; one outcome per record, in input order. Idempotent per the manifest."""
        spec = self.stream(stream)
        if spec.write is None:
            raise ConnectorError(f"{self.manifest.id}.{stream} is read-only")
        results: dict[str, WriteOutcome] = {}
        deletes = [r for r in records if r.delete]
        for r in deletes:
            if r.external_id is None:
                results[r.idempotency_key] = WriteOutcome(r.idempotency_key, False, error_code="unsupported",
                                                          error_message="nothing to delete: no vendor id")
        for op, group in ((spec.write.create, [r for r in records if r.external_id is None and not r.delete]),
                          (spec.write.update, [r for r in records if r.external_id is not None and not r.delete]),
                          (spec.write.delete, [r for r in deletes if r.external_id is not None])):
            if not group:
                continue
            if op is None:
                for r in group:
                    results[r.idempotency_key] = WriteOutcome(r.idempotency_key, False, error_code="unsupported",
                                                              error_message="this stream does not allow it")
                continue
            size = max(1, op.batch_size) if op.mode != "single" else 1
            for i in range(0, len(group), size):
                chunk = group[i:i + size]
                try:
                    outcomes = await self._write_chunk(spec, op, chunk, update=chunk[0].external_id is not None)
                except (RateLimited, VendorError, ConnectorError) as exc:
                    if isinstance(exc, AuthFailed):
                        raise
                    retryable = exc.retryable
                    code = exc.code if isinstance(exc, VendorError) else type(exc).__name__
                    msg = exc.vendor_message if isinstance(exc, VendorError) else str(exc)
                    outcomes = [WriteOutcome(r.idempotency_key, False, error_code=code, error_message=msg,
                                             retryable=retryable) for r in chunk]
                for o in outcomes:
                    results[o.idempotency_key] = o
        return [results[r.idempotency_key] for r in records]

    def _idempotency(self, spec: StreamSpec, req: OutgoingRequest, key: str) -> None:
        idem = spec.write.idempotency if spec.write else None
        if isinstance(idem, HeaderIdempotency):
            req.headers[idem.name] = key
        elif isinstance(idem, QueryIdempotency):
            req.params[idem.name] = key
        elif isinstance(idem, BodyFieldIdempotency) and isinstance(req.json_body, dict):
            req.json_body[idem.field] = key

    async def _write_chunk(self, spec: StreamSpec, op: WriteOperation, chunk: Sequence[OutboundRecord],
                           *, update: bool) -> list[WriteOutcome]:
        assert spec.write is not None
        idem = spec.write.idempotency
        key = chunk[0].idempotency_key if len(chunk) == 1 else hashlib.sha256(
            "\n".join(r.idempotency_key for r in chunk).encode()).hexdigest()
        payloads = [dict(r.payload) for r in chunk]
        if update and op.id_field and "." not in op.id_field and "{" not in op.path:
            # The path does not name the record: the id in the body is what makes this an update.
            payloads = [p if p.get(op.id_field) else {**p, op.id_field: r.external_id}
                        for r, p in zip(chunk, payloads, strict=True)]
        if op.body:
            payloads = [{**_render_obj(op.body, {**self._ctx, "record": {"external_id": r.external_id or ""}}), **p}
                        for r, p in zip(chunk, payloads, strict=True)]
        if isinstance(idem, LookupIdempotency) and not update:
            found = await self._lookup(spec, idem, chunk[0].idempotency_key)
            if found is not None:
                return [WriteOutcome(chunk[0].idempotency_key, True, external_id=str(found.get(op.id_field)),
                                     data=found)]
            payloads[0].setdefault(idem.key_field, chunk[0].idempotency_key)
        if op.mode == "quickbooks_batch":
            body: Any = {"BatchItemRequest": [
                {"bId": r.idempotency_key, "operation": "update" if update else "create", op.entity or "": p}
                for r, p in zip(chunk, payloads, strict=True)]}
        elif op.mode == "batch":
            body = {op.wrap: payloads} if op.wrap else payloads
        else:
            body = {op.wrap: payloads[0]} if op.wrap else payloads[0]
        ctx = {**self._ctx, "record": {"external_id": chunk[0].external_id or "", **payloads[0]}}
        url = render(op.path, ctx)
        url = url if "://" in url else self.base_url + url
        params = render_map(op.params, ctx)
        op_headers = render_map(op.headers, ctx)

        if op.method == "DELETE":
            body = None

        def make() -> OutgoingRequest:
            req = OutgoingRequest(op.method, url, dict(params), dict(op_headers), json_body=body)
            self._idempotency(spec, req, key)
            return req

        try:
            if isinstance(idem, LookupIdempotency) and not update:
                created = await self._create_with_lookup(make, spec, idem, chunk[0].idempotency_key)
                if isinstance(created, dict):
                    return [WriteOutcome(chunk[0].idempotency_key, True,
                                         external_id=str(created.get(op.id_field)), data=created)]
                resp = created
            else:
                resp = await self.request(make)
        except VendorError as exc:
            if isinstance(idem, DuplicateIsSuccess) and exc.code in idem.codes:
                return [WriteOutcome(r.idempotency_key, True, external_id=str(p.get(op.id_field, "")),
                                     data={"duplicate": True}) for r, p in zip(chunk, payloads, strict=True)]
            raise
        reply = response_json(resp) if resp.content else {}
        if op.mode == "quickbooks_batch":
            return self._quickbooks_outcomes(op, chunk, reply)
        elements = search(op.response_records, reply) if op.response_records else reply
        if not isinstance(elements, list):
            elements = [elements]
        outcomes = []
        for i, r in enumerate(chunk):
            el = elements[i] if i < len(elements) and isinstance(elements[i], dict) else {}
            errors = search(op.element_error, el) if op.element_error else None
            if errors:
                outcomes.append(WriteOutcome(r.idempotency_key, False, external_id=r.external_id,
                                             error_code="validation", error_message="; ".join(map(str, errors)),
                                             data=el))
            else:
                ext = search(op.id_field, el)
                if ext is None and isinstance(idem, DuplicateIsSuccess):
                    ext = payloads[i].get(op.id_field)
                if ext is None and update:  # updates answered with an empty body keep their id
                    ext = r.external_id
                outcomes.append(WriteOutcome(r.idempotency_key, True, external_id=None if ext is None else str(ext),
                                             data=el))
        return outcomes

    def _quickbooks_outcomes(self, op: WriteOperation, chunk: Sequence[OutboundRecord], reply: Any) -> list[WriteOutcome]:
        by_bid = {item.get("bId"): item for item in reply.get("BatchItemResponse", [])}
        outcomes = []
        for r in chunk:
            item = by_bid.get(r.idempotency_key, {})
            fault = item.get("Fault")
            if fault or not item:
                errs = (fault or {}).get("Error") or [{"Message": "no reply for this element"}]
                msg = "; ".join(f"{e.get('Message', '')}: {e.get('Detail', '')}".strip(": ") for e in errs)
                outcomes.append(WriteOutcome(r.idempotency_key, False, external_id=r.external_id,
                                             error_code=str(errs[0].get("code", "fault")), error_message=msg,
                                             retryable=not item))
            else:
                entity = item.get(op.entity or "", {})
                outcomes.append(WriteOutcome(r.idempotency_key, True, external_id=str(entity.get(op.id_field)),
                                             data=entity))
        return outcomes

    async def _create_with_lookup(self, make: Callable[[], OutgoingRequest], spec: StreamSpec,
                                  idem: LookupIdempotency, key: str) -> httpx.Response | dict[str, Any]:
        """Create one record at a vendor without idempotency keys: after a failure that may have reached the
        vendor (5xx, timeout), look the key up again before re-sending, so a lost reply never duplicates."""
        deadline = time.monotonic() + self.rules.deadline_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self.request(make, max_attempts=1)
            except ConnectorError as exc:
                wait = exc.retry_after if isinstance(exc, RateLimited) else self._backoff(attempt)
                if (isinstance(exc, AuthFailed) or not exc.retryable or attempt >= self.rules.max_attempts
                        or time.monotonic() + wait > deadline):
                    if exc.retryable:
                        self.stats.failed_calls += 1
                    raise
                self.stats.retries += 1
                self.stats.slept_seconds += wait
                await asyncio.sleep(wait)
                found = await self._lookup(spec, idem, key)
                if found is not None:
                    return found

    async def _lookup(self, spec: StreamSpec, idem: LookupIdempotency, key: str) -> dict[str, Any] | None:
        url = self._url(idem.path or spec.path)
        params = render_map(spec.params, self._ctx) if idem.path is None else {}
        if idem.search_param:
            params[idem.search_param] = key
        body = _render_obj(idem.body, {**self._ctx, "key": key}) if idem.body is not None else None
        resp = await self.request(lambda: OutgoingRequest(idem.method, url, dict(params), json_body=copy.deepcopy(body)))
        for raw in search(spec.records, response_json(resp)) or []:
            if isinstance(raw, dict) and str(raw.get(idem.key_field)) == key:
                return raw
        return None


def _render_obj(value: Any, ctx: Mapping[str, Any]) -> Any:
    """Render ``{scope.key}`` placeholders in every string of a JSON-like value (request bodies)."""
    if isinstance(value, str):
        return render(value, ctx)
    if isinstance(value, dict):
        return {k: _render_obj(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_obj(v, ctx) for v in value]
    return value


# Register the Python auths/paginators that manifests name (``type: custom``); after the definitions above.
import connectors.custom  # noqa: E402, F401
