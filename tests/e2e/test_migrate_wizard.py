"""Journey 2 in Chromium: an onboarding user walks the migration wizard through the dry run (with a
fuzzy match confirmed by a person), a phase, reconciliation and rollback; afterwards the care store
equals its state before the phase. The wizard survives reloads and has no serious accessibility
violations."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
from ops_e2e_support import carehub_server, chromium, explain, serious_violations, signed_in

from engine.migration.legacy import LEGACY_SYSTEMS, apply_template, sample_export
from storage import migration_plans as mp
from storage.models import CareRecord, DataOwnership


def _existing_residents(db: object) -> None:
    template = LEGACY_SYSTEMS["carecontrol"].template("Resident")
    rows = sample_export("carecontrol", "Resident")
    sure = apply_template(template, rows[0]) | {"room": "12A"}
    maybe = apply_template(template, rows[1])
    maybe.pop("nhsNumber")
    maybe["givenName"] = "Dot"
    with db.session() as s:  # type: ignore[attr-defined]
        s.add(CareRecord(care_type="Resident", data=sure))
        s.add(CareRecord(care_type="Resident", data=maybe))


def _check_axe(page: Page, where: str, found: dict[str, list[dict[str, object]]]) -> None:
    page.wait_for_load_state("networkidle")
    found[where] = serious_violations(page)


@pytest.mark.e2e
def test_onboarding_walks_the_wizard_to_rollback_and_the_store_is_restored(tmp_path: Path) -> None:
    with carehub_server(tmp_path, {"onboard@home.example": "onboarding"}) as server:
        _existing_residents(server.db)
        with server.db.session() as s:
            before = mp.care_snapshot(s)
        axe: dict[str, list[dict[str, object]]] = {}
        with chromium() as browser:
            page = signed_in(browser, server, "onboard@home.example")
            page.goto(f"{server.url}/migration")
            expect(page.get_by_text("Start a migration")).to_be_visible(timeout=15000)
            _check_axe(page, "/migration", axe)
            page.get_by_label("Name (for example the home's name)").fill("Rose Court")
            page.get_by_role("checkbox", name="Allergy").click()
            page.get_by_role("button", name="Start").click()
            page.wait_for_url(re.compile(r".*/migration/[0-9a-f]{32}$"), timeout=15000)
            wizard_url = page.url
            page.reload()  # the wizard resumes where it was
            page.get_by_role("button", name="Use this mapping").click()
            page.get_by_role("button", name="Run the dry run").click()
            expect(page.get_by_text("Dry run finished: nothing was written.")).to_be_visible(timeout=20000)
            expect(page.get_by_text(re.compile(r"R1001 may be existing record"))).to_be_visible()
            page.get_by_role("button", name="Same person").click()
            expect(page.get_by_text("confirmed: same person")).to_be_visible(timeout=15000)
            page.reload()
            expect(page.get_by_text("confirmed: same person")).to_be_visible(timeout=15000)
            _check_axe(page, "wizard: dry run report", axe)
            page.get_by_role("button", name="Next: plan phases").click()
            page.get_by_role("button", name="Add phase").click()
            expect(page.get_by_text("Phase added.")).to_be_visible(timeout=15000)
            page.get_by_role("button", name="Next: run a phase").click()
            page.get_by_role("button", name="Run this phase").click()
            expect(page.get_by_text(re.compile(r"Phase ran: \d+ records written, 3 failed\."))).to_be_visible(
                timeout=20000)
            with server.db.session() as s:
                assert len(mp.care_snapshot(s)) == 2 + 41 - 1 - 3 - 2
            page.get_by_role("button", name="Reconcile").click()
            expect(page.get_by_text("All success criteria are met.")).to_be_visible(timeout=20000)
            _check_axe(page, "wizard: reconcile", axe)
            page.get_by_role("button", name="Next: cut over or roll back").click()
            page.get_by_label("Reason for rolling back").fill("The home wants to run both systems a week longer")
            page.get_by_role("button", name="Roll back this phase").click()
            expect(page.get_by_text(re.compile(r"Rolled back by onboard@home\.example: 35 removed, 2 restored"))
                   ).to_be_visible(timeout=20000)
            with server.db.session() as s:
                assert mp.care_snapshot(s) == before
                assert s.exec(select(DataOwnership)).all() == []
            page.get_by_role("link", name="Printable cutover report").click()
            expect(page.get_by_text("The home wants to run both systems a week longer", exact=False)).to_be_visible(
                timeout=15000)
            _check_axe(page, "cutover report", axe)
            page.goto(wizard_url)
            expect(page.get_by_text("rolled back").first).to_be_visible(timeout=15000)
        assert all(not v for v in axe.values()), explain([{"page": p, **v} for p, vs in axe.items() for v in vs])
