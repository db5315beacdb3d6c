"""Alerts for the people in each integration's notification settings: a run failed, or an error has
waited past the two-hour resolution target.

:func:`ops_alerts_cron` is an arq cron job (``app.worker`` registers it). Each alert is sent once:
Redis remembers what was alerted. An alert is an audit row (``alert.sent``, shown on the health page)
and an entry in the Redis list :data:`ALERTS_KEY` for in-app notifications, addressed to the
recipients the settings name.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from storage.audit import record_audit
from storage.db import Database
from storage.models import Integration, SyncConfiguration, utcnow
from storage.ops_queries import aged_errors, failed_runs_since

ALERTED_KEY = "carehub:ops:alerted"
ALERTS_KEY = "carehub:ops:alerts"
LOOKBACK = timedelta(days=1)
DEFAULT_SETTINGS: dict[str, Any] = {"on_failure": True, "on_error_age": True, "recipients": [],
                                    "channels": ["in_app"]}


@dataclass(frozen=True, slots=True)
class Alert:
    """One thing worth telling someone about."""

    key: str  # what it is about, for sending it once: run:<id> or error:<id>
    kind: str  # run_failed, error_aged
    integration_id: str
    text: str
    recipients: tuple[str, ...]
    channels: tuple[str, ...]


def notification_settings(session: Session, integration_id: str) -> dict[str, Any]:
    """The integration's notification settings over the defaults (alert on both, in the app)."""
    config = session.get(SyncConfiguration, integration_id)
    return {**DEFAULT_SETTINGS, **(config.notification_settings if config else {})}


def due_alerts(session: Session, *, now: datetime | None = None) -> list[Alert]:
    """Every alert the settings ask for right now (already-sent ones are filtered by the caller)."""
    now = now or utcnow()
    names = {i.id: i.name for i in session.exec(select(Integration)).all()}
    alerts: list[Alert] = []
    settings_cache: dict[str, dict[str, Any]] = {}

    def settings(integration_id: str) -> dict[str, Any]:
        if integration_id not in settings_cache:
            settings_cache[integration_id] = notification_settings(session, integration_id)
        return settings_cache[integration_id]

    for run in failed_runs_since(session, now - LOOKBACK):
        chosen = settings(run.integration_id)
        if chosen.get("on_failure"):
            alerts.append(Alert(f"run:{run.id}", "run_failed", run.integration_id,
                                f"A sync of {names.get(run.integration_id, run.integration_id)} failed: "
                                f"{run.error or 'see the run for details'}",
                                tuple(chosen.get("recipients", [])), tuple(chosen.get("channels", ["in_app"]))))
    for error in aged_errors(session, now=now):
        chosen = settings(error.integration_id)
        if chosen.get("on_error_age"):
            alerts.append(Alert(f"error:{error.id}", "error_aged", error.integration_id,
                                f"An error in {names.get(error.integration_id, error.integration_id)} has waited "
                                f"more than 2 hours: {error.error_message[:200]}",
                                tuple(chosen.get("recipients", [])), tuple(chosen.get("channels", ["in_app"]))))
    return alerts


def record_alerts(db: Database, alerts: list[Alert]) -> None:
    """Write each alert to the audit log (the health page lists them)."""
    with db.session() as session:
        for alert in alerts:
            record_audit(session, actor="carehub", action="alert.sent", entity_type="integration",
                         entity_id=alert.integration_id,
                         detail={"key": alert.key, "kind": alert.kind, "text": alert.text,
                                 "recipients": list(alert.recipients), "channels": list(alert.channels)})


def _due(db: Database) -> list[Alert]:
    with db.session() as session:
        return due_alerts(session)


async def send_alerts(db: Database, redis: Any) -> list[Alert]:
    """Send every due alert that was not sent before; returns what was sent."""
    sent: list[Alert] = []
    for alert in await asyncio.to_thread(_due, db):
        if await redis.sadd(ALERTED_KEY, alert.key):
            sent.append(alert)
    if sent:
        await asyncio.to_thread(record_alerts, db, sent)
        await redis.lpush(ALERTS_KEY, *[json.dumps({"kind": a.kind, "text": a.text, "integration_id": a.integration_id,
                                                    "recipients": list(a.recipients), "at": utcnow().isoformat()})
                                        for a in sent])
        await redis.ltrim(ALERTS_KEY, 0, 499)
    return sent


async def ops_alerts_cron(ctx: dict[str, Any]) -> int:
    """arq cron job: send due alerts (``ctx['app'].db`` and ``ctx['redis']`` come from the worker)."""
    return len(await send_alerts(ctx["app"].db, ctx["redis"]))
