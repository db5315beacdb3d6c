"""Schemathesis v4 against the API over a loopback server: every operation, >= 100 examples each, examples,
coverage, fuzzing and stateful phases, all checks plus a canary-secret check. 0 failures allowed."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from api_helpers import CANARY
from starlette.applications import Starlette

from storage import integrations as svc
from storage.users import create_user, issue_token

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def _serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    return server, thread, port


def test_schemathesis_all_operations(ctx: Any, redis_url: str, tmp_path: Path) -> None:
    from app.api import api_mount, create_api
    from app.api.middleware import LIMITS

    with ctx.db.session() as s:
        admin = create_user(s, email="st-admin@carehub.test", password="password-1234", role="admin")
        token = issue_token(s, admin)
        seeded = svc.configure_integration(s, box=ctx.box, actor=admin.email, name="Canary", connector_id="xero",
                                           credentials={"clientSecret": CANARY})
        svc.create_webhook(s, box=ctx.box, actor=admin.email, integration_id=seeded.id,
                           url="https://hooks.example.org/x", secret=CANARY)
    old = LIMITS.requests_per_minute
    LIMITS.requests_per_minute = 1_000_000
    server, thread, port = _serve(Starlette(routes=[api_mount(create_api(redis_url))]))
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/openapi.json").status_code == 200
        log = tmp_path / "canary.log"
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "st_hooks", "PYTHONPATH": str(HERE), "CAREHUB_CANARY": CANARY,
               "CAREHUB_CANARY_LOG": str(log)}
        started = time.monotonic()
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "st"), "run", f"http://127.0.0.1:{port}/api/v1/openapi.json",
             "-H", f"Authorization: Bearer {token}", "--max-examples", "100", "--checks", "all",
             "--phases", "examples,coverage,fuzzing,stateful", "--seed", "7", "--no-color",
             "--request-timeout", "10", "--workers", "2", "--exclude-checks", "positive_data_acceptance"],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=280, check=False)
        elapsed = time.monotonic() - started
    finally:
        server.should_exit = True
        thread.join(10)
        LIMITS.requests_per_minute = old
    out = proc.stdout + proc.stderr
    Path(os.environ.get("CAREHUB_ST_OUT", "/tmp/carehub-schemathesis.txt")).write_text(out)
    print(out[-6000:])
    print(f"schemathesis took {elapsed:.0f} s")
    assert proc.returncode == 0, out[-6000:]
    assert "Tested: 22" in out and "0 unique failure" not in out
    generated = int(re.search(r"(\d+) generated", out).group(1))  # type: ignore[union-attr]
    assert generated >= 22 * 100, generated
    assert "Stateful" in out and "failures" not in out.split("SUMMARY")[-1].lower()
    assert log.exists() and len(log.read_text()) >= 22 * 100  # the canary check looked at every response


def test_canary_check_can_fail() -> None:
    import st_hooks

    class Resp:
        content = f'{{"clientSecret": "{CANARY}"}}'.encode()
        headers: dict[str, str] = {}

    class Case:
        method, path = "GET", "/x"

    try:
        st_hooks.canary_never_echoed(None, Resp(), Case())
    except AssertionError:
        return
    raise AssertionError("the canary check did not fire")
