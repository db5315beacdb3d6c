"""The arq worker: job functions take ids, state lives in SQL, a heartbeat proves liveness.

Run with ``carehub worker`` (or ``arq app.worker.WorkerSettings``).
"""

from __future__ import annotations

import gc
import os
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from arq import cron
from arq.connections import RedisSettings
from arq.cron import CronJob

from app.context import get_context
from app.store_writer import close_writers, start_writer

WORKER_HEARTBEAT_KEY = "carehub:workers"
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"

JobFunction = Callable[..., Coroutine[Any, Any, Any]]


async def heartbeat(ctx: dict[str, Any]) -> None:
    """Record that this worker is alive (the health check counts workers seen in the last minute)."""
    await ctx["redis"].zadd(WORKER_HEARTBEAT_KEY, {WORKER_ID: time.time()})
    await ctx["redis"].zremrangebyscore(WORKER_HEARTBEAT_KEY, "-inf", time.time() - 3600)


def freeze_heap() -> None:
    """Move every object alive now (modules, the app context) out of the cyclic collector's sight.

    A worker keeps its startup objects for life; without this each collection walks them all again while
    a sync allocates a page's records (measured on bench/sync: about a sixth of the worker's CPU).
    """
    gc.collect()
    gc.freeze()


async def startup(ctx: dict[str, Any]) -> None:
    """Fill the job context with the application context."""
    ctx["app"] = get_context()
    ctx["worker_id"] = WORKER_ID
    await heartbeat(ctx)
    from app.mllp_listeners import start_listeners

    await start_listeners(ctx)  # HL7 v2 MLLP listeners of the active hl7_lab integrations
    start_writer(ctx["app"].db.url)
    freeze_heap()


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close this worker's MLLP listeners; forget its heartbeat so the health check stops counting it at once."""
    from app.mllp_listeners import stop_listeners

    await stop_listeners(ctx)
    close_writers()
    await ctx["redis"].zrem(WORKER_HEARTBEAT_KEY, WORKER_ID)


def job_functions() -> list[JobFunction]:
    """Every job function the worker runs (the sync engine adds its own here)."""
    from app.sync_jobs import sync_job_functions
    from app.webhooks_out import webhook_job_functions

    return [heartbeat, *sync_job_functions(), *webhook_job_functions()]


def cron_jobs() -> list[CronJob]:
    """Periodic jobs: heartbeat every 15 seconds; the sync scheduler and reaper."""
    from app.sync_jobs import sync_cron_jobs
    from app.webhooks_out import webhook_cron_jobs
    from storage.ops_alerts import ops_alerts_cron

    return [cron(heartbeat, second={0, 15, 30, 45}, run_at_startup=False),  # type: ignore[arg-type]
            *sync_cron_jobs(), *webhook_cron_jobs(),
            cron(ops_alerts_cron, minute=set(range(0, 60, 5)), run_at_startup=False)]  # type: ignore[arg-type]


class WorkerSettings:
    """arq worker configuration, resolved from CareHub settings at import time."""

    functions: ClassVar[list[JobFunction]] = job_functions()
    cron_jobs: ClassVar[list[CronJob]] = cron_jobs()
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(get_context().redis_url)
    max_jobs = 10
    job_timeout = 3600
    keep_result = 3600
    health_check_interval = 30
    allow_abort_jobs = True
