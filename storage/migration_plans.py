"""Migration plans end to end: wizard state, dry run, phases, run, reconcile, cut over and roll back.

Also the versioned care-store writes a migration phase makes (with lineage and external links).
Rolling a phase back uses the one run rollback of :mod:`storage.care_store`.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, col, select

from engine.migration.criteria import DEFAULT_ROLLBACK, DEFAULT_SUCCESS, any_hold, evaluate
from engine.migration.legacy import (
    LEGACY_SYSTEMS,
    LegacySystem,
    sample_export,
)
from engine.migration.quality import assess, summary
from storage.audit import record_audit
from storage.care_store import RollbackRefused, RollbackReport, rollback_run_in
from storage.models import (
    CareRecord,
    CareRecordVersion,
    DataOwnership,
    ExternalLink,
    FieldLineage,
    Integration,
    IntegrationError,
    MigrationPhase,
    MigrationPlan,
    RecordOutcome,
    RunStatus,
    RunTrigger,
    SyncRun,
    SyncRunEvent,
    utcnow,
)

WIZARD_STEPS = ("choose", "mapping", "dry_run", "phases", "run", "reconcile", "cutover")
WCN = "writecarenotes"


class MigrationError(ValueError):
    """A migration step cannot be done now; the message says why in plain English."""


def content_hash(data: dict[str, Any]) -> str:
    """SHA-256 of the record's canonical JSON."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------- care store writes and rollback


@dataclass
class WriteResult:
    """What a care-store write did."""

    record: CareRecord
    kind: str  # created, updated, unchanged
    before: dict[str, Any]


def write_care_record(session: Session, *, care_type: str, data: dict[str, Any], integration_id: str, run_id: str,
                      stream: str, external_id: str, system: str, actor: str = "system",
                      record_id: str | None = None) -> WriteResult:
    """Create or update a care record with a new version, field lineage and the external link.

    With ``record_id`` the data is merged into that record; otherwise the external link decides, and a
    record is created when there is none.
    """
    link = session.exec(select(ExternalLink).where(ExternalLink.integration_id == integration_id,
                                                   ExternalLink.stream == stream,
                                                   ExternalLink.external_id == external_id)).first()
    target_id = record_id or (link.record_id if link and not link.deleted else None)
    record = session.get(CareRecord, target_id) if target_id else None
    if record is not None and record.deleted_at is not None:
        record = None
    now = utcnow()
    if record is None:
        record = CareRecord(care_type=care_type, data=dict(data), content_hash=content_hash(data), origin=system,
                            created_at=now, updated_at=now)
        session.add(record)
        session.flush()
        kind, before = "create", {}
    else:
        before = dict(record.data)
        merged = {**before, **data}
        _ensure_baseline(session, record)
        if merged == before:
            _link(session, link, integration_id, stream, external_id, record.id, run_id, record.content_hash)
            return WriteResult(record, "unchanged", before)
        record.data = merged
        record.content_hash = content_hash(merged)
        record.version += 1
        record.origin = system
        record.updated_at = now
        session.add(record)
        kind = "update"
    session.add(CareRecordVersion(record_id=record.id, version=record.version, data=dict(record.data),
                                  content_hash=record.content_hash, change_kind=kind, integration_id=integration_id,
                                  run_id=run_id, changed_by=actor, changed_at=now))
    for name in data:
        lineage = session.get(FieldLineage, (record.id, name)) or FieldLineage(record_id=record.id, field=name)
        lineage.system, lineage.integration_id, lineage.run_id = system, integration_id, run_id
        lineage.stream, lineage.source_record_id, lineage.updated_at = stream, external_id, now
        session.add(lineage)
    _link(session, link, integration_id, stream, external_id, record.id, run_id, record.content_hash)
    return WriteResult(record, "created" if kind == "create" else "updated", before)


def _ensure_baseline(session: Session, record: CareRecord) -> None:
    """Record the current state as a version when history lacks it, so a rollback can return to it."""
    known = session.exec(select(CareRecordVersion.id).where(CareRecordVersion.record_id == record.id,
                                                            CareRecordVersion.version == record.version)).first()
    if known is None:
        session.add(CareRecordVersion(record_id=record.id, version=record.version, data=dict(record.data),
                                      content_hash=record.content_hash or content_hash(record.data),
                                      change_kind="baseline", changed_by="system", changed_at=record.updated_at))


def _link(session: Session, link: ExternalLink | None, integration_id: str, stream: str, external_id: str,
          record_id: str, run_id: str, digest: str) -> None:
    if link is None:
        link = ExternalLink(integration_id=integration_id, stream=stream, external_id=external_id, record_id=record_id)
    link.record_id, link.last_run_id, link.content_hash, link.deleted = record_id, run_id, digest, False
    session.add(link)


def rollback_run(session: Session, run_id: str, *, actor: str, reason: str = "") -> RollbackReport:
    """Undo every care-store write of a run (see :func:`storage.care_store.rollback_run_in`)."""
    try:
        return rollback_run_in(session, run_id, actor=actor, reason=reason)
    except RollbackRefused as exc:
        raise MigrationError(str(exc)) from exc


def care_snapshot(session: Session, care_types: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every live care record's data by id (optionally of some care types): the store's visible state."""
    query = select(CareRecord).where(col(CareRecord.deleted_at).is_(None))
    if care_types:
        query = query.where(col(CareRecord.care_type).in_(care_types))
    return {r.id: dict(r.data) for r in session.exec(query).all()}


# ---------------------------------------------------------------- plans and the wizard


def legacy_system(system_id: str) -> LegacySystem:
    """The legacy system called ``system_id``."""
    try:
        return LEGACY_SYSTEMS[system_id]
    except KeyError as exc:
        raise MigrationError(f"Unknown legacy system '{system_id}'.") from exc


def create_plan(session: Session, *, name: str, legacy_system_id: str, data_types: list[str],
                actor: str) -> MigrationPlan:
    """Start a migration plan (and the integration its runs belong to)."""
    system = legacy_system(legacy_system_id)
    name = name.strip()
    if not name:
        raise MigrationError("Give the migration a name, such as the home's name.")
    unknown = [t for t in data_types if t not in system.care_types]
    if not data_types or unknown:
        raise MigrationError(f"Choose data types that {system.name} exports: {', '.join(system.care_types)}.")
    integration = Integration(name=f"Migration: {name}", connector_id=f"legacy-{system.id}",
                              integration_type="migration", system_name=system.name, status="active",
                              created_by=actor)
    session.add(integration)
    session.flush()
    plan = MigrationPlan(name=name, legacy_system=system.id, integration_id=integration.id,
                         data_types=list(data_types), wizard_step="mapping", created_by=actor)
    session.add(plan)
    session.flush()
    record_audit(session, actor=actor, action="migration.create", entity_type="migration_plan",
                 entity_id=plan.id, detail={"legacy_system": system.id, "data_types": data_types})
    return plan


def get_plan(session: Session, plan_id: str) -> MigrationPlan:
    """The plan, or a MigrationError when it does not exist."""
    plan = session.get(MigrationPlan, plan_id)
    if plan is None:
        raise MigrationError("That migration plan does not exist.")
    return plan


def list_plans(session: Session) -> list[MigrationPlan]:
    """Every plan, newest first."""
    return list(session.exec(select(MigrationPlan).order_by(col(MigrationPlan.created_at).desc())).all())


def set_step(session: Session, plan_id: str, step: str, **state: Any) -> MigrationPlan:
    """Move the wizard to ``step`` and merge ``state`` into its saved state (so a reload resumes)."""
    if step not in WIZARD_STEPS:
        raise MigrationError(f"Unknown wizard step '{step}'.")
    plan = get_plan(session, plan_id)
    plan.wizard_step = step
    plan.wizard_state = {**plan.wizard_state, **state}
    session.add(plan)
    return plan


def template_rows(plan: MigrationPlan) -> list[dict[str, str]]:
    """The mapping template as rows: care type, export column, care field, conversion."""
    system = legacy_system(plan.legacy_system)
    return [{"care_type": t, **row} for t in plan.data_types for row in system.template(t).describe()]


def accept_mapping(session: Session, plan_id: str, actor: str) -> MigrationPlan:
    """Use the legacy system's template as the plan's mapping."""
    plan = get_plan(session, plan_id)
    plan = set_step(session, plan_id, "dry_run", mapping={"template": plan.legacy_system,
                                                          "rows": template_rows(plan)})
    record_audit(session, actor=actor, action="migration.mapping", entity_type="migration_plan", entity_id=plan_id)
    return plan


def _existing(session: Session, care_type: str) -> dict[str, dict[str, Any]]:
    return care_snapshot(session, [care_type])


def dry_run(session: Session, plan_id: str, actor: str) -> dict[str, Any]:
    """Validate the legacy export without writing: counts, duplicates, invalid fields, accuracy, matches.

    Sure matches are confirmed automatically; possible ones wait for a person (:func:`decide_match`).
    """
    plan = get_plan(session, plan_id)
    if "mapping" not in plan.wizard_state:
        raise MigrationError("Choose the mapping before the dry run.")
    system = legacy_system(plan.legacy_system)
    reports = [assess(system.template(t), sample_export(system.id, t), _existing(session, t)) for t in plan.data_types]
    decisions: dict[str, dict[str, str]] = {}
    for report in reports:
        kept = plan.wizard_state.get("decisions", {}).get(report.care_type, {})
        chosen = {row["id"]: str(row["record_id"]) for row in report.matched}
        chosen.update({key: value for key, value in kept.items()
                       if any(p["id"] == key for p in report.possible)})
        decisions[report.care_type] = chosen
    result: dict[str, Any] = {"at": utcnow().isoformat(), "types": [r.as_dict() for r in reports],
                              "summary": summary(reports)}
    set_step(session, plan_id, "dry_run", dry_run=result, decisions=decisions)
    record_audit(session, actor=actor, action="migration.dry_run", entity_type="migration_plan", entity_id=plan_id,
                 detail=result["summary"])
    return result


def unconfirmed(plan: MigrationPlan, care_types: list[str] | None = None) -> list[dict[str, Any]]:
    """Possible matches nobody has confirmed or rejected yet."""
    report = plan.wizard_state.get("dry_run") or {}
    decisions = plan.wizard_state.get("decisions", {})
    return [{**p, "care_type": t["care_type"]} for t in report.get("types", [])
            if care_types is None or t["care_type"] in care_types
            for p in t["possible"] if p["id"] not in decisions.get(t["care_type"], {})]


def decide_match(session: Session, plan_id: str, care_type: str, legacy_id: str, same_person: bool,
                 actor: str) -> MigrationPlan:
    """A person confirms (same person: update that record) or rejects (a new record) a possible match."""
    plan = get_plan(session, plan_id)
    report = plan.wizard_state.get("dry_run") or {}
    possible = [p for t in report.get("types", []) if t["care_type"] == care_type for p in t["possible"]
                if p["id"] == legacy_id]
    if not possible:
        raise MigrationError(f"{legacy_id} is not a possible match waiting for a decision.")
    decisions = {k: dict(v) for k, v in plan.wizard_state.get("decisions", {}).items()}
    decisions.setdefault(care_type, {})[legacy_id] = str(possible[0]["record_id"]) if same_person else "new"
    plan.wizard_state = {**plan.wizard_state, "decisions": decisions}
    session.add(plan)
    record_audit(session, actor=actor, action="migration.match", entity_type="migration_plan", entity_id=plan_id,
                 detail={"care_type": care_type, "legacy_id": legacy_id, "same_person": same_person})
    return plan


def _parse_day(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise MigrationError(f"'{value}' is not a date (use YYYY-MM-DD).") from exc
    return None


def add_phase(session: Session, plan_id: str, *, name: str, data_types: list[str], start: Any = None,
              end: Any = None, success_criteria: list[dict[str, Any]] | None = None,
              rollback_triggers: list[dict[str, Any]] | None = None, actor: str) -> MigrationPhase:
    """Plan a phase: its data types, dates, success criteria and rollback triggers."""
    plan = get_plan(session, plan_id)
    if not name.strip():
        raise MigrationError("Give the phase a name.")
    if not data_types or any(t not in plan.data_types for t in data_types):
        raise MigrationError(f"A phase migrates some of the plan's data types: {', '.join(plan.data_types)}.")
    start_day, end_day = _parse_day(start), _parse_day(end)
    if start_day and end_day and end_day < start_day:
        raise MigrationError("The phase must end on or after the day it starts.")
    taken = {t for p in phases(session, plan_id) if p.status != "rolled_back" for t in p.data_types}
    clash = sorted(taken & set(data_types))
    if clash:
        raise MigrationError(f"{', '.join(clash)} already belong to another phase.")
    phase = MigrationPhase(plan_id=plan_id, phase_name=name.strip(), position=len(phases(session, plan_id)),
                           data_types=list(data_types), start_date=start_day, end_date=end_day,
                           success_criteria=list(success_criteria if success_criteria is not None else DEFAULT_SUCCESS),
                           rollback_triggers=list(rollback_triggers if rollback_triggers is not None
                                                  else DEFAULT_ROLLBACK),
                           validation_checks=["required fields", "NHS/NI number check digits", "dates"])
    session.add(phase)
    session.flush()
    record_audit(session, actor=actor, action="migration.phase.add", entity_type="migration_phase",
                 entity_id=phase.id, detail={"plan_id": plan_id, "data_types": data_types})
    return phase


def phases(session: Session, plan_id: str) -> list[MigrationPhase]:
    """The plan's phases in order."""
    return list(session.exec(select(MigrationPhase).where(MigrationPhase.plan_id == plan_id)
                             .order_by(col(MigrationPhase.position))).all())


def get_phase(session: Session, phase_id: str) -> MigrationPhase:
    """The phase, or a MigrationError."""
    phase = session.get(MigrationPhase, phase_id)
    if phase is None:
        raise MigrationError("That phase does not exist.")
    return phase


def _ownership_rows(session: Session, integration_id: str, care_types: list[str]) -> list[DataOwnership]:
    return list(session.exec(select(DataOwnership).where(DataOwnership.integration_id == integration_id,
                                                         col(DataOwnership.care_type).in_(care_types))).all())


def _ownership_dict(row: DataOwnership) -> dict[str, Any]:
    return {"care_type": row.care_type, "primary_system": row.primary_system, "sync_direction": row.sync_direction,
            "update_permissions": list(row.update_permissions), "conflict_resolution": row.conflict_resolution}


def _set_ownership(session: Session, integration_id: str, care_type: str, values: dict[str, Any]) -> None:
    row = session.exec(select(DataOwnership).where(DataOwnership.integration_id == integration_id,
                                                   DataOwnership.care_type == care_type)).first()
    row = row or DataOwnership(integration_id=integration_id, care_type=care_type)
    for key, value in values.items():
        if key != "care_type":
            setattr(row, key, value)
    session.add(row)


def run_phase(session: Session, phase_id: str, actor: str) -> SyncRun:
    """Migrate the phase's data types: a ``migration`` run writes valid records to the care store.

    Confirmed matches update the existing record; the rest become new records. Invalid records go to
    the errors inbox; the second of a duplicate pair is skipped. Rollback triggers are checked after.
    """
    phase = get_phase(session, phase_id)
    plan = get_plan(session, phase.plan_id)
    if phase.status not in ("planned", "rolled_back"):
        raise MigrationError(f"This phase has already run (it is {phase.status.replace('_', ' ')}).")
    if plan.integration_id is None:
        raise MigrationError("The plan has no integration to run under.")
    waiting = unconfirmed(plan, list(phase.data_types))
    if waiting:
        raise MigrationError(f"Confirm or reject {len(waiting)} possible matches before running this phase.")
    integration_id = plan.integration_id
    system = legacy_system(plan.legacy_system)
    started = utcnow()
    run = SyncRun(integration_id=integration_id, trigger=RunTrigger.MIGRATION.value, status=RunStatus.RUNNING.value,
                  direction="inbound", params={"plan_id": plan.id, "phase_id": phase.id}, queued_at=started,
                  started_at=started, requested_by=actor)
    session.add(run)
    session.flush()
    before = {t: _ownership_dict(r) for t in phase.data_types for r in _ownership_rows(session, integration_id, [t])}
    for care_type in phase.data_types:
        _set_ownership(session, integration_id, care_type, {"primary_system": "external", "sync_direction": "inbound",
                                                            "update_permissions": ["external"],
                                                            "conflict_resolution": "primary_wins"})
    session.add(SyncRunEvent(run_id=run.id, kind="started", message=f"Phase '{phase.phase_name}' started by {actor}"))
    counts: dict[str, int] = defaultdict(int)
    decisions = plan.wizard_state.get("decisions", {})
    duplicates = {t["care_type"]: t["duplicates"] for t in (plan.wizard_state.get("dry_run") or {}).get("types", [])}
    for care_type in phase.data_types:
        template = system.template(care_type)
        rows = sample_export(system.id, care_type)
        skip = {key: group[0] for group in duplicates.get(care_type, []) for key in group[1:]}
        for row in rows:
            key = str(row.get(template.id_column, ""))
            counts["read"] += 1
            record, problems = template.map(row)
            if care_type == "Allergy" and "residentRef" in record:
                link = session.exec(select(ExternalLink).where(ExternalLink.integration_id == integration_id,
                                                               ExternalLink.stream == "Resident",
                                                               ExternalLink.external_id == record["residentRef"])).first()
                if link is not None:
                    record["residentRef"] = link.record_id
            if key in skip:
                counts["skipped"] += 1
                session.add(RecordOutcome(run_id=run.id, stream=care_type, care_type=care_type, external_id=key,
                                          outcome="skipped", reason=f"Duplicate of {skip[key]} in the export",
                                          after=record))
                continue
            if problems:
                counts["failed"] += 1
                name, problem = sorted(problems.items())[0]
                message = f"{care_type} {key}: {name} {problem}"
                session.add(RecordOutcome(run_id=run.id, stream=care_type, care_type=care_type, external_id=key,
                                          outcome="failed", reason=message, after=record))
                session.add(IntegrationError(
                    integration_id=integration_id, run_id=run.id, error_type="validation", error_code="invalid_field",
                    error_message=message, stream=care_type, record_id=key,
                    error_details={"field": name, "value": record.get(name), "problem": problem, "record": record,
                                   "care_type": care_type, "external_id": key, "stream": care_type,
                                   "system": system.name}))
                continue
            target = decisions.get(care_type, {}).get(key)
            result = write_care_record(session, care_type=care_type, data=record, integration_id=integration_id,
                                       run_id=run.id, stream=care_type, external_id=key, system=system.id,
                                       actor=actor, record_id=None if target in (None, "new") else target)
            counts[result.kind] += 1
            counts["written"] += result.kind != "unchanged"
            session.add(RecordOutcome(run_id=run.id, stream=care_type, care_type=care_type, external_id=key,
                                      record_id=result.record.id, outcome="written" if result.kind != "unchanged"
                                      else "unchanged", reason=result.kind, before=result.before,
                                      after=dict(result.record.data)))
    finished = utcnow()
    run.counts = dict(counts)
    run.finished_at = finished
    run.status = RunStatus.SUCCEEDED.value if counts["failed"] < counts["read"] else RunStatus.FAILED.value
    if counts["failed"]:
        run.error = f"{counts['failed']} records failed validation and wait in the errors inbox."
    session.add(run)
    session.add(SyncRunEvent(run_id=run.id, kind="finished", message=f"{counts['written']} written, "
                             f"{counts['failed']} failed, {counts['skipped']} skipped", data=dict(counts)))
    metrics = {"failed_records": float(counts["failed"]),
               "error_rate_pct": round(100.0 * counts["failed"] / counts["read"], 2) if counts["read"] else 0.0,
               "duration_seconds": round((finished - started).total_seconds(), 2),
               "unconfirmed_matches": float(len(unconfirmed(plan, list(phase.data_types))))}
    triggers = evaluate(phase.rollback_triggers, metrics)
    phase.status, phase.run_id = "ran", run.id
    phase.report = {"ownership_before": before, "run_metrics": metrics, "counts": dict(counts),
                    "triggers": [v.text for v in triggers if v.holds], "ran_at": finished.isoformat()}
    session.add(phase)
    set_step(session, plan.id, "reconcile", phase_id=phase.id)
    record_audit(session, actor=actor, action="migration.phase.run", entity_type="migration_phase",
                 entity_id=phase.id, detail={"run_id": run.id, **dict(counts)})
    return run


def reconcile(session: Session, phase_id: str, actor: str) -> dict[str, Any]:
    """Compare the legacy export with the care store: missing records, differing fields, accuracy.

    Every valid, non-duplicate export row should have a live care record holding the same values.
    Success criteria and rollback triggers are evaluated on the result.
    """
    phase = get_phase(session, phase_id)
    plan = get_plan(session, phase.plan_id)
    if phase.status not in ("ran", "reconciled"):
        raise MigrationError("Run the phase before reconciling it.")
    system = legacy_system(plan.legacy_system)
    dupes = {t["care_type"]: {k for g in t["duplicates"] for k in g[1:]}
             for t in (plan.wizard_state.get("dry_run") or {}).get("types", [])}
    compared = mismatched = missing = expected = 0
    differences: list[dict[str, Any]] = []
    for care_type in phase.data_types:
        template = system.template(care_type)
        for row in sample_export(system.id, care_type):
            key = str(row.get(template.id_column, ""))
            record, problems = template.map(row)
            if key in dupes.get(care_type, set()) or problems:
                continue
            expected += 1
            link = session.exec(select(ExternalLink).where(ExternalLink.integration_id == plan.integration_id,
                                                           ExternalLink.stream == care_type,
                                                           ExternalLink.external_id == key)).first()
            stored = session.get(CareRecord, link.record_id) if link and not link.deleted else None
            if stored is None or stored.deleted_at is not None:
                missing += 1
                differences.append({"care_type": care_type, "id": key, "field": "", "problem": "missing"})
                continue
            for name, value in record.items():
                if name in ("residentRef", "externalRefs"):
                    continue
                compared += 1
                if stored.data.get(name) != value:
                    mismatched += 1
                    differences.append({"care_type": care_type, "id": key, "field": name, "problem": "differs"})
    accuracy = round(100.0 * (compared - mismatched) / compared, 3) if compared else 100.0
    metrics = {**phase.report.get("run_metrics", {}), "accuracy_pct": accuracy, "missing_records": float(missing),
               "mismatched_fields": float(mismatched),
               "unconfirmed_matches": float(len(unconfirmed(plan, list(phase.data_types))))}
    success = evaluate(phase.success_criteria, metrics)
    triggers = evaluate(phase.rollback_triggers, metrics)
    result = {"at": utcnow().isoformat(), "expected": expected, "compared_fields": compared,
              "mismatched_fields": mismatched, "missing": missing, "accuracy_pct": accuracy,
              "differences": differences[:200], "metrics": metrics,
              "success": [{"text": v.text, "holds": v.holds} for v in success],
              "triggers": [{"text": v.text, "holds": v.holds} for v in triggers],
              "passed": all(v.holds for v in success), "rollback_advised": any_hold(triggers)}
    phase.report = {**phase.report, "reconcile": result}
    phase.status = "reconciled"
    session.add(phase)
    set_step(session, plan.id, "reconcile", phase_id=phase.id)
    record_audit(session, actor=actor, action="migration.phase.reconcile", entity_type="migration_phase",
                 entity_id=phase.id, detail={k: result[k] for k in ("expected", "missing", "accuracy_pct", "passed")})
    return result


def cut_over(session: Session, phase_id: str, actor: str, override_reason: str = "") -> MigrationPhase:
    """Hand ownership of the phase's care types to WriteCareNotes (needs a passing reconciliation)."""
    phase = get_phase(session, phase_id)
    plan = get_plan(session, phase.plan_id)
    result = phase.report.get("reconcile")
    if phase.status != "reconciled" or not result:
        raise MigrationError("Reconcile the phase before cutting over.")
    if not result["passed"] and not override_reason.strip():
        raise MigrationError("The success criteria are not met: roll back, or give a reason to cut over anyway.")
    if result.get("rollback_advised") and not override_reason.strip():
        raise MigrationError("A rollback trigger fired: roll back, or give a reason to cut over anyway.")
    assert plan.integration_id is not None
    for care_type in phase.data_types:
        _set_ownership(session, plan.integration_id, care_type, {
            "primary_system": WCN, "sync_direction": "outbound", "update_permissions": [WCN],
            "conflict_resolution": "primary_wins"})
    phase.status = "cut_over"
    phase.report = {**phase.report, "cutover": {"at": utcnow().isoformat(), "by": actor,
                                                "override_reason": override_reason.strip()}}
    session.add(phase)
    all_done = all(p.status == "cut_over" for p in phases(session, plan.id) if p.id != phase.id)
    plan.status = "cut_over" if all_done else "in_progress"
    session.add(plan)
    set_step(session, plan.id, "cutover", phase_id=phase.id)
    record_audit(session, actor=actor, action="migration.cutover", entity_type="migration_phase", entity_id=phase.id,
                 detail={"care_types": list(phase.data_types), "override_reason": override_reason.strip()})
    return phase


def roll_back_phase(session: Session, phase_id: str, actor: str, reason: str) -> RollbackReport:
    """Undo every write of the phase from version history and restore the ownership it had before."""
    phase = get_phase(session, phase_id)
    plan = get_plan(session, phase.plan_id)
    if not reason.strip():
        raise MigrationError("Say why the phase is being rolled back (it goes in the audit log).")
    if phase.status not in ("ran", "reconciled", "cut_over") or not phase.run_id:
        raise MigrationError("Only a phase that has run can be rolled back.")
    report = rollback_run(session, phase.run_id, actor=actor, reason=reason)
    assert plan.integration_id is not None
    before = phase.report.get("ownership_before", {})
    for row in _ownership_rows(session, plan.integration_id, list(phase.data_types)):
        if row.care_type in before:
            _set_ownership(session, plan.integration_id, row.care_type, before[row.care_type])
        else:
            session.delete(row)
    phase.status = "rolled_back"
    phase.report = {**phase.report, "rollback": {"at": utcnow().isoformat(), "by": actor, "reason": reason.strip(),
                                                 **report.as_dict()}}
    session.add(phase)
    plan.status = "in_progress"
    session.add(plan)
    set_step(session, plan.id, "cutover", phase_id=phase.id)
    record_audit(session, actor=actor, action="migration.rollback", entity_type="migration_phase", entity_id=phase.id,
                 detail={**report.as_dict(), "reason": reason.strip()})
    return report


def cutover_report(session: Session, plan_id: str) -> dict[str, Any]:
    """Everything the printable cutover report shows: plan, dry run, and each phase's outcome."""
    plan = get_plan(session, plan_id)
    ownership = [] if plan.integration_id is None else [
        _ownership_dict(r) for r in session.exec(select(DataOwnership).where(
            DataOwnership.integration_id == plan.integration_id)).all()]
    return {"plan": {"id": plan.id, "name": plan.name, "legacy_system": legacy_system(plan.legacy_system).name,
                     "data_types": list(plan.data_types), "status": plan.status, "created_by": plan.created_by,
                     "created_at": _iso(plan.created_at)},
            "dry_run": (plan.wizard_state.get("dry_run") or {}).get("summary", {}),
            "phases": [{"name": p.phase_name, "data_types": list(p.data_types), "status": p.status,
                        "start": p.start_date.isoformat() if p.start_date else "",
                        "end": p.end_date.isoformat() if p.end_date else "", "run_id": p.run_id,
                        "counts": p.report.get("counts", {}), "reconcile": p.report.get("reconcile", {}),
                        "cutover": p.report.get("cutover", {}), "rollback": p.report.get("rollback", {})}
                       for p in phases(session, plan_id)],
            "ownership": ownership, "generated_at": utcnow().isoformat()}


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""
