"""GET /api/v1/integrations/health-check: database, Redis, workers, queue depth, staleness."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import text
from sqlmodel import col, select

from app.api.deps import ApiUser, context
from app.api.examples import ok
from app.api.problems import problem_responses
from app.api.roles import authorize
from app.context import AppContext
from storage.models import Integration

router = APIRouter()


class RedisHealth(BaseModel):
    """Redis reachability, live workers and queued jobs."""

    ok: bool
    workers: int
    queueDepth: int | None
    error: str | None = None


class IntegrationHealth(BaseModel):
    """One integration's last success and whether it is stale."""

    id: str
    name: str
    status: str
    lastSuccess: str | None
    stale: bool


class HealthOut(BaseModel):
    """Health of CareHub: database, Redis, workers, queue depth, each integration's freshness."""

    status: str
    database: dict[str, bool]
    redis: RedisHealth
    integrations: list[IntegrationHealth]
WORKER_HEARTBEAT_KEY = "carehub:workers"


@router.get("/integrations/health-check", summary="Health of CareHub and every integration",
            operation_id="healthCheck", response_model=HealthOut,
            responses={**problem_responses(401, 403, 429), **ok("healthCheck")})
async def health_check(ctx: AppContext = Depends(context),
                       _user: ApiUser = Depends(authorize("healthCheck"))) -> dict[str, Any]:
    """Database and Redis reachability, live workers, queue depth, each integration's last success."""
    db_ok, integrations = await asyncio.to_thread(_database_state, ctx)
    redis_state = await _redis_state(ctx.redis_url)
    healthy = db_ok and redis_state["ok"]
    return {"status": "ok" if healthy else "degraded", "database": {"ok": db_ok}, "redis": redis_state,
            "integrations": integrations}


def _database_state(ctx: AppContext) -> tuple[bool, list[dict[str, Any]]]:
    try:
        with ctx.db.session() as session:
            session.exec(text("SELECT 1"))  # type: ignore[call-overload]
            rows = session.exec(select(Integration).where(col(Integration.deleted_at).is_(None))).all()
    except Exception:
        return False, []
    now = datetime.now(UTC)
    out = []
    for row in rows:
        last = row.last_success.replace(tzinfo=UTC) if row.last_success and row.last_success.tzinfo is None \
            else row.last_success
        stale = last is None or now - last > timedelta(minutes=row.stale_after_minutes)
        out.append({"id": row.id, "name": row.name, "status": row.status,
                    "lastSuccess": last.isoformat() if last else None, "stale": stale})
    return True, out


async def _redis_state(url: str) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url, socket_timeout=2)
    try:
        await client.ping()
        workers = await client.zcount(WORKER_HEARTBEAT_KEY, datetime.now(UTC).timestamp() - 60, "+inf")
        depth = await client.zcard("arq:queue")
        return {"ok": True, "workers": int(workers), "queueDepth": int(depth)}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__, "workers": 0, "queueDepth": None}
    finally:
        await client.aclose()
