"""Starting sync runs from the API: through the sync engine's ``enqueue_run`` when it is installed,
otherwise as a queued SyncRun row that the engine's reaper picks up."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from app.context import AppContext
from storage.models import RunStatus, SyncRun

log = logging.getLogger("carehub.api")


async def start_run(ctx: AppContext, *, integration_id: str, trigger: str, params: dict[str, Any],
                    actor: str) -> SyncRun:
    """Queue a run of ``integration_id`` and return its row (the run itself happens in a worker)."""
    try:
        from app import sync_jobs  # type: ignore[attr-defined]
    except ImportError:
        sync_jobs = None
    enqueue = getattr(sync_jobs, "enqueue_run", None) if sync_jobs is not None else None
    if enqueue is not None:
        result = enqueue(ctx, integration_id=integration_id, trigger=trigger, params=params, requested_by=actor)
        if inspect.isawaitable(result):
            result = await result
        run_id = result if isinstance(result, str) else getattr(result, "id", None)
        if run_id:
            with ctx.db.session() as session:
                row = session.get(SyncRun, run_id)
                if row is not None:
                    return row
    with ctx.db.session() as session:
        row = SyncRun(integration_id=integration_id, trigger=trigger, status=RunStatus.QUEUED.value,
                      direction=str(params.get("direction", "inbound")), params=params, requested_by=actor)
        session.add(row)
    return row
