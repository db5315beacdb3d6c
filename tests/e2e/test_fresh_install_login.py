"""Fresh install in a real browser: `carehub run` prints an admin login, and it signs in."""

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
import pytest
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.e2e
def test_printed_admin_login_works(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREHUB_") and k != "PYTEST_CURRENT_TEST"}
    env.update(CAREHUB_DATA_DIR=str(tmp_path / "data"), CAREHUB_PORT=str(port))
    log = (tmp_path / "run.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "app", "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        printed = (tmp_path / "run.log").read_text()
        email = re.search(r"admin login: (\S+)", printed)
        password = re.search(r"password:\s+(\S+)", printed)
        assert email and password, printed
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_label("Email").fill(email.group(1))
            page.get_by_label("Password").fill(password.group(1))
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"http://127.0.0.1:{port}/", timeout=15000)
            page.get_by_text("(admin)").wait_for(timeout=15000)
            page.get_by_role("button", name="Sign out").click()
            page.wait_for_url(re.compile(r".*/login.*"), timeout=15000)
            browser.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(40)
        log.close()
