"""A time limit for user-supplied templates and expressions, without a thread per call.

One daemon thread watches armed deadlines. When a deadline passes while its call is still
running, the watchdog raises :class:`Overrun` inside the calling thread (CPython's
``PyThreadState_SetAsyncExc``), which interrupts pure-Python loops in jinja2 and jmespath.
Arming is a dict write, so the per-record cost stays small.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
import time
from collections.abc import Callable
from typing import TypeVar

R = TypeVar("R")

_TICK = 0.02


class Overrun(BaseException):
    """Raised asynchronously in a thread whose armed call ran past its deadline."""


class _Watchdog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[int, tuple[int, float]] = {}  # token -> (thread id, deadline)
        self._fired: set[int] = set()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="carehub-mapping-watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(_TICK)
            now = time.monotonic()
            with self._lock:
                for token, (tid, deadline) in list(self._armed.items()):
                    if now >= deadline and token not in self._fired:
                        self._fired.add(token)
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), ctypes.py_object(Overrun))

    def run(self, seconds: float, fn: Callable[[], R]) -> R:
        """Call ``fn``; raise :class:`TimeoutError` if it has not returned within ``seconds``."""
        token = next(self._ids)
        fired = False
        try:
            with self._lock:
                self._ensure_thread()
                self._armed[token] = (threading.get_ident(), time.monotonic() + seconds)
            try:
                return fn()
            finally:
                with self._lock:
                    self._armed.pop(token, None)
                    fired = token in self._fired
                    self._fired.discard(token)
                if fired:
                    # The async exception is pending or just delivered: give it a place to land here.
                    for _ in range(1000):
                        pass
        except Overrun:
            fired = True
        if fired:
            raise TimeoutError(f"took longer than {seconds:g} s")
        raise AssertionError("unreachable")  # pragma: no cover


_WATCHDOG = _Watchdog()


def run_with_time_limit(seconds: float, fn: Callable[[], R]) -> R:
    """Run ``fn`` in this thread; interrupt it with :class:`TimeoutError` after ``seconds``."""
    return _WATCHDOG.run(seconds, fn)
