"""The workers own the HL7 v2 MLLP listeners of active hl7_lab integrations (app/mllp_listeners.py).

Real ``python -m app worker`` processes: a lab engine sends ORU^R01 messages over a socket, gets ``AA`` ACKs,
and a sync run on the worker stores exactly the results; deactivating the integration closes the port; with two
workers only the lock holder binds the port, and the other takes over when it stops."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from arq.connections import ArqRedis

from app.mllp_listeners import LOCK_PREFIX, STATUS_KEY
from app.sync_jobs import enqueue_run
from connectors.hl7.mllp import ack_code, send_message
from storage import runs as runrepo
from storage.models import Integration, MappingDesign, SyncConfiguration

from .conftest import TEMPLATES
from .worker_harness import count_care

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path(__file__).resolve().parent / "samples"
POLL = 0.3


def _sample(name: str) -> str:
    with open(SAMPLES / name, newline="") as fh:
        return fh.read()


def _messages() -> list[str]:
    """Three ORU^R01 messages: Clinisys (7 OBX), Sunquest (5 OBX) and a second Clinisys report (7 OBX)."""
    clinisys = _sample("clinisys_oru_r01.hl7")
    second = clinisys.replace("WP20250301-0001", "WP20250301-0002")
    assert second != clinisys
    return [clinisys, _sample("sunquest_oru_r01.hl7"), second]


def _obx(message: str) -> int:
    return sum(1 for seg in message.replace("\n", "\r").split("\r") if seg.startswith("OBX|"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Worker:
    """One ``python -m app worker`` subprocess with a short MLLP poll."""

    def __init__(self, redis_url: str, log: Path) -> None:
        env = dict(os.environ, CAREHUB_REDIS_URL=redis_url, CAREHUB_MLLP_POLL_SECONDS=str(POLL),
                   PYTHONUNBUFFERED="1")
        env.pop("CAREHUB_SYNC_FAULT", None)
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "app", "worker"], cwd=ROOT, env=env,
                                     stdout=self._out, stderr=subprocess.STDOUT)
        self.worker_id = f"{socket.gethostname()}:{self.proc.pid}"

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown runs the worker's shutdown hook), SIGKILL if it hangs."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[Callable[[], Worker]]:
    """Start workers on demand; every one is stopped at the end of the test."""
    started: list[Worker] = []

    def start() -> Worker:
        w = Worker(redis_url, tmp_path / f"worker{len(started)}.log")
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def _integration(ctx: Any, port: int, spool: Path) -> str:
    design = yaml.safe_load((TEMPLATES.parent / "mappings" / "hl7_lab" / "Observation.yaml").read_text())
    with ctx.db.session() as s:
        integ = Integration(name="Pathology results (WinPath over MLLP)", connector_id="hl7_lab", status="active",
                            operation_mode="external_primary",
                            connection_details={"listen_host": "127.0.0.1", "listen_port": str(port),
                                                "spool_dir": str(spool)},
                            credentials_encrypted=ctx.box.encrypt({}), error_handling={})
        s.add(integ)
        s.flush()
        s.add(SyncConfiguration(integration_id=integ.id, sync_direction="inbound", batch_size=50,
                                retry_policy={"base_seconds": 0.05, "cap_seconds": 0.2, "max_attempts": 3,
                                              "call_deadline_seconds": 10},
                                error_threshold=1000, max_change_share=1.0, sync_frequency={"kind": "manual"},
                                streams=[{"stream": "results", "care_type": "Observation"}]))
        s.add(MappingDesign(integration_id=integ.id, stream="results", care_type="Observation", design=design))
        return str(integ.id)


def _set_status(ctx: Any, integration_id: str, status: str) -> None:
    with ctx.db.session() as s:
        integ = s.get(Integration, integration_id)
        assert integ is not None
        integ.status = status
        s.add(integ)


async def _send(port: int, message: str, *, timeout: float = 40.0) -> str:
    """Send once the port listens (the worker is still starting up); the ACK's text."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await send_message("127.0.0.1", port, message, timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.1)


async def test_worker_listens_acks_spools_and_the_sync_stores_every_result(
        ctx: Any, arq: ArqRedis, redis_url: str, tmp_path: Path, workers: Any) -> None:
    port = _free_port()
    spool = tmp_path / "spool"
    integ = _integration(ctx, port, spool)
    worker = workers()
    messages = _messages()
    acks = [await _send(port, m) for m in messages]
    assert [ack_code(a) for a in acks] == ["AA", "AA", "AA"], acks
    assert len(list(spool.glob("*.hl7"))) == 3  # spooled before the ACK went back
    expected = sum(_obx(m) for m in messages)
    assert expected == 19

    run_id = await enqueue_run(ctx.db, arq, integ, "manual", requested_by="test")
    await _until(lambda: runrepo.get_run(ctx.db, run_id).status in ("succeeded", "failed", "paused"), 60,
                 "the sync run finished")
    run = runrepo.get_run(ctx.db, run_id)
    assert run.status == "succeeded", run.error
    assert run.counts["read"] == expected and run.counts["created"] == expected
    assert count_care(ctx, "Observation") == expected

    # A second run reads nothing new and moves the stored messages out of the spool.
    again = await enqueue_run(ctx.db, arq, integ, "manual", requested_by="test")
    await _until(lambda: runrepo.get_run(ctx.db, again).status in ("succeeded", "failed", "paused"), 60,
                 "the second run finished")
    assert runrepo.get_run(ctx.db, again).counts["read"] == 0
    assert count_care(ctx, "Observation") == expected
    assert list(spool.glob("*.hl7")) == [] and len(list((spool / "done").glob("*.hl7"))) == 3

    # Deactivated: the worker closes the port and releases the lock within a poll or two.
    _set_status(ctx, integ, "paused")
    await _until(lambda: not _listening(port), 10, "the port closed")
    r = redis.Redis.from_url(redis_url)
    try:
        assert r.get(LOCK_PREFIX + integ) is None and r.hget(STATUS_KEY, integ) is None
        # Activated again: it listens again.
        _set_status(ctx, integ, "active")
        assert ack_code(await _send(port, _sample("sunquest_oru_r01.hl7"), timeout=15)) == "AA"
        assert r.get(LOCK_PREFIX + integ) == worker.worker_id.encode()
    finally:
        r.close()


async def test_two_workers_never_bind_the_same_port_and_another_takes_over(
        ctx: Any, redis_url: str, tmp_path: Path, workers: Any) -> None:
    port = _free_port()
    integ = _integration(ctx, port, tmp_path / "spool")
    first = workers()
    assert ack_code(await _send(port, _sample("clinisys_oru_r01.hl7"))) == "AA"
    r = redis.Redis.from_url(redis_url)

    def owner() -> bytes | None:
        value = r.get(LOCK_PREFIX + integ)
        return value if isinstance(value, bytes) else None

    try:
        assert owner() == first.worker_id.encode()
        others = [workers(), workers()]
        # Both are up and polling (heartbeats in Redis) for several polls, yet the lock, the listener and the port
        # stay with the first, and neither tried to bind.
        for w in others:
            await _until(lambda w=w: r.zscore("carehub:workers", w.worker_id) is not None, 60, "a worker ran")
        await asyncio.sleep(POLL * 8)
        assert owner() == first.worker_id.encode()
        assert all(w.worker_id.encode() not in (r.hget(STATUS_KEY, integ) or b"") for w in others)
        assert ack_code(await _send(port, _sample("sunquest_oru_r01.hl7"))) == "AA"

        first.stop()  # graceful: port and lock released; one of the others binds at its next poll
        await _until(lambda: owner() in {w.worker_id.encode() for w in others}, 15, "another worker took the lock")
        taker = next(w for w in others if w.worker_id.encode() == owner())
        spare = next(w for w in others if w is not taker)
        assert ack_code(await _send(port, _sample("sunquest_oru_r01.hl7"), timeout=15)) == "AA"
        assert taker.worker_id.encode() in (r.hget(STATUS_KEY, integ) or b"")

        # Killed outright, the taker cannot release its lock: the spare binds once the lock expires.
        taker.proc.kill()
        taker.proc.wait(10)
        await _until(lambda: owner() == spare.worker_id.encode(), 20, "the spare took the expired lock")
        assert ack_code(await _send(port, _sample("clinisys_oru_r01.hl7"), timeout=15)) == "AA"
        for w in (first, *others):
            assert b"cannot listen" not in w.log.read_bytes()  # no worker ever found the port taken
    finally:
        r.close()


async def test_a_port_taken_by_another_program_is_retried_until_free(
        ctx: Any, redis_url: str, tmp_path: Path, workers: Any) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = int(blocker.getsockname()[1])
    integ = _integration(ctx, port, tmp_path / "spool")
    worker = workers()
    r = redis.Redis.from_url(redis_url)
    try:
        await _until(lambda: b"cannot listen" in worker.log.read_bytes(), 40, "the worker reported the busy port")
        assert r.get(LOCK_PREFIX + integ) in (None, worker.worker_id.encode())  # released after each failed bind
        blocker.close()
        assert ack_code(await _send(port, _sample("sunquest_oru_r01.hl7"), timeout=15)) == "AA"
        assert r.get(LOCK_PREFIX + integ) == worker.worker_id.encode()
        assert len(list((tmp_path / "spool").glob("*.hl7"))) == 1
    finally:
        blocker.close()
        r.close()
