"""Inbound vendor webhooks: ``POST /webhooks/{integration_id}/{webhook_id}``.

The receiver answers fast and does no sync work itself:

1. refuse bodies over :data:`MAX_BODY_BYTES` (or the connector's own limit) with 413 before reading
   (Content-Length) or while reading;
2. verify the vendor's signature on the raw bytes in constant time, with the replay window where the scheme
   has a timestamp (``connectors.webhooks``; Xero, Intuit, BambooHR, Slack, Standard Webhooks for the rest);
   answer Xero's intent-to-receive and Slack's URL verification;
3. de-duplicate by delivery id (Redis ``SET NX`` for 8 days, then the ``inbound_events`` primary key);
4. queue :func:`process_inbound_event` on arq and reply 200.

The job turns the event into an incremental sync of the streams it names through the sync engine; the care
store compares source timestamps, so events arriving out of order never overwrite newer data.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import logging
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from arq import ArqRedis, Retry, create_pool
from arq.connections import RedisSettings
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.middleware import redis_for
from app.context import AppContext, get_context
from app.webhook_streams import changed_streams
from connectors.manifest import WebhookHandshake, WebhookSpec
from connectors.webhooks import handle_delivery
from storage import integrations as svc
from storage import webhooks as store
from storage.models import Integration, RunStatus, SyncRun

log = logging.getLogger("carehub.webhooks")
MAX_BODY_BYTES = 256 * 1024  # unless the connector's manifest allows more (webhooks.max_body_bytes)
LARGEST_BODY_BYTES = 16 * 1024 * 1024  # no manifest may allow more: refused before the receiver is looked up
DEDUPE_SECONDS = int(store.DEDUPE_WINDOW.total_seconds())
CONFIG_TTL_SECONDS = 5.0
SEEN_PREFIX = "carehub:wh:seen:"

STANDARD = WebhookSpec(header="webhook-signature", algorithm="hmac_sha256", encoding="base64",
                       signed="standard_webhooks", prefix="v1,", timestamp_header="webhook-timestamp",
                       replay_window_seconds=300, secret="webhook_secret")
SLACK = WebhookSpec(header="X-Slack-Signature", algorithm="hmac_sha256", encoding="hex", signed="slack_v0",
                    prefix="v0=", timestamp_header="X-Slack-Request-Timestamp", replay_window_seconds=300,
                    secret="signing_secret", handshake=WebhookHandshake(type="slack_url_verification"))
BUILTIN_SPECS = {"slack": SLACK}
ID_HEADERS = ("webhook-id", "x-github-delivery", "x-request-id", "x-slack-request-id")

# Vendor event categories -> our stream names (the sync engine reads these streams incrementally).
XERO_STREAMS = {"INVOICE": "invoices", "CONTACT": "contacts", "CREDITNOTE": "credit_notes",
                "PAYMENT": "payments", "EMPLOYEE": "employees"}


@dataclass(frozen=True)
class Receiver:
    """What one receiver URL needs to verify a delivery (cached a few seconds)."""

    integration_id: str
    webhook_id: str
    connector_id: str
    spec: WebhookSpec
    secret: str
    active: bool


_receivers: dict[tuple[str, str], tuple[float, Receiver | None]] = {}


@lru_cache(maxsize=1)
def _manifest_specs() -> dict[str, WebhookSpec]:
    try:
        from connectors.catalog import default_directory, load_catalog

        catalog = load_catalog(default_directory())
    except Exception:  # an unreadable catalog leaves every connector on Standard Webhooks
        log.exception("connector catalog unreadable; inbound webhooks use Standard Webhooks")
        return {}
    return {cid: m.webhooks for cid, m in catalog.manifests.items() if m.webhooks is not None}


def spec_for(connector_id: str) -> WebhookSpec:
    """The verification scheme of a connector: its manifest's, a built-in one, or Standard Webhooks."""
    return _manifest_specs().get(connector_id) or BUILTIN_SPECS.get(connector_id) or STANDARD


def _load_receiver(ctx: AppContext, integration_id: str, webhook_id: str) -> Receiver | None:
    with ctx.db.session() as session:
        try:
            hook = svc.get_webhook(session, webhook_id=webhook_id, integration_id=integration_id)
            integration: Integration = svc.get_integration(session, integration_id=integration_id)
        except svc.NotFound:
            return None
        if hook.direction != "inbound":
            return None
        return Receiver(integration_id=integration_id, webhook_id=webhook_id,
                        connector_id=integration.connector_id, spec=spec_for(integration.connector_id),
                        secret=svc.webhook_secret(ctx.box, hook), active=hook.active)


async def receiver(ctx: AppContext, integration_id: str, webhook_id: str) -> Receiver | None:
    """The receiver's verification settings, from a short cache (a deleted webhook stops within seconds).

    One load per key at a time: requests arriving while it loads wait for it instead of each querying."""
    key = (integration_id, webhook_id)
    now = time.monotonic()
    hit = _receivers.get(key)
    if hit is not None and now - hit[0] < CONFIG_TTL_SECONDS:
        return hit[1]
    loop = asyncio.get_running_loop()
    pending = _loading.get((loop, key))
    if pending is not None:
        return await asyncio.shield(pending)
    future: asyncio.Future[Receiver | None] = loop.create_future()
    _loading[(loop, key)] = future
    try:
        found = await asyncio.to_thread(_load_receiver, ctx, integration_id, webhook_id)
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: waiters re-raise it
        raise
    finally:
        _loading.pop((loop, key), None)
    if len(_receivers) > 10_000:
        _receivers.clear()
    _receivers[key] = (time.monotonic(), found)
    future.set_result(found)
    return found


_loading: dict[tuple[asyncio.AbstractEventLoop, tuple[str, str]], asyncio.Future[Receiver | None]] = {}


def forget_receivers() -> None:
    """Drop the receiver cache (tests, and after webhook changes in this process)."""
    _receivers.clear()


def delivery_id_for(rcv: Receiver, headers: Mapping[str, str], body: bytes, payload: Any) -> str:
    """The sender's delivery id (stable across its retries), else a hash of the signed body."""
    for name in ID_HEADERS:
        value = headers.get(name)
        if value:
            return f"{rcv.webhook_id}:{value.strip()[:160]}"
    if isinstance(payload, dict) and isinstance(payload.get("event_id"), str):  # Slack Events API
        return f"{rcv.webhook_id}:{payload['event_id'][:160]}"
    return f"{rcv.webhook_id}:sha256:{hashlib.sha256(body).hexdigest()}"


def _event_type(payload: Any) -> str:
    if isinstance(payload, dict):
        for key in ("type", "eventType", "event_type"):
            if isinstance(payload.get(key), str):
                return str(payload[key])
        events = payload.get("events")
        if isinstance(events, list) and events and isinstance(events[0], dict):
            return str(events[0].get("eventCategory", "") + "." + events[0].get("eventType", "")).strip(".")
    return ""


async def _read_capped(request: Request, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, ArqRedis]] = weakref.WeakKeyDictionary()


async def arq_for(url: str) -> ArqRedis:
    """An arq pool for ``url`` bound to the running loop (created once per loop)."""
    loop = asyncio.get_running_loop()
    per_loop = _pools.setdefault(loop, {})
    pool = per_loop.get(url)
    if pool is None:
        pool = per_loop[url] = await create_pool(RedisSettings.from_dsn(url))
    return pool


async def receive(request: Request) -> Response:
    """Verify, de-duplicate, queue, acknowledge."""
    ctx = get_context()
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > LARGEST_BODY_BYTES):
        return Response(status_code=413)
    integration_id = request.path_params["integration_id"]
    webhook_id = request.path_params["webhook_id"]
    rcv = await receiver(ctx, integration_id, webhook_id)
    if rcv is None:
        return Response(status_code=404)
    if not rcv.active:
        return Response(status_code=410)
    limit = rcv.spec.max_body_bytes or MAX_BODY_BYTES
    if length is not None and int(length) > limit:
        return Response(status_code=413)
    try:
        body = await _read_capped(request, limit)
    except ClientDisconnect:
        return Response(status_code=400)
    if body is None:
        return Response(status_code=413)
    headers = {k.lower(): v for k, v in request.headers.items()}
    result = handle_delivery(rcv.spec, rcv.secret, headers, body)
    if not result.verified:
        return Response(status_code=401)
    if result.status != 200:
        return Response(status_code=result.status)
    if result.body:  # a handshake answer (Slack URL verification): nothing to process
        return Response(result.body, status_code=200, media_type="application/json")
    if not result.events and rcv.spec.handshake is not None and rcv.spec.handshake.type == "xero_intent_to_receive":
        return Response(status_code=200)  # intent to receive, or an empty batch: nothing to process
    delivery_id = delivery_id_for(rcv, headers, body, result.payload)
    payload = result.payload if isinstance(result.payload, dict) else {"body": result.payload}
    await _batcher(ctx).submit({"delivery_id": delivery_id, "integration_id": rcv.integration_id,
                                "event_type": _event_type(payload), "payload": payload})
    return Response(status_code=200)


class Batcher:
    """Group commit for accepted deliveries: whatever arrived while the previous batch was being written goes
    in the next one. Per batch: one Redis pipeline of ``SET NX`` (8-day de-dup keys), one database
    transaction (the ``inbound_events`` primary key de-duplicates durably), then the arq jobs. Each request
    waits for its batch, so a 200 means the event is stored; its job is queued right after (and the sweeper
    queues any job lost on the way)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.enqueues: set[asyncio.Task[None]] = set()

    async def submit(self, event: dict[str, Any]) -> None:
        """Queue one verified event and wait until its batch is stored and queued."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((event, future))
        self.wake.set()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())
        await future

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            if not batch:
                continue
            try:
                await self._write([e for e, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def _write(self, events: list[dict[str, Any]]) -> None:
        fresh = await _first_sightings(self.ctx, [str(e["delivery_id"]) for e in events])
        todo = [e for e in events if e["delivery_id"] in fresh]
        if not todo:
            return
        claimed = await asyncio.to_thread(_claim_many, self.ctx, todo)
        if claimed:  # stored durably: acknowledge now, queue the jobs beside the next batch
            task = asyncio.create_task(self._enqueue(sorted(claimed)))
            self.enqueues.add(task)
            task.add_done_callback(self.enqueues.discard)

    async def _enqueue(self, delivery_ids: list[str]) -> None:
        try:
            pool = await arq_for(self.ctx.redis_url)
            await asyncio.gather(*[pool.enqueue_job("process_inbound_event", d, _job_id=f"inbound:{d}")
                                   for d in delivery_ids])
        except Exception:  # the events are stored: the sweeper queues them again
            log.warning("could not queue %d inbound events; the sweeper will", len(delivery_ids), exc_info=True)

    async def drain(self) -> None:
        """Wait until every queued job of acknowledged events is on the arq queue (tests, shutdown)."""
        while self.enqueues:
            await asyncio.gather(*list(self.enqueues))


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batcher] = weakref.WeakKeyDictionary()


async def drain_queue() -> None:
    """Wait for the enqueues of this loop's acknowledged events (tests and benchmarks)."""
    batcher = _batchers.get(asyncio.get_running_loop())
    if batcher is not None:
        await batcher.drain()


def _batcher(ctx: AppContext) -> Batcher:
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None or batcher.ctx is not ctx:
        batcher = _batchers[loop] = Batcher(ctx)
    return batcher


async def _first_sightings(ctx: AppContext, delivery_ids: list[str]) -> set[str]:
    """The ids not seen in the last 8 days (Redis SET NX); all of them when Redis is down (the database's
    primary key still de-duplicates)."""
    try:
        async with redis_for(ctx.redis_url).pipeline(transaction=False) as pipe:
            for delivery_id in delivery_ids:
                pipe.set(SEEN_PREFIX + delivery_id, "1", nx=True, ex=DEDUPE_SECONDS)
            answers = await pipe.execute()
    except Exception:
        log.warning("webhook de-duplication cache unavailable", exc_info=True)
        return set(delivery_ids)
    seen: set[str] = set()
    fresh: set[str] = set()
    for delivery_id, ok in zip(delivery_ids, answers, strict=True):
        if ok and delivery_id not in seen:
            fresh.add(delivery_id)
        seen.add(delivery_id)
    return fresh


def _claim_many(ctx: AppContext, events: list[dict[str, Any]]) -> set[str]:
    with ctx.db.session() as session:
        return store.claim_inbound_many(session, events=events)


webhooks_app = Starlette(routes=[Route("/{integration_id}/{webhook_id}", receive, methods=["POST"])])


# ------------------------------------------------------------------------------------------ processing


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000 if value > 1e12 else value, UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


SAMSARA_OBJECTS = {"vehicle": "vehicles"}  # the object an event carries -> the stream that reads it


def changed_records(connector_id: str, payload: Mapping[str, Any]) -> dict[str, dict[str, datetime | None]]:
    """``{stream: {record id: event time}}`` named by a vendor event (Xero, Intuit, BambooHR, Samsara, generic)."""
    out: dict[str, dict[str, datetime | None]] = {}

    def add(stream: str, rid: Any, when: Any) -> None:
        if stream and rid not in (None, ""):
            bucket = out.setdefault(stream, {})
            t = _parse_time(when)
            prev = bucket.get(str(rid))
            bucket[str(rid)] = max(t, prev) if t and prev else (t or prev)

    for ev in payload.get("events") or []:  # Xero
        if isinstance(ev, dict):
            category = str(ev.get("eventCategory", "")).upper()
            add(XERO_STREAMS.get(category, category.lower() + "s"), ev.get("resourceId"), ev.get("eventDateUtc"))
    for note in payload.get("eventNotifications") or []:  # Intuit
        entities = ((note or {}).get("dataChangeEvent") or {}).get("entities") or []
        for ent in entities:
            if isinstance(ent, dict):
                add(str(ent.get("name", "")).lower() + "s", ent.get("id"), ent.get("lastUpdated"))
    for emp in payload.get("employees") or []:  # BambooHR
        if isinstance(emp, dict):
            add("employees", emp.get("id"), emp.get("timestamp"))
    data = payload.get("data")
    if connector_id == "samsara" and isinstance(data, dict):  # {"eventType", "eventTime", "data": {"vehicle": {..}}}
        for key, stream in SAMSARA_OBJECTS.items():
            obj = data.get(key)
            if isinstance(obj, dict):
                add(stream, obj.get("id"), payload.get("eventTime"))
    if isinstance(data, dict) and not out:  # Standard Webhooks / generic: {"type", "data": {"id", "stream"}}
        add(str(data.get("stream") or data.get("object") or ""), data.get("id"),
            data.get("updatedAt") or payload.get("timestamp"))
    return out


async def process_inbound_event(ctx: dict[str, Any], delivery_id: str) -> str:
    """arq job: turn one stored inbound event into an incremental sync of the streams it names (once)."""
    app: AppContext = ctx.get("app") or get_context()
    event = await asyncio.to_thread(_load_event, app, delivery_id)
    if event is None:
        return "missing"
    if event["processed"]:
        return "duplicate"
    changes = changed_records(event["connector_id"], event["payload"])
    changes.update(changed_streams(event["connector_id"], event["payload"]))  # webhook-fed streams
    run_id = ""
    if changes:
        params = {"streams": sorted(changes), "webhook": {"deliveryId": delivery_id, "records": {
            s: {rid: (t.isoformat() if t else None) for rid, t in recs.items()} for s, recs in changes.items()}}}
        run_id = await _enqueue_sync(app, event["integration_id"], params, ctx.get("redis"))
    done = await asyncio.to_thread(_mark_processed, app, delivery_id)
    return f"queued {run_id}" if done and run_id else ("processed" if done else "duplicate")


def _load_event(app: AppContext, delivery_id: str) -> dict[str, Any] | None:
    with app.db.session() as session:
        row = store.get_inbound(session, delivery_id=delivery_id)
        if row is None:
            return None
        integration = session.get(Integration, row.integration_id)
        return {"processed": row.processed, "payload": dict(row.payload), "integration_id": row.integration_id,
                "connector_id": integration.connector_id if integration else ""}


def _mark_processed(app: AppContext, delivery_id: str) -> bool:
    with app.db.session() as session:
        return store.mark_inbound_processed(session, delivery_id=delivery_id)


async def _enqueue_sync(app: AppContext, integration_id: str, params: dict[str, Any], redis: Any) -> str:
    enqueue = sync_engine_enqueue()
    if enqueue is not None:
        pool = redis if redis is not None else await arq_for(app.redis_url)
        run_id = str(await enqueue(app.db, pool, integration_id, trigger="webhook", params=params,
                                   requested_by="webhook"))
        if not await asyncio.to_thread(_run_covers, app, run_id, params):
            # Another run is already active and may have read past these changes: try again after it.
            raise Retry(defer=15)
        return run_id
    from app.api.runs import start_run

    run = await start_run(app, integration_id=integration_id, trigger="webhook", params=params, actor="webhook")
    return run.id


def sync_engine_enqueue() -> Any:
    """The sync engine's ``enqueue_run(db, redis, integration_id, trigger, params, requested_by)``, if installed."""
    try:
        module = importlib.import_module("app.sync_jobs")
    except ImportError:
        return None
    return getattr(module, "enqueue_run", None)


def _run_covers(app: AppContext, run_id: str, params: dict[str, Any]) -> bool:
    """True when the run will read our changes: it is ours, or still queued and reading our streams."""
    with app.db.session() as session:
        run = session.get(SyncRun, run_id)
        if run is None:
            return False
        mine = (run.params.get("webhook") or {}).get("deliveryId") == params["webhook"]["deliveryId"]
        if mine:
            return True
        streams = set(run.params.get("streams") or [])
        return run.status == RunStatus.QUEUED.value and (not streams or set(params["streams"]) <= streams)


async def sweep_inbound(ctx: dict[str, Any]) -> int:
    """arq cron: queue again events whose job was lost (Redis emptied, enqueue failed); forget processed
    events older than the de-duplication window."""
    app: AppContext = ctx.get("app") or get_context()

    def pending() -> list[str]:
        with app.db.session() as session:
            store.purge_inbound(session)  # processed events past the 8-day de-duplication window
            return [e.delivery_id for e in store.unprocessed_inbound(session)]

    ids = await asyncio.to_thread(pending)
    redis: ArqRedis = ctx["redis"]
    for delivery_id in ids:
        await redis.enqueue_job("process_inbound_event", delivery_id, _job_id=f"inbound:{delivery_id}")
    return len(ids)


def payload_json(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes of a payload (used by tests and the bench to build deliveries)."""
    return json.dumps(payload, separators=(",", ":")).encode()
