"""Alerts: a failed run and an error older than two hours are alerted once, as the settings ask."""

from __future__ import annotations

from typing import Any

import ops_seed as seed
import redis.asyncio as aioredis
from sqlmodel import select

from storage.models import AuditLog, SyncConfiguration
from storage.ops_alerts import ALERTS_KEY, ops_alerts_cron, send_alerts


class _App:
    def __init__(self, db: Any) -> None:
        self.db = db


async def test_failed_run_and_aged_error_alert_once(db: Any, redis_url: str) -> None:
    ids = seed.integrations(db, ("BambooHR staff", "Xero finance"))
    seed.failed_run_with_error(db, ids[0], minutes_ago=180)
    seed.failed_run_with_error(db, ids[1], minutes_ago=10)
    with db.session() as s:
        s.add(SyncConfiguration(integration_id=ids[1], notification_settings={
            "on_failure": False, "recipients": ["finance@home.example"]}))
    redis = aioredis.from_url(redis_url)
    try:
        sent = await send_alerts(db, redis)
        assert sorted(a.kind for a in sent) == ["error_aged", "run_failed"]
        assert all(a.integration_id == ids[0] for a in sent)
        assert await ops_alerts_cron({"app": _App(db), "redis": redis}) == 0  # nothing twice
        assert await redis.llen(ALERTS_KEY) == 2
    finally:
        await redis.aclose()
    with db.session() as s:
        rows = s.exec(select(AuditLog).where(AuditLog.action == "alert.sent")).all()
        assert len(rows) == 2 and any("failed" in r.detail["text"] for r in rows)
