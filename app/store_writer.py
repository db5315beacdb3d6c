"""A writer process for large inbound pages on SQLite.

On SQLite the care store's work (building rows, SQLite itself) runs inside the worker process. While a
sync reads ahead, the thread storing page *n* and the event loop mapping page *n + 1* queue for the same
GIL: measured, the store costs 93 us a record alone and 160 us while mapping runs beside it. Large pages
therefore go to one long-lived child process with its own interpreter and its own connection; the page,
its checkpoint and the run's counts still commit in one transaction there, so every crash promise holds.

PostgreSQL does its work in the server already: the writer is for SQLite only. Small pages stay in a
thread (pickling them costs more than it saves).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from engine.sync.ownership import OwnershipRule
from engine.sync.ports import MappedItem, PageResult
from storage.care_store import WRITER_CHILD_ENV

log = logging.getLogger(__name__)

MIN_PAGE_ENV = "CAREHUB_STORE_WRITER_MIN_PAGE"
DEFAULT_MIN_PAGE = 250
RESTART_BACKOFF = 60.0  # seconds before a child that failed to start is tried again

_db: Any = None  # the child's Database


def _watch_parent(parent: int) -> None:
    # A worker killed outright leaves its writer without a caller: leave with it.
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def _child_init(db_url: str, parent: int) -> None:
    global _db
    os.environ[WRITER_CHILD_ENV] = "1"  # a seeded crash in the child takes the worker with it
    from storage.db import Database

    _db = Database(db_url, foreign_keys=False)  # CareStore.apply_inbound checks each page's parents itself
    gc.collect()
    gc.freeze()  # the child's modules live as long as it does: keep them out of every collection
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watch").start()


def _child_apply(integration_id: str, run_id: str, resolve_on_success: bool, stream: str, care_type: str,
                 rule: OwnershipRule, items: list[MappedItem], checkpoint: dict[str, Any] | None,
                 change_budget: int | None) -> PageResult:
    from storage.care_store import CareStore

    store = CareStore(_db, integration_id, run_id, resolve_on_success=resolve_on_success)
    return store.apply_inbound(stream, care_type, rule, items, checkpoint, change_budget)


def _child_ready() -> int:
    return os.getpid()


class StoreWriter:
    """One child process applying inbound pages for every run of this worker (SQLite only)."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.min_page = int(os.environ.get(MIN_PAGE_ENV, DEFAULT_MIN_PAGE))
        self._pool: ProcessPoolExecutor | None = None
        self._boot: Future[int] | None = None
        self._failed_at: float | None = None  # when the child last failed to start
        self._lock = threading.Lock()

    def wanted(self, items: int) -> bool:
        """Whether a page of ``items`` records should go to the writer."""
        return items >= self.min_page

    def _start(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                ctx = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(1, mp_context=ctx, initializer=_child_init,
                                                 initargs=(self.db_url, os.getpid()))
            return self._pool

    def start(self) -> None:
        """Start the child now (a worker's startup), so the first large page finds it ready."""
        pool = self._start()
        with self._lock:
            if self._boot is None:
                self._boot = pool.submit(_child_ready)

    async def ready(self) -> bool:
        """Start the child if need be; True once it answers (the first pages go to a thread meanwhile).

        A child that failed to start is not tried again for ``RESTART_BACKOFF`` seconds: pages go to the
        thread meanwhile rather than each paying for a new process that fails the same way.
        """
        if self._boot is None:
            if self._failed_at is not None and time.monotonic() - self._failed_at < RESTART_BACKOFF:
                return False
            self.start()
        boot = self._boot
        if boot is None or not boot.done():
            return False
        try:
            boot.result()
        except BrokenProcessPool:
            log.warning("the store writer process did not start; pages are stored in the worker for %.0f s",
                        RESTART_BACKOFF)
            self._failed_at = time.monotonic()
            self.reset()
            return False
        self._failed_at = None
        return True

    async def apply_inbound(self, integration_id: str, run_id: str, resolve_on_success: bool, stream: str,
                            care_type: str, rule: OwnershipRule, items: list[MappedItem],
                            checkpoint: dict[str, Any] | None, change_budget: int | None) -> PageResult:
        """Apply one page in the child; a dead child raises ``BrokenProcessPool`` (the run retries)."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._start(), _child_apply, integration_id, run_id,
                                              resolve_on_success, stream, care_type, rule, items, checkpoint,
                                              change_budget)
        except BrokenProcessPool:
            self.reset()
            raise

    def reset(self) -> None:
        """Forget a broken child; the next page starts a new one."""
        self._drop(wait=False)

    def close(self) -> None:
        """Stop the child (worker shutdown)."""
        self._drop(wait=True)

    def _drop(self, *, wait: bool) -> None:
        with self._lock:
            pool, self._pool, self._boot = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)


_WRITERS: dict[str, StoreWriter] = {}


def writer_for(db_url: str) -> StoreWriter | None:
    """The process's writer for ``db_url`` (None on PostgreSQL or when the minimum page is 0)."""
    if not db_url.startswith("sqlite") or ":memory:" in db_url:
        return None
    if int(os.environ.get(MIN_PAGE_ENV, DEFAULT_MIN_PAGE)) <= 0:
        return None
    writer = _WRITERS.get(db_url)
    if writer is None:
        close_writers()  # one child per worker: a process that moved to another database drops the old one
        writer = _WRITERS[db_url] = StoreWriter(db_url)
    return writer


def start_writer(db_url: str) -> None:
    """Start this process's writer for ``db_url`` ahead of the first large page (no-op where none is used)."""
    writer = writer_for(db_url)
    if writer is not None:
        writer.start()


def close_writers() -> None:
    """Stop every writer of this process."""
    for writer in list(_WRITERS.values()):
        writer.close()
    _WRITERS.clear()
