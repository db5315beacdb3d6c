"""Ownership, schedule and settings, the integrations list, the review page and live run progress."""

from __future__ import annotations

from typing import Any

from nicegui import ui
from nicegui.testing import User
from sqlmodel import select
from ui_helpers import connect_xero, sign_in

from storage.integrations import get_integration, get_ownership, get_sync_settings
from storage.models import CareRecord, ExternalLink, SyncRun
from ui.services import services

MISSING = "0" * 32


async def connected(user: User, db: Any, name: str = "Xero for Willow Court", role: str = "manager") -> str:
    await sign_in(user, db, role=role)
    integration_id = await connect_xero(user, db, name)
    user.find(marker="stream-invoices").click()
    user.find(marker="continue-mapping").click()
    await user.should_see(marker="tgt:name", retries=100)
    return integration_id


async def test_operation_mode_presets_the_matrix_and_saves(user: User, db: Any) -> None:
    integration_id = await connected(user, db)
    await user.open(f"/integrations/{integration_id}/ownership")
    await user.should_see("Both systems are used equally; the most recent change wins.")
    picker = user.find(marker="mode-picker").elements.pop()
    assert isinstance(picker, ui.radio)
    assert len(picker.options) == 5  # type: ignore[arg-type]
    with user:
        picker.value = "external_primary"
    await user.should_see("Everything is kept in Xero; WriteCareNotes only receives copies.")
    await user.should_see("Contact records belong to Xero (WriteCareNotes holds a copy); they are copied from Xero "
                          "into WriteCareNotes; Xero may change them; if both change the same record, Xero wins.")
    conflict = user.find(marker="conflict-Invoice").elements.pop()
    with user:
        conflict.value = "manual_review"  # type: ignore[attr-defined]
    await user.should_see("it waits in the errors list for a person to decide")
    user.find(marker="save-ownership").click()
    await user.should_see("Ownership saved.")
    with db.session() as s:
        assert get_integration(s, integration_id=integration_id).operation_mode == "external_primary"
        rules = {o.care_type: o for o in get_ownership(s, integration_id=integration_id)}
    assert rules["Contact"].sync_direction == "inbound" and rules["Contact"].update_permissions == ["external"]
    assert rules["Invoice"].conflict_resolution == "manual_review"


async def test_ownership_refuses_a_rule_nobody_may_change(user: User, db: Any) -> None:
    integration_id = await connected(user, db)
    await user.open(f"/integrations/{integration_id}/ownership")
    user.find(marker="may-Contact-writecarenotes").click()
    user.find(marker="may-Contact-external").click()
    await user.should_see("nobody may change them through the sync")
    user.find(marker="save-ownership").click()
    await user.should_see("Not saved: at least one system must be allowed to change records")


async def test_settings_validate_then_save(user: User, db: Any) -> None:
    integration_id = await connected(user, db)
    await user.open(f"/integrations/{integration_id}/settings")
    await user.should_see("Runs only when someone presses Sync now.")
    freq = user.find(marker="frequency").elements.pop()
    with user:
        freq.value = "daily"  # type: ignore[attr-defined]
    await user.should_not_see(marker="every", retries=20)  # only the daily time is asked for
    await user.should_see(marker="at", retries=20)
    user.find(marker="at").clear().type("25:99")
    user.find(marker="email").type("not-an-email")
    user.find(marker="save-settings").click()
    await user.should_see("Not saved: Time of day must look like 02:00. The email address does not look right.")
    user.find(marker="at").clear().type("02:30")
    user.find(marker="email").clear().type("manager@home.example")
    batch = user.find(marker="batch-size").elements.pop()
    with user:
        batch.value = 250  # type: ignore[attr-defined]
    await user.should_see("Runs every day at 02:30.")
    user.find(marker="save-settings").click()
    await user.should_see("Settings saved.")
    with db.session() as s:
        cfg = get_sync_settings(s, integration_id=integration_id)
    assert cfg.sync_frequency == {"kind": "daily", "at": "02:30"}
    assert cfg.batch_size == 250
    assert cfg.notification_settings["email"] == "manager@home.example"


async def test_pages_of_a_missing_integration_say_so(user: User, db: Any) -> None:
    await sign_in(user, db)
    for path, marker in ((f"/integrations/{MISSING}/ownership", "ownership-missing"),
                         (f"/integrations/{MISSING}/settings", "settings-missing"),
                         (f"/integrations/{MISSING}", "integration-missing")):
        await user.open(path)
        await user.should_see(marker=marker)


async def test_integrations_list_empty_then_listed_with_literal_names(user: User, db: Any) -> None:
    await sign_in(user, db)
    await user.open("/integrations")
    await user.should_see(marker="integrations-empty")
    name = "<img src=x onerror=alert(1)>"
    integration_id = await connect_xero(user, db, name)
    await user.open("/integrations")
    await user.should_see(marker=f"integration-{integration_id}")
    await user.should_see(name)


async def test_review_page_checklist_and_activation(user: User, db: Any) -> None:
    integration_id = await connected(user, db)
    await user.open(f"/integrations/{integration_id}")
    await user.should_see("Connected to Xero")
    await user.should_see("contacts → Contact: not mapped yet")
    await user.should_see("Runs only when someone presses Sync now")
    user.find(marker="activate").click()
    await user.should_see(marker="pause")
    with db.session() as s:
        assert get_integration(s, integration_id=integration_id).status == "active"


async def test_sync_now_without_a_worker_explains(user: User, db: Any) -> None:
    integration_id = await connected(user, db)
    services().enqueue_run = None
    await user.open(f"/integrations/{integration_id}")
    user.find(marker="sync-now").click()
    await user.should_see("The sync worker is not available in this installation.")


def queue_without_worker(db: Any) -> Any:
    """Sync now's queue with no worker attached: the real run repository creates the queued run row."""
    from storage.runs import create_run

    async def enqueue(integration_id: str, requested_by: str) -> str:
        run, _created = create_run(db, integration_id, requested_by=requested_by)
        return run.id

    return enqueue


def advance(db: Any, run_id: str, **changes: Any) -> None:
    """Move the run row on, as a worker would."""
    with db.session() as s:
        row = s.get(SyncRun, run_id)
        assert row is not None
        for key, value in changes.items():
            setattr(row, key, value)
        s.add(row)


async def test_sync_now_shows_live_progress_then_the_result_and_records(user: User, db: Any) -> None:
    integration_id = await connected(user, db)
    services().enqueue_run = queue_without_worker(db)
    await user.open(f"/integrations/{integration_id}")
    user.find(marker="sync-now").click()
    await user.should_see(marker="run-progress")
    await user.should_see("Waiting for the worker to pick it up")
    with db.session() as s:
        run = s.exec(select(SyncRun).where(SyncRun.integration_id == integration_id)).one()
    advance(db, run.id, status="running", counts={"read": 4, "created": 2, "total": 8})
    await user.should_see("4 read, 2 new", retries=30)
    await user.should_see("Sync: Running")
    with db.session() as s:
        record = CareRecord(care_type="Contact", data={"name": "<b>Jo</b> Bloggs", "address": {"town": "Leeds"}})
        s.add(record)
        s.flush()
        s.add(ExternalLink(integration_id=integration_id, stream="contacts", external_id="c-1", record_id=record.id))
    advance(db, run.id, status="succeeded", counts={"read": 8, "created": 8, "total": 8})
    await user.should_see(marker="run-finished", retries=40)
    await user.should_see("Finished: 8 read, 8 new.")
    link = user.find(marker="run-link").elements.pop()
    assert link.props["href"] == f"/runs/{run.id}"
    await user.should_see(marker="records-table")  # refreshed when the run ended
    await user.should_see("Personal details are partly hidden.")  # a manager sees personal values masked
    await user.should_see("Name: <b>Jo</b> Bloggs; Town: L**ds")
    await user.should_not_see(marker="no-runs")


async def test_a_failed_run_shows_its_reason(user: User, db: Any) -> None:
    integration_id = await connected(user, db)
    services().enqueue_run = queue_without_worker(db)
    await user.open(f"/integrations/{integration_id}")
    user.find(marker="sync-now").click()
    await user.should_see(marker="run-progress")
    with db.session() as s:
        run = s.exec(select(SyncRun).where(SyncRun.integration_id == integration_id)).one()
    advance(db, run.id, status="failed", error="Xero did not accept the credentials.")
    await user.should_see(marker="run-problem", retries=40)
    await user.should_see("Failed: Xero did not accept the credentials.")


async def test_admins_see_record_values_in_full_and_as_text(user: User, db: Any) -> None:
    integration_id = await connected(user, db, role="admin")
    with db.session() as s:
        record = CareRecord(care_type="Contact", data={"name": "<b>Jo</b> Bloggs", "address": {"town": "Leeds"}})
        s.add(record)
        s.flush()
        s.add(ExternalLink(integration_id=integration_id, stream="contacts", external_id="c-1", record_id=record.id))
    await user.open(f"/integrations/{integration_id}")
    await user.should_see("Name: <b>Jo</b> Bloggs; Town: Leeds")
