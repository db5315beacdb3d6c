"""`carehub run` on a fresh data folder: embedded Redis and SQLite, login page within 60 s, clean Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREHUB_") and k != "PYTEST_CURRENT_TEST"}
    env.update(CAREHUB_DATA_DIR=str(data_dir), CAREHUB_PORT=str(port))
    return env


def test_run_starts_everything_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "app", "run"], env=fresh_env(tmp_path / "data", port),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    output: list[str] = []
    try:
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code
                if status == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert status == 200, "login page not served within 60 seconds"
        page = httpx.get(f"http://127.0.0.1:{port}/login").text
        assert "Sign in" in page
        assert (tmp_path / "data" / "carehub.db").exists()
        assert (tmp_path / "data" / "redis" / "redis.sock").exists()
        assert (tmp_path / "data" / "redis" / "appendonly.aof").exists() or \
            (tmp_path / "data" / "redis" / "appendonlydir").exists()
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3  # redis-server, web, worker
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=40)
        output.append(out)
    text = "".join(output)
    assert re.search(r"admin login: admin@carehub\.local", text)
    assert re.search(r"password:\s+\S{12,}", text)
    assert "CareHub stopped." in text
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
