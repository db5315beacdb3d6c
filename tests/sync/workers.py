"""Real worker processes for crash tests: ``python -m app worker`` with a short lease, killed at will."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


LIVE: list[WorkerProc] = []


def kill_all() -> None:
    """Kill every worker this test process started and has not stopped (teardown safety net)."""
    while LIVE:
        LIVE.pop().kill()


class WorkerProc:
    """One ``carehub worker`` subprocess."""

    def __init__(self, redis_url: str, *, fault: str = "", lease: float = 2.0, log: Path | None = None) -> None:
        env = dict(os.environ)
        # Every page through the worker's store writer process: the crashes below then land in the child,
        # which takes the worker down with it, as a crash of the worker's own thread would.
        env.update(CAREHUB_REDIS_URL=redis_url, CAREHUB_SYNC_LEASE_SECONDS=str(lease), PYTHONUNBUFFERED="1",
                   CAREHUB_STORE_WRITER_MIN_PAGE="1")
        if fault:
            env["CAREHUB_SYNC_FAULT"] = fault
        else:
            env.pop("CAREHUB_SYNC_FAULT", None)
        self.log = log
        out: Any = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "app", "worker"], cwd=ROOT, env=env,
                                     stdout=out, stderr=subprocess.STDOUT)
        LIVE.append(self)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def term(self) -> float:
        """SIGTERM; returns how long the worker took to exit."""
        t0 = time.monotonic()
        os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait(15)
        return time.monotonic() - t0

    def wait_exit(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
