"""The operate and migrate pages in NiceGUI's simulated browser: content, fixes, role gates, error states."""

from __future__ import annotations

import asyncio
from typing import Any

import ops_seed as seed
from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from storage import migration_plans as mp
from storage.models import CareRecord, IntegrationError, SyncRun
from storage.users import create_user


async def see(user: User, target: str | None = None, *, marker: str | None = None) -> None:
    """``should_see`` with patience: actions run database work off the event loop first."""
    await user.should_see(target, marker=marker, retries=50)


async def step_is(user: User, step: str) -> None:
    """Wait until the wizard (rebuilt after each action) stands at ``step``."""
    for _ in range(100):
        steppers = user.find(marker="wizard").elements if user._sees(None, None, "wizard", None) else set()
        if any(getattr(s, "value", None) == step for s in steppers):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the wizard did not reach step {step}")


async def _sign_in(user: User, db: Any, role: str = "admin") -> None:
    email = f"{role}@home.example"
    with db.session() as s:
        create_user(s, email=email, password="long-enough-pw", role=role, name=f"{role.title()} Person")
    await user.open("/login")
    user.find("Email").type(email)
    user.find("Password").type("long-enough-pw")
    user.find(marker="sign-in").click()
    await see(user, f"({role})")


async def test_timeline_lists_runs_and_links_to_them(user: User, db: Any) -> None:
    ids = seed.integrations(db)
    seed.bulk_runs(db, ids, 40, days=6)
    run_id, _ = seed.failed_run_with_error(db, ids[1])
    await _sign_in(user, db)
    await user.open("/timeline")
    await see(user, "41 runs from")
    await see(user, marker="timeline-chart")
    table = user.find(marker="runs-table").elements.pop()
    assert isinstance(table, ui.table)
    assert table.rows[0]["id"] == run_id and table.rows[0]["status"] == "Failed"
    assert len(table.rows) == 25
    await see(user, marker="runs-pager")


async def test_timeline_filters_by_status_and_aggregates_big_windows(user: User, db: Any) -> None:
    ids = seed.integrations(db)
    seed.bulk_runs(db, ids, 1600, days=80)
    await _sign_in(user, db)
    await user.open("/timeline?period=quarter")
    await see(user, "1,600 runs from")
    chart = user.find(marker="timeline-chart").elements.pop()
    assert isinstance(chart, ui.echart)
    assert {s["type"] for s in chart.options["series"]} == {"bar"}  # aggregated per bucket, not 1,600 bars
    await user.open("/timeline?period=quarter&status=failed")
    await see(user, "17 runs from")
    chart = user.find(marker="timeline-chart").elements.pop()
    assert chart.options["series"][0]["type"] == "custom" and len(chart.options["series"][0]["data"]) == 17


async def test_timeline_is_for_admins_only(user: User, db: Any) -> None:
    await _sign_in(user, db, "manager")
    await user.open("/timeline")
    await see(user, "You do not have access to this page")


async def test_run_page_shows_events_outcomes_and_fixes_an_error(user: User, db: Any) -> None:
    (iid,) = seed.integrations(db, ("BambooHR <b>staff</b>",))
    run_id, error_id = seed.failed_run_with_error(db, iid)
    await _sign_in(user, db)
    await user.open(f"/runs/{run_id}")
    await see(user, "BambooHR <b>staff</b>")  # vendor text shown as text
    await see(user, "Read 2 residents <b>page 1</b>")
    await see(user, "Resident P-2: nhsNumber is not a valid NHS number")
    await see(user, marker="outcome-P-1")
    user.find(marker=f"edit-{error_id}").click()
    user.find(marker="fix-value").clear().type("9990000026")
    user.find(marker="fix-submit").click()
    await see(user, marker=f"resolved-{error_id}")
    with db.session() as s:
        error = s.get(IntegrationError, error_id)
        assert error is not None and error.resolved and error.resolution_action == "edited"
        assert s.exec(select(CareRecord)).one().data["nhsNumber"] == "9990000026"


async def test_run_page_refuses_a_bad_value_and_unknown_runs(user: User, db: Any) -> None:
    (iid,) = seed.integrations(db, ("BambooHR staff",))
    run_id, error_id = seed.failed_run_with_error(db, iid)
    await _sign_in(user, db)
    await user.open(f"/runs/{run_id}")
    user.find(marker=f"edit-{error_id}").click()
    user.find(marker="fix-value").clear().type("123")
    user.find(marker="fix-submit").click()
    await see(user, "is not a valid NHS number")
    with db.session() as s:
        assert s.get(IntegrationError, error_id).resolved is False  # type: ignore[union-attr]
    await user.open("/runs/does-not-exist")
    await see(user, "There is no run with that id")


async def test_run_rollback_from_the_run_page(user: User, db: Any) -> None:
    (_iid,) = seed.integrations(db, ("Legacy",))
    with db.session() as s:
        plan = mp.create_plan(s, name="Oak House", legacy_system_id="carecontrol", data_types=["Employee"],
                              actor="a")
        mp.accept_mapping(s, plan.id, "a")
        mp.dry_run(s, plan.id, "a")
        phase = mp.add_phase(s, plan.id, name="Staff", data_types=["Employee"], actor="a")
        run = mp.run_phase(s, phase.id, "a")
    await _sign_in(user, db)
    await user.open(f"/runs/{run.id}")
    user.find(marker="rollback-run").click()
    user.find(marker="rollback-reason").type("wrong export")
    user.find(marker="rollback-confirm").click()
    await see(user, "Rolled back: 0 restored, 39 removed.")
    with db.session() as s:
        assert s.get(SyncRun, run.id).status == "rolled_back"  # type: ignore[union-attr]
        assert mp.care_snapshot(s) == {}


async def test_errors_inbox_groups_explains_ignores_and_bulk_retries(user: User, db: Any) -> None:
    (iid,) = seed.integrations(db, ("Xero finance",))
    with db.session() as s:
        for i in range(3):
            s.add(IntegrationError(integration_id=iid, error_type="vendor", error_code="500",
                                   error_message=f"Xero said <script>alert({i})</script>", record_id=f"INV-{i}"))
    await _sign_in(user, db)
    await user.open("/errors")
    await see(user, "3 vendor errors — 500")
    await see(user, "The other system returned an error of its own.")
    await see(user, "Xero said <script>alert(0)</script>")
    user.find(marker="retry-all-vendor:500").click()
    await see(user, "Retry queued for 3 error(s).")
    await see(user, "retries 1/3")  # the inbox has been rebuilt
    with db.session() as s:
        assert s.exec(select(SyncRun).where(SyncRun.trigger == "retry")).one().params["error_ids"]
        first = s.exec(select(IntegrationError).where(IntegrationError.record_id == "INV-0")).one()
    user.find(marker=f"ignore-{first.id}").click()
    user.find(marker="fix-text-submit").click()
    await see(user, "Say why this error can be ignored")
    user.find(marker="fix-text").type("Sent twice by Xero")
    user.find(marker="fix-text-submit").click()
    await see(user, "2 vendor errors — 500")


async def test_errors_inbox_empty_state(user: User, db: Any) -> None:
    await _sign_in(user, db, "manager")
    await user.open("/errors")
    await see(user, marker="inbox-empty")


async def test_health_shows_targets_stale_and_aged_errors(user: User, db: Any) -> None:
    ids = seed.integrations(db)
    seed.bulk_runs(db, ids, 200, days=10)
    seed.failed_run_with_error(db, ids[0], minutes_ago=300)
    with db.session() as s:
        from storage.models import Integration

        stale = s.get(Integration, ids[2])
        assert stale is not None
        stale.last_success = None
        stale.stale_after_minutes = 1
        s.add(stale)
    await _sign_in(user, db)
    await user.open("/health")
    for key in ("success_pct", "accuracy_pct", "duration_seconds", "resolution_hours", "uptime_pct"):
        await see(user, marker=f"target-{key}")
    await see(user, "Target: more than 99.5 %")
    await see(user, "Misses target")
    await see(user, marker="aged-errors")
    await see(user, marker="health-table")


async def test_health_with_no_runs_says_not_measured(user: User, db: Any) -> None:
    await _sign_in(user, db)
    await user.open("/health")
    await see(user, "Not measured yet")
    await see(user, "No alerts yet")


async def test_migration_wizard_resumes_at_saved_step_and_walks_to_rollback(user: User, db: Any) -> None:
    await _sign_in(user, db, "onboarding")
    await user.open("/migration")
    user.find(marker="plan-name").type("Rose Court")
    user.find(marker="type-Allergy").click()  # untick: residents and staff only
    user.find(marker="plan-start").click()
    await see(user, marker="plan-title")
    with db.session() as s:
        plan = mp.list_plans(s)[0]
        assert plan.data_types == ["Resident", "Employee"] and plan.wizard_step == "mapping"
    await user.open(f"/migration/{plan.id}")  # a reload resumes at the saved step
    stepper = user.find(marker="wizard").elements.pop()
    assert stepper.value == "mapping"  # type: ignore[attr-defined]
    user.find(marker="use-mapping").click()
    await step_is(user, "dry_run")
    user.find(marker="run-dry-run").click()
    await see(user, "Dry run finished: nothing was written.")
    await see(user, marker="dry-accuracy")
    await see(user, marker="invalid-Resident")
    user.find(marker="next-dry-run").click()
    await step_is(user, "phases")
    user.find(marker="add-phase").click()
    await see(user, "Phase added.")
    await see(user, marker="phase-Phase 1: Resident")
    user.find(marker="next-phases").click()
    await step_is(user, "run")
    await see(user, marker="run-phase-Phase 1: Resident")
    user.find(marker="run-phase-Phase 1: Resident").click()
    await see(user, "Phase ran: 37 records written, 3 failed.")
    await step_is(user, "reconcile")
    user.find(marker="reconcile").click()
    await see(user, marker="criteria-passed")
    user.find(marker="next-reconcile").click()
    await step_is(user, "cutover")
    await see(user, marker="cut-over")
    user.find(marker="roll-back-phase").click()
    await see(user, "Say why the phase is being rolled back")
    user.find(marker="rollback-reason").type("Home wants to wait")
    user.find(marker="roll-back-phase").click()
    await see(user, marker="rollback-done")
    with db.session() as s:
        assert mp.care_snapshot(s) == {}
    await user.open(f"/migration/{plan.id}/report")
    await see(user, "Rolled back by onboarding@home.example: Home wants to wait")


async def test_migration_refuses_bad_input_and_unknown_plans(user: User, db: Any) -> None:
    await _sign_in(user, db, "onboarding")
    await user.open("/migration")
    user.find(marker="plan-start").click()
    await see(user, "Give the migration a name")
    await user.open("/migration/nope")
    await see(user, "That migration plan does not exist.")


async def test_migration_is_closed_to_managers(user: User, db: Any) -> None:
    await _sign_in(user, db, "manager")
    await user.open("/migration")
    await see(user, "You do not have access to this page")


async def test_errors_inbox_settles_a_conflict_by_comparing_versions(user: User, db: Any) -> None:
    (iid,) = seed.integrations(db, ("BambooHR staff",))
    with db.session() as s:
        record = CareRecord(care_type="Employee", data={"givenName": "Ruth", "jobTitle": "Carer"})
        s.add(record)
        s.flush()
        error = IntegrationError(integration_id=iid, error_type="conflict", error_code="manual_review",
                                 record_id=record.id, stream="employees", error_message="Both systems changed this",
                                 error_details={"external_id": "E1", "local": dict(record.data),
                                                "incoming": {"givenName": "Ruth", "jobTitle": "Senior Carer"}})
        s.add(error)
        s.flush()
        error_id, record_id = error.id, record.id
    await _sign_in(user, db)
    await user.open("/errors")
    await see(user, marker=f"conflict-{error_id}")
    await see(user, "Senior Carer")
    user.find(marker=f"keep-incoming-{error_id}").click()
    await see(user, "Conflict settled.")
    with db.session() as s:
        assert s.get(CareRecord, record_id).data["jobTitle"] == "Senior Carer"  # type: ignore[union-attr]
