"""Shared by the connector tests that go through the real sync worker: a sandbox on a loopback
uvicorn server, a burst arq worker running ``run_sync``, and care-record counts."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker, func
from fastapi import FastAPI
from sqlalchemy import func as sqlfunc
from sqlalchemy import select

from app.sync_jobs import run_sync
from storage.models import CareRecord, Integration, MappingDesign, SyncConfiguration


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on a free loopback port for the duration of the block; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def drain(ctx_app: Any, redis_url: str, worker_id: str) -> None:
    """Run a burst worker until the queue is empty."""
    pool = await create_pool(RedisSettings.from_dsn(redis_url))

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["app"] = ctx_app
        ctx["worker_id"] = worker_id

    worker = Worker(functions=[func(run_sync, name="run_sync", max_tries=5)], redis_pool=pool, burst=True,
                    poll_delay=0.01, handle_signals=False, on_startup=startup, keep_result=0, max_jobs=2)
    await worker.async_run()
    await worker.close()


def count_care(ctx: Any, care_type: str) -> int:
    """How many care records of ``care_type`` the store holds."""
    with ctx.db.session() as s:
        return int(s.execute(select(sqlfunc.count()).select_from(CareRecord)
                             .where(CareRecord.care_type == care_type)).scalar_one())


def folder_integration(ctx: Any, connector: str, name: str, folders: dict[str, Path],
                       designs: dict[str, tuple[str, dict[str, Any]]]) -> str:
    """An active inbound integration of a file connector reading ``folders`` (``inbox_dir``, ``outbox_dir``),
    with one mapping design a stream (``{stream: (care_type, design)}``), fast retries and a manual schedule."""
    with ctx.db.session() as s:
        integ = Integration(name=name, connector_id=connector, status="active", operation_mode="external_primary",
                            connection_details={k: str(v) for k, v in folders.items()},
                            credentials_encrypted=ctx.box.encrypt({}), error_handling={})
        s.add(integ)
        s.flush()
        s.add(SyncConfiguration(integration_id=integ.id, sync_direction="inbound", batch_size=50,
                                retry_policy={"base_seconds": 0.05, "cap_seconds": 0.2, "max_attempts": 2,
                                              "call_deadline_seconds": 10},
                                error_threshold=1000, max_change_share=1.0, sync_frequency={"kind": "manual"},
                                streams=[{"stream": st, "care_type": ct} for st, (ct, _d) in designs.items()]))
        for st, (ct, design) in designs.items():
            s.add(MappingDesign(integration_id=integ.id, stream=st, care_type=ct, design=design))
        return str(integ.id)
