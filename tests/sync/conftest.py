"""Fixtures for the sync tests: an arq pool on the test Redis and an in-process burst worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker, func

from app.sync_jobs import run_sync


@pytest.fixture
async def arq(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    yield pool
    await pool.aclose()


async def drain(ctx_app: Any, redis_url: str, worker_id: str = "test-worker") -> Worker:
    """Run queued sync jobs in this process until the queue is empty (deferred jobs included)."""
    pool = await create_pool(RedisSettings.from_dsn(redis_url))

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["app"] = ctx_app
        ctx["worker_id"] = worker_id

    worker = Worker(functions=[func(run_sync, name="run_sync", max_tries=50)], redis_pool=pool, burst=True,
                    poll_delay=0.01, handle_signals=False, on_startup=startup, keep_result=0,
                    max_jobs=4)
    await worker.async_run()
    await worker.close()
    return worker
