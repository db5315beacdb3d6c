"""Outbound webhooks: CareHub events to subscribers, signed per Standard Webhooks.

* Events: ``run.finished``, ``run.failed``, ``error.raised``, ``conflict.waiting``, ``migration.phase_done``.
  :func:`relay_events` (an arq cron) turns finished runs, new errors and migration phases into deliveries with
  deterministic event ids, so each event is emitted once; anyone may also call :func:`emit`.
* Each delivery is signed with the ``standardwebhooks`` library (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``), retried on the Standard Webhooks schedule with jitter (about 3 days), and the
  subscriber is disabled when it answers 410 Gone. Every attempt is logged on the WebhookDelivery row.
* Every target (and every redirect hop) is checked against loopback, private, link-local and metadata ranges
  by ``connectors.ssrf`` and the connection goes to the address that was checked (DNS pinned).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from sqlmodel import col, select
from standardwebhooks.webhooks import Webhook as StandardWebhook

from app.context import AppContext, get_context
from connectors.errors import OutboundBlocked
from connectors.ssrf import CheckedURL, check_outbound_url
from storage import integrations as svc
from storage import webhooks as store
from storage.models import (
    IntegrationError,
    MigrationPhase,
    MigrationPlan,
    SyncRun,
    Webhook,
    WebhookDelivery,
    utcnow,
)

log = logging.getLogger("carehub.webhooks")
# Standard Webhooks' example schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
RETRY_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
TIMEOUT_SECONDS = 15.0
MAX_REDIRECTS = 3
THROTTLE_CODES = frozenset({429, 502, 503, 504})
USER_AGENT = "CareHub-Webhooks/1.0"


def retry_delay(attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None) -> float | None:
    """Seconds before the next attempt after ``attempt`` attempts failed (None: give up), with jitter."""
    if attempt >= len(RETRY_SCHEDULE):
        return None
    base = float(RETRY_SCHEDULE[attempt])
    if retry_after is not None:
        base = max(base, min(retry_after, 86400.0))
    return base + (rng or random).uniform(0, base * 0.2)


def signer(secret: str) -> StandardWebhook:
    """The Standard Webhooks signer for a secret (``whsec_`` base64, or any other text as raw bytes)."""
    return StandardWebhook(secret) if secret.startswith("whsec_") else StandardWebhook(secret.encode())


def sign_headers(secret: str, event_id: str, body: str, *, now: datetime | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``."""
    now = now or datetime.now(UTC)
    return {"webhook-id": event_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer(secret).sign(event_id, now, body)}


def _pinned(checked: CheckedURL) -> tuple[str, dict[str, str], dict[str, Any]]:
    """URL rewritten to the checked address, the Host header, and TLS SNI for https."""
    parts = urlsplit(checked.url)
    address = checked.addresses[0]
    host = f"[{address}]" if ":" in address else address
    default = 443 if checked.scheme == "https" else 80
    netloc = host if checked.port == default else f"{host}:{checked.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = checked.host if checked.port == default else f"{checked.host}:{checked.port}"
    extensions = {"sni_hostname": checked.host} if checked.scheme == "https" else {}
    return url, {"Host": host_header}, extensions


ALWAYS_BLOCKED = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"),
                  ipaddress.ip_network("fd00:ec2::/32"), ipaddress.ip_network("0.0.0.0/8"))
ALWAYS_BLOCKED_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data", "metadata.azure.com"})


def _metadata_guard(checked: CheckedURL) -> None:
    """Cloud metadata and link-local targets are refused even where private hosts are allowed (local mode)."""
    if checked.host in ALWAYS_BLOCKED_HOSTS:
        raise OutboundBlocked(f"refused {checked.url!r}: cloud metadata host")
    for address in checked.addresses:
        ip = ipaddress.ip_address(address)
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        if any((mapped or ip) in net for net in ALWAYS_BLOCKED if (mapped or ip).version == net.version):
            raise OutboundBlocked(f"refused {checked.url!r}: {address} is link-local or metadata")


async def post_pinned(client: httpx.AsyncClient, url: str, *, content: bytes, headers: dict[str, str],
                      allow_private: bool) -> httpx.Response:
    """POST ``content`` to ``url``: every hop checked against the SSRF guard and connected to the address that
    was checked; redirects (at most three) are followed only after their target passes the guard too.

    Raises :class:`OutboundBlocked` when a hop is refused."""
    target = url
    for _hop in range(MAX_REDIRECTS + 1):
        checked = await asyncio.to_thread(check_outbound_url, target, allow_private)
        _metadata_guard(checked)
        pinned_url, host_header, extensions = _pinned(checked)
        response = await client.post(pinned_url, content=content, headers={**headers, **host_header},
                                     extensions=extensions, follow_redirects=False)
        if response.status_code in (301, 302, 303, 307, 308) and response.headers.get("location"):
            target = urljoin(target, response.headers["location"])
            await response.aclose()
            continue
        return response
    raise OutboundBlocked(f"refused {url!r}: more than {MAX_REDIRECTS} redirects")


def _load(app: AppContext, delivery_id: str) -> tuple[WebhookDelivery, Webhook, str] | None:
    with app.db.session() as session:
        if not store.claim_delivery(session, delivery_id=delivery_id):
            return None
        delivery = store.get_delivery(session, delivery_id=delivery_id)
        hook = session.get(Webhook, delivery.webhook_id)
        if hook is None:
            return None
        if not hook.active or hook.deleted_at is not None:
            delivery.status = "cancelled"
            delivery.next_attempt_at = None
            session.add(delivery)
            return None
        return delivery, hook, svc.webhook_secret(app.box, hook)


def _finish(app: AppContext, delivery_id: str, *, status: str, code: int | None, excerpt: str,
            next_at: datetime | None, disable: str = "") -> WebhookDelivery:
    with app.db.session() as session:
        row = store.record_attempt(session, delivery_id=delivery_id, status=status, response_code=code,
                                   excerpt=excerpt, next_attempt_at=next_at)
        if disable:
            store.disable_webhook(session, webhook_id=row.webhook_id, reason=disable)
        return row


async def deliver(app: AppContext, delivery_id: str, *, client: httpx.AsyncClient | None = None) -> WebhookDelivery | None:
    """Make one attempt at a delivery and log it; returns the row (None when it was not due or not ours)."""
    loaded = await asyncio.to_thread(_load, app, delivery_id)
    if loaded is None:
        return None
    delivery, hook, secret = loaded
    body = json.dumps(delivery.payload, separators=(",", ":"), default=str)
    headers = {**sign_headers(secret, delivery.event_id, body), "content-type": "application/json",
               "user-agent": USER_AGENT}
    own = client is None
    http = client or httpx.AsyncClient(timeout=TIMEOUT_SECONDS, trust_env=False)
    code: int | None = None
    retry_after: float | None = None
    try:
        try:
            response = await asyncio.wait_for(
                post_pinned(http, hook.url, content=body.encode(), headers=headers,
                            allow_private=app.settings.allow_private_hosts), TIMEOUT_SECONDS + 1)
        except OutboundBlocked as exc:
            return await asyncio.to_thread(_finish, app, delivery_id, status="blocked", code=None,
                                           excerpt=str(exc), next_at=None)
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            excerpt = f"{type(exc).__name__}: {exc}"
        else:
            code = response.status_code
            excerpt = response.text[:200]
            header = response.headers.get("retry-after", "")
            retry_after = float(header) if header.isdigit() else None
    finally:
        if own:
            await http.aclose()
    attempts = delivery.attempts + 1
    if code is not None and 200 <= code < 300:
        return await asyncio.to_thread(_finish, app, delivery_id, status="delivered", code=code, excerpt=excerpt,
                                       next_at=None)
    if code == 410:
        return await asyncio.to_thread(_finish, app, delivery_id, status="disabled", code=code, excerpt=excerpt,
                                       next_at=None, disable="the endpoint answered 410 Gone")
    delay = retry_delay(attempts, retry_after=retry_after if code in THROTTLE_CODES else None)
    if delay is None:
        return await asyncio.to_thread(_finish, app, delivery_id, status="failed", code=code, excerpt=excerpt,
                                       next_at=None)
    return await asyncio.to_thread(_finish, app, delivery_id, status="retrying", code=code, excerpt=excerpt,
                                   next_at=utcnow() + timedelta(seconds=delay))


# ------------------------------------------------------------------------------------------ arq jobs


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> str:
    """arq job: one attempt; a retry is queued for its due time (the dispatcher cron is the safety net)."""
    app: AppContext = ctx.get("app") or get_context()
    row = await deliver(app, delivery_id)
    if row is None:
        return "skipped"
    if row.status == "retrying" and row.next_attempt_at is not None:
        await ctx["redis"].enqueue_job("deliver_webhook", delivery_id, _job_id=f"whd:{delivery_id}:{row.attempts}",
                                       _defer_until=row.next_attempt_at)
    return row.status


async def dispatch_webhooks(ctx: dict[str, Any]) -> int:
    """arq cron: queue every delivery that is due (new, retry time reached, or a sender died mid-send)."""
    app: AppContext = ctx.get("app") or get_context()

    def due() -> list[tuple[str, int]]:
        with app.db.session() as session:
            return [(d.id, d.attempts) for d in store.due_deliveries(session)]

    rows = await asyncio.to_thread(due)
    for delivery_id, attempts in rows:
        await ctx["redis"].enqueue_job("deliver_webhook", delivery_id, _job_id=f"whd:{delivery_id}:{attempts}")
    return len(rows)


async def emit(app: AppContext, *, integration_id: str, event_type: str, data: dict[str, Any],
               event_id: str | None = None, redis: Any = None) -> list[str]:
    """Create deliveries of one event to every subscriber and queue them; returns the delivery ids."""
    def create() -> list[str]:
        with app.db.session() as session:
            return [d.id for d in store.emit_event(session, integration_id=integration_id, event_type=event_type,
                                                   data=data, event_id=event_id)]

    ids = await asyncio.to_thread(create)
    if redis is not None:
        for delivery_id in ids:
            await redis.enqueue_job("deliver_webhook", delivery_id, _job_id=f"whd:{delivery_id}:0")
    return ids


def collect_events(app: AppContext, *, since: datetime) -> int:
    """Emit (once each, by deterministic event id) the events that happened since ``since``: finished and
    failed runs, new errors and conflicts, finished migration phases. Returns how many deliveries were made."""
    made = 0
    with app.db.session() as session:
        runs = session.exec(select(SyncRun).where(col(SyncRun.finished_at) >= since)
                            .where(col(SyncRun.status).in_(("succeeded", "failed")))).all()
        for run in runs:
            kind = "run.finished" if run.status == "succeeded" else "run.failed"
            made += len(store.emit_event(session, integration_id=run.integration_id, event_type=kind,
                                         event_id=f"{kind}:{run.id}", data={
                                             "runId": run.id, "integrationId": run.integration_id,
                                             "status": run.status, "trigger": run.trigger, "counts": run.counts,
                                             "error": run.error[:500],
                                             "finishedAt": run.finished_at.isoformat() if run.finished_at else None}))
        errors = session.exec(select(IntegrationError).where(col(IntegrationError.timestamp) >= since)).all()
        for err in errors:
            kind = "conflict.waiting" if err.error_type == "conflict" else "error.raised"
            made += len(store.emit_event(session, integration_id=err.integration_id, event_type=kind,
                                         event_id=f"{kind}:{err.id}", data={
                                             "errorId": err.id, "integrationId": err.integration_id,
                                             "errorType": err.error_type, "errorCode": err.error_code,
                                             "recordId": err.record_id, "runId": err.run_id}))
        phases = session.exec(select(MigrationPhase, MigrationPlan)
                              .where(col(MigrationPhase.plan_id) == col(MigrationPlan.id))
                              .where(col(MigrationPhase.status).in_(("ran", "reconciled", "cut_over")))
                              .where(col(MigrationPlan.integration_id).is_not(None))).all()
        for phase, plan in phases:
            assert plan.integration_id is not None
            made += len(store.emit_event(session, integration_id=plan.integration_id,
                                         event_type="migration.phase_done",
                                         event_id=f"migration.phase_done:{phase.id}:{phase.status}", data={
                                             "planId": plan.id, "phaseId": phase.id, "phaseName": phase.phase_name,
                                             "status": phase.status, "runId": phase.run_id}))
    return made


async def relay_events(ctx: dict[str, Any]) -> int:
    """arq cron: emit the events of the last hour (idempotent), then queue what is due."""
    app: AppContext = ctx.get("app") or get_context()
    made = await asyncio.to_thread(collect_events, app, since=utcnow() - timedelta(hours=1))
    await dispatch_webhooks(ctx)
    return made


async def send_test_event(webhook_id: str, *, app: AppContext | None = None,
                          client: httpx.AsyncClient | None = None) -> WebhookDelivery:
    """Send a ``webhook.test`` event to one subscriber now and return the logged delivery (status, answer)."""
    app = app or get_context()

    def create() -> str:
        with app.db.session() as session:
            return store.send_test_event(session, webhook_id=webhook_id).id

    delivery_id = await asyncio.to_thread(create)
    row = await deliver(app, delivery_id, client=client)
    if row is None:
        with app.db.session() as session:
            return store.get_delivery(session, delivery_id=delivery_id)
    return row


def webhook_job_functions() -> list[Any]:
    """Job functions the worker registers for webhooks (inbound processing and outbound delivery)."""
    from app.webhooks_in import process_inbound_event

    return [process_inbound_event, deliver_webhook]


def webhook_cron_jobs() -> list[Any]:
    """Cron jobs: relay and dispatch outbound events every 10 s; re-queue lost inbound events every minute."""
    from arq import cron

    from app.webhooks_in import sweep_inbound

    every_10s = set(range(0, 60, 10))
    return [cron(relay_events, second=every_10s, run_at_startup=True, unique=True),  # type: ignore[arg-type]
            cron(sweep_inbound, second={30}, unique=True)]  # type: ignore[arg-type]
