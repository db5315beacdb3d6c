"""HL7 v2 MLLP listeners owned by the workers: one per active ``hl7_lab`` integration that names a port.

Every worker runs a :class:`MllpListeners` supervisor (started in ``app.worker.startup``). Every
``CAREHUB_MLLP_POLL_SECONDS`` (default 10) it reads the active ``hl7_lab`` integrations whose connection details
give ``listen_port`` and ``spool_dir`` (``listen_host`` defaults to every interface), and:

* starts a listener for an integration only after taking its Redis lock (``SET NX`` with a time to live), so
  one worker in the deployment binds the port and the others retry at their next poll;
* renews the locks of its listeners on every poll; a listener whose lock was lost (Redis flushed, this worker
  stalled past the lock's life) is stopped, and the port is taken again by whichever worker locks it first;
* stops listeners whose integration was deactivated, deleted or moved to another host/port/spool.

Accepted messages go to the integration's spool (written and fsynced before the ``AA``, see
:mod:`connectors.hl7.spool`); the next sync run of the integration reads them, on whichever worker runs it, so
with workers on several machines ``spool_dir`` must be a folder they all reach. On shutdown the listeners close
and the locks are released, so another worker takes over within one poll; a worker that dies without shutting
down holds the port's lock until it expires (three polls, at least 5 seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from app.context import AppContext
from connectors.hl7.mllp import MllpListener
from connectors.hl7.spool import Spool
from storage.db import Database
from storage.models import Integration, IntegrationStatus

log = logging.getLogger("carehub.mllp")

CONNECTOR_ID = "hl7_lab"
LOCK_PREFIX = "carehub:mllp:lock:"
STATUS_KEY = "carehub:mllp:listeners"  # hash: integration id -> JSON {worker, host, port, since}
DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - the lab's engine connects from the trust network (as the CLI listener)

# Renew the lock only if we still hold it; release only our own lock.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def poll_seconds() -> float:
    """How often a worker looks for integrations to listen for (``CAREHUB_MLLP_POLL_SECONDS``)."""
    try:
        return max(0.1, float(os.environ.get("CAREHUB_MLLP_POLL_SECONDS", "10")))
    except ValueError:
        return 10.0


@dataclass(frozen=True)
class ListenSpec:
    """Where one integration listens and spools."""

    integration_id: str
    host: str
    port: int
    spool_dir: str


def listen_specs(db: Database) -> dict[str, ListenSpec]:
    """Active ``hl7_lab`` integrations with a usable listen port and spool folder, by integration id."""
    with db.session() as s:
        rows = s.execute(select(col(Integration.id), col(Integration.connection_details)).where(
            col(Integration.connector_id) == CONNECTOR_ID,
            col(Integration.status) == IntegrationStatus.ACTIVE.value,
            col(Integration.deleted_at).is_(None))).all()
    out: dict[str, ListenSpec] = {}
    for integration_id, details in rows:
        cfg = dict(details or {})
        raw_port, spool = cfg.get("listen_port"), str(cfg.get("spool_dir") or "")
        if raw_port in (None, "") or not spool:
            continue
        try:
            port = int(str(raw_port))
        except ValueError:
            log.warning("hl7_lab integration %s: listen_port %r is not a number", integration_id, raw_port)
            continue
        if not 0 < port < 65536:
            log.warning("hl7_lab integration %s: listen_port %s is out of range", integration_id, port)
            continue
        out[str(integration_id)] = ListenSpec(str(integration_id), str(cfg.get("listen_host") or DEFAULT_HOST),
                                              port, spool)
    return out


@dataclass
class _Running:
    spec: ListenSpec
    listener: MllpListener


class MllpListeners:
    """The listeners of one worker (see the module docstring)."""

    def __init__(self, app: AppContext, redis: Any, worker_id: str, *, poll: float | None = None) -> None:
        self.app = app
        self.redis = redis
        self.worker_id = worker_id
        self.poll = poll if poll is not None else poll_seconds()
        self.lock_ms = int(max(3 * self.poll, 5.0) * 1000)
        self.running: dict[str, _Running] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin polling (the first pass runs at once, in the background)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="carehub-mllp-listeners")

    async def _loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database or Redis blip: keep what runs, try again next poll
                log.warning("MLLP listener supervision failed; retrying in %.0fs", self.poll, exc_info=True)
            await asyncio.sleep(self.poll)

    async def reconcile(self) -> None:
        """One pass: stop what should not run (or lost its lock), renew the rest, start what is missing."""
        wanted = await asyncio.to_thread(listen_specs, self.app.db)
        for integration_id, run in list(self.running.items()):
            if wanted.get(integration_id) != run.spec:
                await self._stop(integration_id, "the integration is no longer active or its address changed")
            elif not await self.redis.eval(_RENEW, 1, LOCK_PREFIX + integration_id, self.worker_id, self.lock_ms):
                await self._stop(integration_id, "its lock was lost", release=False)
        for integration_id, spec in wanted.items():
            if integration_id not in self.running:
                await self._try_start(spec)

    async def _try_start(self, spec: ListenSpec) -> None:
        key = LOCK_PREFIX + spec.integration_id
        if not await self.redis.set(key, self.worker_id, nx=True, px=self.lock_ms):
            return  # another worker listens for it; we try again at the next poll
        spool = Spool(spec.spool_dir)
        listener = MllpListener(spool.store, host=spec.host, port=spec.port)
        try:
            await listener.start()
        except OSError as exc:
            await self.redis.eval(_RELEASE, 1, key, self.worker_id)
            log.warning("hl7_lab integration %s: cannot listen on %s:%s (%s); retrying in %.0fs",
                        spec.integration_id, spec.host, spec.port, exc, self.poll)
            return
        self.running[spec.integration_id] = _Running(spec, listener)
        await self.redis.hset(STATUS_KEY, spec.integration_id, json.dumps(
            {"worker": self.worker_id, "host": spec.host, "port": listener.port, "since": time.time()}))
        log.info("hl7_lab integration %s: MLLP listener on %s:%s spooling to %s", spec.integration_id,
                 spec.host, listener.port, spec.spool_dir)

    async def _stop(self, integration_id: str, why: str, *, release: bool = True) -> None:
        run = self.running.pop(integration_id, None)
        if run is None:
            return
        await run.listener.stop()
        if release:
            with contextlib.suppress(Exception):
                await self.redis.eval(_RELEASE, 1, LOCK_PREFIX + integration_id, self.worker_id)
        with contextlib.suppress(Exception):
            current = await self.redis.hget(STATUS_KEY, integration_id)
            if current is not None and json.loads(current).get("worker") == self.worker_id:
                await self.redis.hdel(STATUS_KEY, integration_id)
        log.info("hl7_lab integration %s: MLLP listener stopped (%s)", integration_id, why)

    async def stop(self) -> None:
        """Stop polling, close every listener and release the locks."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for integration_id in list(self.running):
            await self._stop(integration_id, "the worker is shutting down")


async def start_listeners(ctx: dict[str, Any]) -> None:
    """Worker start-up hook: supervise this worker's MLLP listeners (``ctx["mllp"]``)."""
    listeners = MllpListeners(ctx["app"], ctx["redis"], str(ctx["worker_id"]))
    ctx["mllp"] = listeners
    await listeners.start()


async def stop_listeners(ctx: dict[str, Any]) -> None:
    """Worker shutdown hook: close the listeners and release their ports to the other workers."""
    listeners = ctx.pop("mllp", None)
    if isinstance(listeners, MllpListeners):
        await listeners.stop()
