"""Journey 3 in Chromium: an admin finds a failed run on the timeline, opens it and fixes an error by
editing the value and resubmitting; the operate pages have no serious accessibility violations."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
import ops_seed as seed
from ops_e2e_support import carehub_server, chromium, explain, serious_violations, signed_in

from storage.models import AuditLog, CareRecord, IntegrationError


@pytest.mark.e2e
def test_admin_fixes_a_failed_run_from_the_timeline(tmp_path: Path) -> None:
    with carehub_server(tmp_path, {"admin@home.example": "admin"}) as server:
        ids = seed.integrations(server.db)
        seed.bulk_runs(server.db, ids, 300, days=6, fail_every=10_000)  # one other failure: the first
        run_id, error_id = seed.failed_run_with_error(server.db, ids[1])
        with chromium() as browser:
            page = signed_in(browser, server, "admin@home.example")
            page.goto(f"{server.url}/timeline")
            expect(page.get_by_text("301 runs from")).to_be_visible(timeout=15000)
            page.get_by_label("Status").click()
            page.get_by_role("option", name="Failed").click()
            page.keyboard.press("Escape")
            expect(page.get_by_text("2 runs from")).to_be_visible(timeout=15000)
            page.get_by_role("link", name=re.compile(r"Open run of BambooHR staff")).click()
            page.wait_for_url(f"{server.url}/runs/{run_id}")
            expect(page.get_by_text("Resident P-2: nhsNumber is not a valid NHS number")).to_be_visible()
            page.get_by_role("button", name="Edit value and resubmit").click()
            value = page.get_by_label("New value for nhsNumber")
            value.fill("9990000018x")
            page.get_by_role("button", name="Resubmit", exact=True).click()
            expect(page.get_by_text("is not a valid NHS number (10 digits", exact=False).first).to_be_visible()
            value.fill("999 000 0026")
            page.get_by_role("button", name="Resubmit", exact=True).click()
            expect(page.get_by_text(re.compile(r"Dealt with: edited by admin@home\.example"))).to_be_visible(
                timeout=15000)
            with server.db.session() as s:
                error = s.get(IntegrationError, error_id)
                assert error is not None and error.resolved and error.resolution_action == "edited"
                walter = [r for r in s.exec(select(CareRecord)).all() if r.data.get("givenName") == "Walter"]
                assert len(walter) == 1 and walter[0].data["nhsNumber"] == "999 000 0026"
            page.goto(f"{server.url}/errors")
            expect(page.get_by_text("Nothing waiting")).to_be_visible(timeout=15000)
            # then the admin decides the run should not have happened: roll it back, audited
            page.goto(f"{server.url}/runs/{run_id}")
            page.get_by_role("button", name="Roll back this run").click()
            page.get_by_label("Reason").fill("Imported from the wrong BambooHR account")
            page.get_by_role("button", name="Roll back", exact=True).click()
            expect(page.get_by_text("Rolled back: 0 restored, 1 removed.")).to_be_visible(timeout=15000)
            expect(page.get_by_text("Rolled back", exact=True).first).to_be_visible()
            with server.db.session() as s:
                assert all(r.deleted_at is not None for r in s.exec(select(CareRecord)).all())
                audit = s.exec(select(AuditLog).where(AuditLog.action == "run.rollback")).one()
                assert audit.actor == "admin@home.example" and audit.entity_id == run_id


@pytest.mark.e2e
def test_operate_pages_have_no_serious_accessibility_violations(tmp_path: Path) -> None:
    with carehub_server(tmp_path, {"admin@home.example": "admin"}) as server:
        ids = seed.integrations(server.db)
        seed.bulk_runs(server.db, ids, 200, days=20)
        run_id, _ = seed.failed_run_with_error(server.db, ids[0], minutes_ago=300)
        with chromium() as browser:
            page = signed_in(browser, server, "admin@home.example")
            found = {}
            for path, ready in [("/timeline", "runs from"), ("/timeline?period=quarter", "runs from"),
                                (f"/runs/{run_id}", "Records"), ("/errors", "How to fix"), ("/health", "Trend")]:
                page.goto(server.url + path)
                expect(page.get_by_text(ready).first).to_be_visible(timeout=15000)
                page.wait_for_load_state("networkidle")
                found[path] = serious_violations(page)
            assert all(not v for v in found.values()), explain([{"page": p, **v} for p, vs in found.items()
                                                                 for v in vs])
