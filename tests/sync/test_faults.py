"""Vendor faults over loopback: 5xx storm, 429 storms (both Retry-After forms), a long Retry-After that
reschedules the job, a hung vendor, a slow drip, a revoked token and the circuit breaker."""

from __future__ import annotations

import threading
import time
from email.utils import formatdate

from app.sync_jobs import enqueue_run
from storage import runs as runrepo

from .conftest import drain
from .harness import FAST_CONNECTOR, care_count, linked, make_integration, vendor_contacts, xero_sandbox

N = 300  # three pages


def exact(db, integ, sb) -> None:
    links = linked(db, integ)
    assert set(links) == {c["ContactID"] for c in vendor_contacts(sb)}
    assert care_count(db) == len(links) == N


async def test_5xx_storm_every_record_arrives(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=N, seed=3) as sb:
        sb.faults(error_rate=0.5, error_status=503, retry_after=None)
        integ = make_integration(db, ctx.box, sb, error_handling=FAST_CONNECTOR)
        run_id = await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        run = runrepo.get_run(db, run_id)
        assert run.status == "succeeded", run.error
        assert sb.state.failed > 0 and run.counts["created"] == N
        exact(db, integ, sb)


async def test_429_storm_retry_after_seconds(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=N) as sb:
        sb.faults(storm_429=2, retry_after="1")
        integ = make_integration(db, ctx.box, sb)
        t0 = time.monotonic()
        run_id = await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        elapsed = time.monotonic() - t0
        assert runrepo.get_run(db, run_id).status == "succeeded"
        assert sb.state.throttled == 2
        assert 2.0 <= elapsed < 2 * 1.2 + 1 + 2  # each wait >= Retry-After, <= 1.2 x + 1 s (plus the run itself)
        exact(db, integ, sb)


async def test_429_storm_retry_after_http_date(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=N) as sb:
        sb.faults(storm_429=1, retry_after=formatdate(time.time() + 2, usegmt=True))
        integ = make_integration(db, ctx.box, sb)
        t0 = time.monotonic()
        run_id = await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        elapsed = time.monotonic() - t0
        assert runrepo.get_run(db, run_id).status == "succeeded"
        assert sb.state.throttled == 1 and elapsed >= 1.0  # HTTP dates have 1 s resolution
        exact(db, integ, sb)


async def test_long_retry_after_reschedules_instead_of_sleeping(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=N) as sb:
        sb.faults(storm_429=5, retry_after="600")
        integ = make_integration(db, ctx.box, sb)
        t0 = time.time()
        run_id = await enqueue_run(db, arq, integ, "manual")
        # Run just the first dispatch: a burst worker would wait out the deferral.
        from arq.connections import RedisSettings, create_pool
        from arq.worker import Worker, func

        from app.sync_jobs import run_sync

        pool = await create_pool(RedisSettings.from_dsn(redis_url))

        async def startup(c):
            c["app"] = ctx
            c["worker_id"] = "w1"

        w = Worker(functions=[func(run_sync, name="run_sync")], redis_pool=pool, burst=True, poll_delay=0.01,
                   handle_signals=False, on_startup=startup, max_burst_jobs=1, keep_result=0)
        await w.async_run()
        await w.close()
        assert time.time() - t0 < 10
        run = runrepo.get_run(db, run_id)
        assert run.status == "waiting"
        ev = [e for e in runrepo.events(db, run_id) if e.kind == "retry_scheduled"][-1]
        assert 590 <= ev.data["delay"] <= 610 and ev.data["at"]
        queued = await arq.zrange("arq:queue", 0, -1, withscores=True)
        assert len(queued) == 1 and queued[0][1] / 1000 >= t0 + 590  # deferred in the queue, not sleeping


async def test_hung_vendor_call_aborts_at_deadline(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=N) as sb:
        sb.faults(hang_rate=1.0, hang_seconds=30)
        integ = make_integration(db, ctx.box, sb, retry_policy={"call_deadline_seconds": 2, "base_seconds": 0.05,
                                                                "cap_seconds": 0.1, "max_attempts": 20})
        threading.Timer(3.0, sb.clear_faults).start()
        t0 = time.monotonic()
        run_id = await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        elapsed = time.monotonic() - t0
        run = runrepo.get_run(db, run_id)
        assert run.status == "succeeded", run.error
        retries = [e for e in runrepo.events(db, run_id) if e.kind == "retry_scheduled"]
        assert retries and elapsed < 10
        exact(db, integ, sb)


async def test_slow_drip_aborts_at_deadline(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=N) as sb:
        sb.faults(slow_drip_ms=400)
        integ = make_integration(db, ctx.box, sb, retry_policy={"call_deadline_seconds": 2, "base_seconds": 0.05,
                                                                "cap_seconds": 0.1, "max_attempts": 20})
        threading.Timer(2.5, sb.clear_faults).start()
        t0 = time.monotonic()
        run_id = await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        assert runrepo.get_run(db, run_id).status == "succeeded"
        assert time.monotonic() - t0 < 10
        assert [e for e in runrepo.events(db, run_id) if e.kind == "retry_scheduled"]
        exact(db, integ, sb)


async def test_token_revoked_mid_run_fails_with_reconnect_message(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=N) as sb:
        sb.faults(latency_ms=300)
        integ = make_integration(db, ctx.box, sb)

        def revoke_after_first_page() -> None:
            t0 = time.monotonic()
            while not linked(db, integ) and time.monotonic() - t0 < 30:
                time.sleep(0.02)
            sb.faults(revoke_tokens=True)

        threading.Thread(target=revoke_after_first_page, daemon=True).start()
        run_id = await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        run = runrepo.get_run(db, run_id)
        assert run.status == "failed" and "reconnect" in run.error
        errs = runrepo.run_errors(db, run_id)
        assert [e.error_type for e in errs] == ["auth"]
        assert 0 < len(linked(db, integ)) < N  # the pages before the revocation are kept
        assert sb.state.token_grants.get("refresh_token") == 1  # exactly one refresh attempt


async def test_circuit_breaker_opens_and_stops_calls(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=N) as sb:
        sb.faults(storm_5xx=1000, retry_after=None)
        integ = make_integration(db, ctx.box, sb, error_handling={"connector": {"max_attempts": 1}},
                                 retry_policy={"base_seconds": 0.01, "cap_seconds": 0.02, "max_attempts": 50,
                                               "breaker_threshold": 5, "breaker_reset_seconds": 60})
        from arq.connections import RedisSettings, create_pool
        from arq.worker import Worker, func

        from app.sync_jobs import run_sync

        pool = await create_pool(RedisSettings.from_dsn(redis_url))

        async def startup(c):
            c["app"] = ctx
            c["worker_id"] = "w1"

        w = Worker(functions=[func(run_sync, name="run_sync")], redis_pool=pool, burst=True, poll_delay=0.01,
                   handle_signals=False, on_startup=startup, max_burst_jobs=1, keep_result=0)
        run_id = await enqueue_run(db, arq, integ, "manual")
        await w.async_run()
        await w.close()
        run = runrepo.get_run(db, run_id)
        assert run.status == "waiting" and "circuit breaker open" in run.error
        assert sb.state.calls == 5  # five failures opened it; none reached the vendor while open
