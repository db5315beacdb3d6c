"""Webhook records: inbound events (de-duplicated by delivery id for at least seven days) and outbound
deliveries (one row per event and subscriber, with its attempts, last answer and next attempt time)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from storage.audit import record_audit
from storage.integrations import NotFound, get_webhook
from storage.models import InboundEvent, Webhook, WebhookDelivery, utcnow

DEDUPE_WINDOW = timedelta(days=8)  # longer than Xero's 24 h and Standard Webhooks' ~75 h retry schedules
OUTBOUND_EVENTS = ("run.finished", "run.failed", "error.raised", "conflict.waiting", "migration.phase_done")
TEST_EVENT = "webhook.test"


# ---------------------------------------------------------------------------------------------- inbound


def claim_inbound(session: Session, *, delivery_id: str, integration_id: str, event_type: str = "",
                  payload: Mapping[str, Any] | None = None) -> bool:
    """Record a received event; False when this delivery id was already recorded (a duplicate or replay).

    Runs in a savepoint, so a duplicate does not spoil the caller's transaction."""
    if session.get(InboundEvent, delivery_id) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(InboundEvent(delivery_id=delivery_id, integration_id=integration_id,
                                     event_type=event_type[:100], payload=dict(payload or {})))
    except IntegrityError:
        return False
    return True


def claim_inbound_many(session: Session, *, events: Sequence[Mapping[str, Any]]) -> set[str]:
    """Record many received events in one transaction (group commit); returns the delivery ids that were new.

    Each event is ``{"delivery_id", "integration_id", "event_type", "payload"}``; repeats (in the batch or
    already stored) are left out. A race with another process falls back to one savepoint per event."""
    wanted: dict[str, Mapping[str, Any]] = {}
    for event in events:
        wanted.setdefault(str(event["delivery_id"]), event)
    if not wanted:
        return set()
    existing = set(session.exec(select(InboundEvent.delivery_id)
                                .where(col(InboundEvent.delivery_id).in_(list(wanted)))).all())
    fresh = [e for d, e in wanted.items() if d not in existing]
    try:
        with session.begin_nested():
            for event in fresh:
                session.add(InboundEvent(delivery_id=str(event["delivery_id"]),
                                         integration_id=str(event["integration_id"]),
                                         event_type=str(event.get("event_type", ""))[:100],
                                         payload=dict(event.get("payload") or {})))
    except IntegrityError:
        return {str(e["delivery_id"]) for e in fresh
                if claim_inbound(session, delivery_id=str(e["delivery_id"]), integration_id=str(e["integration_id"]),
                                 event_type=str(e.get("event_type", "")), payload=e.get("payload"))}
    return {str(e["delivery_id"]) for e in fresh}


def get_inbound(session: Session, *, delivery_id: str) -> InboundEvent | None:
    """A received event by delivery id."""
    return session.get(InboundEvent, delivery_id, populate_existing=True)


def mark_inbound_processed(session: Session, *, delivery_id: str) -> bool:
    """Mark an event processed; False if it already was (so the caller processes it once)."""
    row = session.get(InboundEvent, delivery_id, populate_existing=True, with_for_update=True)
    if row is None or row.processed:
        return False
    row.processed = True
    session.add(row)
    return True


def unprocessed_inbound(session: Session, *, older_than: timedelta = timedelta(seconds=30),
                        limit: int = 500) -> list[InboundEvent]:
    """Events received but not processed after ``older_than`` (their job was lost: queue them again)."""
    cutoff = utcnow() - older_than
    return list(session.exec(select(InboundEvent).where(col(InboundEvent.processed).is_(False))
                             .where(col(InboundEvent.received_at) < cutoff)
                             .order_by(col(InboundEvent.received_at)).limit(limit)).all())


def purge_inbound(session: Session, *, older_than: timedelta = DEDUPE_WINDOW) -> int:
    """Forget processed events past the de-duplication window; returns how many were removed."""
    cutoff = utcnow() - older_than
    result = session.exec(delete(InboundEvent).where(col(InboundEvent.received_at) < cutoff)  # type: ignore[call-overload]
                          .where(col(InboundEvent.processed).is_(True)))
    return int(getattr(result, "rowcount", 0) or 0)


# ---------------------------------------------------------------------------------------------- outbound


def new_event_id() -> str:
    """A unique event id (``msg_`` + 32 hex), stable across the retries of a delivery."""
    return "msg_" + uuid.uuid4().hex


def _subscribed(hook: Webhook, event_type: str) -> bool:
    events = [str(e) for e in hook.events]
    return not events or event_type in events or "*" in events


def emit_event(session: Session, *, integration_id: str, event_type: str, data: Mapping[str, Any],
               event_id: str | None = None) -> list[WebhookDelivery]:
    """Create one pending delivery per active outbound subscriber of the integration for this event.

    With a deterministic ``event_id`` this is idempotent: an event already emitted is not emitted again."""
    if event_id is not None and event_emitted(session, event_id=event_id):
        return []
    event_id = event_id or new_event_id()
    hooks = session.exec(select(Webhook).where(Webhook.integration_id == integration_id)
                         .where(Webhook.direction == "outbound").where(col(Webhook.active).is_(True))
                         .where(col(Webhook.deleted_at).is_(None))).all()
    out = []
    now = utcnow()
    payload = {"type": event_type, "timestamp": now.isoformat(), "data": dict(data)}
    for hook in hooks:
        if not _subscribed(hook, event_type):
            continue
        row = WebhookDelivery(webhook_id=hook.id, event_type=event_type, event_id=event_id, payload=payload,
                              status="pending", next_attempt_at=now)
        session.add(row)
        out.append(row)
    session.flush()
    return out


def send_test_event(session: Session, *, webhook_id: str, actor: str = "system") -> WebhookDelivery:
    """Queue a ``webhook.test`` delivery to one subscriber (the worker sends it within seconds; the result
    shows in :func:`list_deliveries`). For an immediate send use ``app.webhooks_out.send_test_event``."""
    hook = get_webhook(session, webhook_id=webhook_id)
    if hook.direction != "outbound":
        raise NotFound("Only outbound webhooks can be sent a test event.")
    now = utcnow()
    row = WebhookDelivery(webhook_id=hook.id, event_type=TEST_EVENT, event_id=new_event_id(), status="pending",
                          payload={"type": TEST_EVENT, "timestamp": now.isoformat(),
                                   "data": {"integrationId": hook.integration_id, "webhookId": hook.id,
                                            "message": "This is a test event from CareHub."}},
                          next_attempt_at=now)
    session.add(row)
    session.flush()
    record_audit(session, actor=actor, action="webhook.test", entity_type="webhook", entity_id=hook.id)
    return row


def get_delivery(session: Session, *, delivery_id: str) -> WebhookDelivery:
    """One delivery; :class:`NotFound` otherwise."""
    row = session.get(WebhookDelivery, delivery_id, populate_existing=True)
    if row is None:
        raise NotFound(f"No webhook delivery with id '{delivery_id}'.")
    return row


def due_deliveries(session: Session, *, now: datetime | None = None, limit: int = 100) -> list[WebhookDelivery]:
    """Deliveries waiting for an attempt whose time has come, oldest first."""
    now = now or utcnow()
    return list(session.exec(select(WebhookDelivery)
                             .where(col(WebhookDelivery.status).in_(("pending", "retrying", "sending")))
                             .where(col(WebhookDelivery.next_attempt_at) <= now)
                             .order_by(col(WebhookDelivery.next_attempt_at)).limit(limit)).all())


def record_attempt(session: Session, *, delivery_id: str, status: str, response_code: int | None,
                   excerpt: str, next_attempt_at: datetime | None) -> WebhookDelivery:
    """Log one attempt: status (delivered, retrying, failed, disabled), the answer and the next attempt time."""
    row = get_delivery(session, delivery_id=delivery_id)
    row.attempts += 1
    row.status = status
    row.response_code = response_code
    row.response_excerpt = excerpt[:500]
    row.next_attempt_at = next_attempt_at
    session.add(row)
    return row


def disable_webhook(session: Session, *, webhook_id: str, reason: str) -> None:
    """Switch a subscriber off (e.g. it answered 410 Gone) and cancel its pending deliveries."""
    hook = session.get(Webhook, webhook_id)
    if hook is None:
        return
    hook.active = False
    hook.disabled_reason = reason[:500]
    session.add(hook)
    for row in session.exec(select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
                            .where(col(WebhookDelivery.status).in_(("pending", "retrying")))).all():
        row.status = "cancelled"
        row.next_attempt_at = None
        session.add(row)
    record_audit(session, actor="system", action="webhook.disable", entity_type="webhook", entity_id=webhook_id,
                 detail={"reason": reason})


def list_deliveries(session: Session, *, webhook_id: str, offset: int = 0, limit: int = 50) -> list[WebhookDelivery]:
    """A subscriber's delivery log, newest first."""
    return list(session.exec(select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
                             .order_by(col(WebhookDelivery.created_at).desc()).offset(offset).limit(limit)).all())


def deliveries_for_event(session: Session, *, event_id: str) -> Sequence[WebhookDelivery]:
    """Every delivery of one event (one per subscriber)."""
    return session.exec(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)).all()


def claim_delivery(session: Session, *, delivery_id: str, lease_seconds: int = 120) -> bool:
    """Take a due delivery for sending (one sender at a time); the lease lets a sweeper retry it if the
    sender dies. False when another sender has it or it is no longer due."""
    from sqlalchemy import update

    now = utcnow()
    stmt = (update(WebhookDelivery).where(col(WebhookDelivery.id) == delivery_id)
            .where(col(WebhookDelivery.status).in_(("pending", "retrying", "sending")))
            .where((col(WebhookDelivery.next_attempt_at).is_(None)) | (col(WebhookDelivery.next_attempt_at) <= now))
            .values(status="sending", next_attempt_at=now + timedelta(seconds=lease_seconds)))
    return int(getattr(session.execute(stmt), "rowcount", 0) or 0) == 1


def event_emitted(session: Session, *, event_id: str) -> bool:
    """True when deliveries for this event id already exist (the relay emits each event once)."""
    return session.exec(select(WebhookDelivery.id).where(WebhookDelivery.event_id == event_id).limit(1)).first() \
        is not None
