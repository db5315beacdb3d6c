"""The migration service on a real database: dry run, matching decisions, phase, reconcile, cut over, roll back."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from engine.migration.legacy import LEGACY_SYSTEMS, apply_template, sample_export
from storage import migration_plans as mp
from storage.models import AuditLog, CareRecord, DataOwnership, IntegrationError, SyncRun


def _seed_existing(db: Any) -> dict[str, str]:
    """Two residents already in WriteCareNotes: one sure match (same NHS number), one possible (nickname, no id)."""
    template = LEGACY_SYSTEMS["carecontrol"].template("Resident")
    rows = sample_export("carecontrol", "Resident")
    sure = apply_template(template, rows[0])
    maybe = apply_template(template, rows[1])
    maybe.pop("nhsNumber")
    maybe["givenName"] = {"Dorothy": "Dot"}.get(maybe["givenName"], maybe["givenName"])
    maybe["room"] = "old room"
    with db.session() as s:
        a = CareRecord(care_type="Resident", data=sure | {"room": "12A"})
        b = CareRecord(care_type="Resident", data=maybe)
        s.add(a)
        s.add(b)
        s.flush()
        return {"sure": a.id, "maybe": b.id}


def _plan(db: Any) -> str:
    with db.session() as s:
        plan = mp.create_plan(s, name="Rose Court", legacy_system_id="carecontrol",
                              data_types=["Resident", "Employee"], actor="onboard@home.example")
        mp.accept_mapping(s, plan.id, "onboard@home.example")
        return plan.id


def test_dry_run_reports_counts_duplicates_invalid_and_matches(db: Any) -> None:
    existing = _seed_existing(db)
    plan_id = _plan(db)
    with db.session() as s:
        report = mp.dry_run(s, plan_id, "onboard@home.example")
    residents = next(t for t in report["types"] if t["care_type"] == "Resident")
    assert residents["total"] == 41
    assert residents["duplicates"] == [["R1003", "R1040"]]
    assert {i["field"] for i in residents["invalid"]} == {"nhsNumber", "dateOfBirth", "familyName"}
    assert [m["record_id"] for m in residents["matched"]] == [existing["sure"]]
    assert [p["record_id"] for p in residents["possible"]] == [existing["maybe"]]
    assert report["summary"]["invalid_records"] == 4
    assert 99.0 < report["summary"]["accuracy_pct"] < 100.0
    with db.session() as s:
        plan = mp.get_plan(s, plan_id)
        assert plan.wizard_step == "dry_run"
        assert len(mp.unconfirmed(plan)) == 1


def test_phase_cannot_run_with_unconfirmed_matches(db: Any) -> None:
    _seed_existing(db)
    plan_id = _plan(db)
    with db.session() as s:
        mp.dry_run(s, plan_id, "a")
        phase = mp.add_phase(s, plan_id, name="Residents", data_types=["Resident"], start="2026-12-01",
                             end="2026-12-07", actor="a")
    with db.session() as s, pytest.raises(mp.MigrationError, match="possible matches"):
        mp.run_phase(s, phase.id, "a")


def test_phase_run_reconcile_rollback_restores_store_and_ownership(db: Any) -> None:
    existing = _seed_existing(db)
    plan_id = _plan(db)
    with db.session() as s:
        mp.dry_run(s, plan_id, "a")
        mp.decide_match(s, plan_id, "Resident", "R1001", True, "a")
        phase = mp.add_phase(s, plan_id, name="Residents", data_types=["Resident"], actor="a")
        before = mp.care_snapshot(s)
    with db.session() as s:
        run = mp.run_phase(s, phase.id, "a")
        run_id = run.id
    with db.session() as s:
        after_run = mp.care_snapshot(s)
        assert after_run[existing["sure"]]["room"] == "1"  # the legacy value replaced the stored one
        assert after_run[existing["maybe"]]["givenName"] == "Dorothy"  # confirmed match updated, not duplicated
        assert len(after_run) == 2 + 41 - 1 - 3 - 2  # new residents: all but duplicate, invalid and the two matches
        run_row = s.get(SyncRun, run_id)
        assert run_row is not None and run_row.counts["failed"] == 3 and run_row.counts["skipped"] == 1
        assert len(s.exec(select(IntegrationError).where(IntegrationError.run_id == run_id)).all()) == 3
        owner = s.exec(select(DataOwnership).where(DataOwnership.care_type == "Resident")).one()
        assert owner.primary_system == "external"
    with db.session() as s:
        result = mp.reconcile(s, phase.id, "a")
    assert result["missing"] == 0 and result["mismatched_fields"] == 0 and result["accuracy_pct"] == 100.0
    assert result["passed"] is True
    assert result["rollback_advised"] is True  # 3 of 41 failed: above the 5 % trigger
    with db.session() as s, pytest.raises(mp.MigrationError, match="rollback trigger fired"):
        mp.cut_over(s, phase.id, "a")
    with db.session() as s:
        mp.cut_over(s, phase.id, "a", "the 3 failed residents are fixed in the errors inbox")
        owner = s.exec(select(DataOwnership).where(DataOwnership.care_type == "Resident")).one()
        assert owner.primary_system == "writecarenotes"
    with db.session() as s:
        report = mp.roll_back_phase(s, phase.id, "a", "home asked to wait")
    assert report.removed == 35 and report.restored == 2
    with db.session() as s:
        assert mp.care_snapshot(s) == before
        assert s.exec(select(DataOwnership)).all() == []
        assert s.get(SyncRun, run_id).status == "rolled_back"  # type: ignore[union-attr]
        assert s.exec(select(IntegrationError).where(IntegrationError.resolved == False)).all() == []  # noqa: E712
        actions = [a.action for a in s.exec(select(AuditLog)).all()]
        assert "run.rollback" in actions and "migration.rollback" in actions


def test_rollback_needs_a_reason_and_runs_once(db: Any) -> None:
    plan_id = _plan(db)
    with db.session() as s:
        mp.dry_run(s, plan_id, "a")
        phase = mp.add_phase(s, plan_id, name="Staff", data_types=["Employee"], actor="a")
        mp.run_phase(s, phase.id, "a")
    with db.session() as s, pytest.raises(mp.MigrationError, match="why"):
        mp.roll_back_phase(s, phase.id, "a", " ")
    with db.session() as s:
        mp.roll_back_phase(s, phase.id, "a", "test")
    with db.session() as s, pytest.raises(mp.MigrationError):
        mp.roll_back_phase(s, phase.id, "a", "again")


def test_plan_validation_messages(db: Any) -> None:
    with db.session() as s, pytest.raises(mp.MigrationError, match="Choose data types"):
        mp.create_plan(s, name="X", legacy_system_id="carecontrol", data_types=["Invoice"], actor="a")
    plan_id = _plan(db)
    with db.session() as s:
        mp.add_phase(s, plan_id, name="Residents", data_types=["Resident"], actor="a")
    with db.session() as s, pytest.raises(mp.MigrationError, match="already belong"):
        mp.add_phase(s, plan_id, name="Again", data_types=["Resident"], actor="a")
    with db.session() as s, pytest.raises(mp.MigrationError, match="end on or after"):
        mp.add_phase(s, plan_id, name="Staff", data_types=["Employee"], start="2026-12-05", end="2026-12-01",
                     actor="a")


def test_rollback_keeps_records_a_later_run_changed(db: Any) -> None:
    plan_id = _plan(db)
    with db.session() as s:
        mp.dry_run(s, plan_id, "a")
        phase = mp.add_phase(s, plan_id, name="Staff", data_types=["Employee"], actor="a")
        run = mp.run_phase(s, phase.id, "a")
        plan = mp.get_plan(s, plan_id)
        record = s.exec(select(CareRecord)).first()
        assert record is not None and plan.integration_id is not None
        later = SyncRun(integration_id=plan.integration_id, status="succeeded")
        s.add(later)
        s.flush()
        mp.write_care_record(s, care_type="Employee", data={"jobTitle": "Deputy Manager"},
                             integration_id=plan.integration_id, run_id=later.id, stream="hr", external_id="x",
                             system="bamboohr", record_id=record.id)
        kept_id = record.id
    with db.session() as s:
        report = mp.rollback_run(s, run.id, actor="admin")
    assert report.kept_changed_later == 1 and report.removed == 38
    with db.session() as s:
        assert mp.care_snapshot(s)[kept_id]["jobTitle"] == "Deputy Manager"


def test_file_exchange_system_uses_the_mapping_engine_templates_end_to_end(db: Any) -> None:
    with db.session() as s:
        plan = mp.create_plan(s, name="Elm Lodge", legacy_system_id="legacy_care_files",
                              data_types=["Resident", "Allergy"], actor="a")
        rows = mp.template_rows(plan)
        assert {"care_type": "Resident", "column": "nhs_number", "field": "nhsNumber", "convert": "nhs_number"} in rows
        mp.accept_mapping(s, plan.id, "a")
        report = mp.dry_run(s, plan.id, "a")
        assert report["summary"]["invalid_records"] == 3 and report["summary"]["duplicates"] == 1
        residents = mp.add_phase(s, plan.id, name="Residents", data_types=["Resident"], actor="a")
        allergies = mp.add_phase(s, plan.id, name="Allergies", data_types=["Allergy"], actor="a")
        before = mp.care_snapshot(s)
    with db.session() as s:
        mp.run_phase(s, residents.id, "a")
        mp.run_phase(s, allergies.id, "a")
    with db.session() as s:
        residents_now = mp.care_snapshot(s, ["Resident"])
        refs = [v["residentRef"] for v in mp.care_snapshot(s, ["Allergy"]).values()]
        linked = [r for r in refs if r in residents_now]  # pointing at the migrated resident, not the legacy id
        assert len(refs) == 20 and len(linked) >= 16
        assert mp.reconcile(s, residents.id, "a")["passed"] is True
        assert mp.reconcile(s, allergies.id, "a")["accuracy_pct"] == 100.0
    with db.session() as s:
        mp.roll_back_phase(s, allergies.id, "a", "redo")
        mp.roll_back_phase(s, residents.id, "a", "redo")
    with db.session() as s:
        assert mp.care_snapshot(s) == before
