"""Starting sync runs from the API: through the sync engine's ``enqueue_run`` when it is installed,
otherwise as a queued SyncRun row that the engine's reaper picks up."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from app.context import AppContext
from storage.models import RunStatus, SyncRun

log = logging.getLogger("carehub.api")


def _engine_enqueue() -> Any:
    try:
        module = importlib.import_module("app.sync_jobs")
    except ImportError:
        return None
    return getattr(module, "enqueue_run", None)


async def start_run(ctx: AppContext, *, integration_id: str, trigger: str, params: dict[str, Any],
                    actor: str) -> SyncRun:
    """Queue a run of ``integration_id`` and return its row (the run itself happens in a worker).

    The engine keeps one active run per integration: when one is already queued or running, that run is
    returned. API ``fullRefresh`` becomes the engine's ``full`` and retried ``errorIds`` its ``record_ids``."""
    enqueue = _engine_enqueue()
    engine_params = dict(params)
    if engine_params.pop("fullRefresh", False):
        engine_params["full"] = True
    if enqueue is not None:
        from app.webhooks_in import arq_for

        pool = await arq_for(ctx.redis_url)
        run_id = str(await enqueue(ctx.db, pool, integration_id, trigger=trigger, params=engine_params,
                                   requested_by=actor))
        with ctx.db.session() as session:
            row = session.get(SyncRun, run_id)
            if row is not None:
                return row
    with ctx.db.session() as session:
        row = SyncRun(integration_id=integration_id, trigger=trigger, status=RunStatus.QUEUED.value,
                      direction=str(params.get("direction", "inbound")), params=engine_params, requested_by=actor)
        session.add(row)
    return row
