"""Journey 1 in a real browser, as a new manager on a fresh install: connect Xero (sandbox) through its OAuth
redirect, map five fields by drag and drop, preview, set ownership and settings, save, Sync now with a real
arq worker, watch the progress, see the records and the finished run. Every page passes axe-core with no
serious or critical violations, and vendor/user text with markup is shown literally (no script runs).

Run with ``pytest -o addopts="" -m e2e tests/e2e`` (the Makefile does). Needs Debian's /usr/bin/chromium,
a Redis at CAREHUB_TEST_REDIS_URL (default redis://127.0.0.1:6379) and npm (to fetch axe-core once).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from cryptography.fernet import Fernet
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VENDORED_AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"  # axe-core 4.14.1, MPL-2.0 (header kept)
EMAIL, PASSWORD = "pat.manager@willowcourt.example", "a-long-e2e-password"
XSS = "<img src=x onerror=alert(1)>"
FIVE = [("Name", "name"), ("EmailAddress", "email"), ("AccountNumber", "accountNumber"),
        ("Addresses[0].City", "address.town"), ("Addresses[0].PostalCode", "address.postcode")]

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _axe_script() -> Path:
    """axe-core's axe.min.js (4.14.1, MPL-2.0), vendored so CI needs no network."""
    return VENDORED_AXE


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A fresh install: migrated SQLite, a new manager, ``python -m app web`` and ``python -m app worker``."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    port = _free_port()
    redis_base = os.environ.get("CAREHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379")
    redis_url = f"{redis_base}/{13 - os.getpid() % 4}"
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAREHUB_", "NICEGUI_")) and k != "PYTEST_CURRENT_TEST"}
    env.update(CAREHUB_ENV="local", CAREHUB_DATA_DIR=str(tmp_path / "data"), CAREHUB_PORT=str(port),
               CAREHUB_DATABASE_URL=f"sqlite:///{tmp_path / 'e2e.db'}", CAREHUB_REDIS_URL=redis_url,
               CAREHUB_SECRET_KEYS=Fernet.generate_key().decode(), CAREHUB_SESSION_SECRET=secrets.token_hex(16),
               CAREHUB_SYNC_LEASE_SECONDS="10")
    py = sys.executable
    subprocess.run([py, "-m", "app", "db", "upgrade"], env=env, cwd=ROOT, check=True, timeout=120)
    subprocess.run([py, "-m", "app", "users", "create", EMAIL, "--role", "manager", "--password", PASSWORD,
                    "--name", "Pat Manager"], env=env, cwd=ROOT, check=True, timeout=60)
    logs = {name: (tmp_path / f"{name}.log").open("w+") for name in ("web", "worker")}
    procs = {name: subprocess.Popen([py, "-m", "app", name], env=env, cwd=ROOT, stdout=logs[name],
                                    stderr=subprocess.STDOUT) for name in ("web", "worker")}
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("web did not start:\n" + (tmp_path / "web.log").read_text())
        yield {"base": base, "tmp": tmp_path}
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGINT)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs.values():
            log.close()
        client.flushdb()
        client.close()


def check_axe(page: Page, label: str, found: dict[str, list[str]]) -> None:
    """Run axe-core on the page as it is now; collect serious and critical violations."""
    page.add_script_tag(path=str(_axe_script()))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [f"{v['id']} ({v['impact']}): {v['help']} -> {[n['target'] for n in v['nodes']][:4]}"
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    if bad:
        found[label] = bad


def source(page: Page, name: str) -> Any:
    """The draggable card of a source field."""
    return page.locator('[data-testid^="src-"]').filter(
        has=page.get_by_role("button", name=f"Choose {name}", exact=True))


def test_journey_1_connect_map_preview_own_save_sync(stack: dict[str, Any]) -> None:
    base, shots = stack["base"], stack["tmp"]
    violations: dict[str, list[str]] = {}
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.set_default_timeout(20_000)

        page.goto(base + "/login")
        check_axe(page, "login", violations)
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(base + "/")
        expect(page.get_by_text("Pat Manager (manager)")).to_be_visible()
        check_axe(page, "home", violations)

        # Gallery -> Connect (the real OAuth2 authorization-code redirect against the Xero sandbox)
        page.get_by_role("link", name="Gallery").click()
        page.wait_for_url(base + "/gallery")
        check_axe(page, "gallery", violations)
        page.get_by_label("Search systems").fill("xero")
        page.get_by_role("button", name="Connect Xero").click()
        page.wait_for_url(re.compile(r".*/connect/xero$"))
        check_axe(page, "connect form", violations)
        page.get_by_label("Name for this connection").fill(XSS)
        page.get_by_role("button", name="Sign in to Xero").click()
        page.wait_for_url(re.compile(r".*/connect/xero\?integration=.*"))
        expect(page.get_by_text("Success: Connected to Xero")).to_be_visible(timeout=30_000)
        expect(page.get_by_text(f"Connection: {XSS}")).to_be_visible()
        check_axe(page, "connected", violations)
        integration_id = re.search(r"integration=([0-9a-f]{32})", page.url).group(1)  # type: ignore[union-attr]

        # Designer: five fields by drag and drop
        page.get_by_role("button", name="Continue to field mapping").click()
        page.wait_for_url(re.compile(r".*/design/contacts$"))
        expect(source(page, "Name")).to_be_visible()
        expect(page.get_by_text("Still needed before you can save: Name.")).to_be_visible()
        check_axe(page, "designer", violations)
        for src, tgt in FIVE:
            source(page, src).drag_to(page.get_by_test_id(f"tgt-{tgt}"))
            expect(page.get_by_test_id(f"tgt-{tgt}")).to_contain_text(f"Filled from {src}")
        expect(page.get_by_text("Every required field is filled.")).to_be_visible()
        expect(page.get_by_text("Xero's Name becomes the contact's name")).to_be_visible()
        expect(page.get_by_text("filling 5 fields")).to_be_visible()
        # Keyboard only: choose a source with Enter, then "Put here" on the target with Enter
        page.get_by_role("button", name="Choose Addresses[0].AddressLine1", exact=True).focus()
        page.keyboard.press("Enter")
        put = page.get_by_role("button", name="Put Addresses[0].AddressLine1 into Address: Line1")
        put.focus()
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("tgt-address.line1")).to_contain_text("Filled from Addresses[0].AddressLine1")
        expect(page.get_by_text("filling 6 fields")).to_be_visible()
        page.screenshot(path=str(shots / "designer.png"), full_page=True)
        check_axe(page, "designer mapped", violations)

        # Tablet: nothing spills sideways
        page.set_viewport_size({"width": 820, "height": 1180})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        page.screenshot(path=str(shots / "designer-tablet.png"))
        page.set_viewport_size({"width": 1280, "height": 800})

        # Preview
        page.get_by_role("tab", name="2. Preview").click()
        page.get_by_role("button", name="Preview on sample records").click()
        expect(page.get_by_text(re.compile(r"^10 sample records: \d+ map cleanly"))).to_be_visible()
        expect(page.get_by_text("new record in WriteCareNotes").first).to_be_visible()
        check_axe(page, "preview", violations)
        page.get_by_role("tab", name="1. Map fields").click()
        page.get_by_role("button", name="Save version").click()
        expect(page.get_by_text("Saved version: 1")).to_be_visible()

        # Ownership
        page.get_by_role("button", name="Next: who owns the data").click()
        page.wait_for_url(re.compile(r".*/ownership$"))
        page.get_by_text("Xero only: Everything is kept in Xero").click()
        expect(page.get_by_text("Contact records belong to Xero (WriteCareNotes holds a copy); they are copied "
                                "from Xero into WriteCareNotes")).to_be_visible()
        check_axe(page, "ownership", violations)
        page.get_by_role("button", name="Save ownership").click()
        expect(page.get_by_text("Ownership saved.")).to_be_visible()

        # Schedule and settings
        page.get_by_role("button", name="Next: schedule and settings").click()
        page.wait_for_url(re.compile(r".*/settings$"))
        check_axe(page, "settings", violations)
        page.get_by_role("button", name="Save settings").click()
        expect(page.get_by_text("Settings saved.")).to_be_visible()

        # Review, switch on, Sync now with live progress, records and the finished run
        page.get_by_role("button", name="Next: review and sync").click()
        page.wait_for_url(base + f"/integrations/{integration_id}")
        expect(page.get_by_text("contacts → Contact: mapping version 1 saved")).to_be_visible()
        check_axe(page, "review", violations)
        page.get_by_role("button", name="Switch on").click()
        expect(page.get_by_role("button", name="Pause")).to_be_visible()
        page.get_by_role("button", name="Sync now").click()
        expect(page.get_by_role("progressbar", name="Sync progress")).to_be_visible()
        expect(page.get_by_text(re.compile(r"^Finished: \d+ read"))).to_be_visible(timeout=120_000)
        expect(page.locator("table").filter(has_text="Id in the other system")).to_be_visible(timeout=10_000)
        assert page.locator("table tbody tr").count() > 0
        page.screenshot(path=str(shots / "synced.png"), full_page=True)
        check_axe(page, "review after sync", violations)
        page.get_by_role("link", name="Open this sync run").click()
        page.wait_for_url(re.compile(r".*/runs/[0-9a-f]{32}$"))
        expect(page.get_by_text("Finished", exact=True).first).to_be_visible()
        check_axe(page, "run", violations)

        for path in ("/integrations", "/timeline", "/errors", "/health", "/migration"):
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            check_axe(page, path, violations)
        page.goto(base + "/integrations")
        expect(page.get_by_text(XSS)).to_be_visible()
        browser.close()
    assert not dialogs, f"markup in data ran as script: {dialogs}"
    assert not violations, "axe found serious or critical problems:\n" + "\n".join(
        f"{page_}: {v}" for page_, vs in violations.items() for v in vs)
