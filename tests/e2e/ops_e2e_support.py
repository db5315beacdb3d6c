"""Shared by the operate and migrate browser tests: a CareHub web server in a subprocess on its own
SQLite file, signed-in Chromium pages, and axe-core accessibility checks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from playwright.sync_api import Browser, Page, sync_playwright

from storage.db import Database
from storage.migrate import upgrade
from storage.users import create_user

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
AXE_SCRIPT = Path(__file__).parent / "vendor" / "axe.min.js"
PASSWORD = "e2e-password-long"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running CareHub web process and its database."""

    url: str
    db: Database
    data_dir: Path


@contextmanager
def carehub_server(tmp: Path, users: dict[str, str]) -> Iterator[Server]:
    """Migrate a fresh SQLite database, create ``users`` (email -> role), serve ``python -m app web``."""
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{data_dir / 'carehub.db'}"
    upgrade(url)
    db = Database(url)
    with db.session() as s:
        for email, role in users.items():
            create_user(s, email=email, password=PASSWORD, role=role, name=role.title())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREHUB_") and k != "PYTEST_CURRENT_TEST"}
    env.update(CAREHUB_DATA_DIR=str(data_dir), CAREHUB_DATABASE_URL=url, CAREHUB_PORT=str(port),
               CAREHUB_REDIS_URL=os.environ.get("CAREHUB_E2E_REDIS_URL", "redis://127.0.0.1:6379/15"),
               CAREHUB_SECRET_KEYS=Fernet.generate_key().decode(), CAREHUB_SESSION_SECRET="e2e-" + "s" * 40,
               CAREHUB_SANDBOXES="false")
    log = (tmp / "web.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "app", "web"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("CareHub did not start:\n" + (tmp / "web.log").read_text()[-3000:])
            time.sleep(0.3)
        yield Server(f"http://127.0.0.1:{port}", db, data_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        db.dispose()


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (no browser download)."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def signed_in(browser: Browser, server: Server, email: str) -> Page:
    """A new page signed in as ``email``."""
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/", timeout=20000)
    return page


def axe_source() -> str:
    """axe-core's script (4.14.1, MPL-2.0), vendored in tests/e2e/vendor so CI needs no network."""
    return AXE_SCRIPT.read_text()


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core violations of impact serious or critical on the current page (WCAG 2.x A/AA rules)."""
    # Let notifications finish fading in: axe measures contrast mid-animation otherwise.
    page.wait_for_timeout(800)
    page.add_script_tag(content=axe_source())
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                        nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
    }""")
    return [v for v in result if v["impact"] in ("serious", "critical")]


def explain(violations: list[dict[str, Any]]) -> str:
    """Readable assertion message."""
    return json.dumps(violations, indent=1)
