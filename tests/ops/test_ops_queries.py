"""Timeline, run detail, errors inbox and health queries on a real database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import ops_seed as seed
import pytest
from sqlmodel import select

from storage import ops_queries as oq
from storage.models import AuditLog, CareRecord, ExternalLink, IntegrationError, SyncRun, utcnow


def test_timeline_buckets_and_pages_agree_with_counts(db: Any) -> None:
    ids = seed.integrations(db)
    now = utcnow()
    seed.bulk_runs(db, ids, 600, days=30, now=now)
    with db.session() as s:
        flt = oq.TimelineFilter.period("month", end=now + timedelta(seconds=1))
        total = oq.count_runs(s, flt)
        assert total == 600
        buckets = oq.timeline_buckets(s, flt, 86400)
        assert sum(b.runs for b in buckets) == 600
        assert {b.status for b in buckets} == {"succeeded", "failed"}
        assert all(0 < b.avg_seconds < 402 for b in buckets)
        failed = oq.TimelineFilter.period("month", end=now + timedelta(seconds=1), statuses=["failed"],
                                          integration_ids=[ids[0]])
        rows, n = oq.runs_page(s, failed, page=1, page_size=5)
        assert n == len([i for i in range(600) if i % 97 == 0 and i % 3 == 0])
        assert all(r.status == "failed" and r.integration == "Xero finance" for r in rows)
        bars = oq.timeline_bars(s, flt, limit=50)
        assert len(bars) == 50 and bars == sorted(bars, key=lambda b: b.start)
        day = oq.TimelineFilter.period("day", end=now + timedelta(seconds=1))
        assert oq.count_runs(s, day) < 60


def test_run_detail_outcomes_and_diff(db: Any) -> None:
    (iid,) = seed.integrations(db, ("BambooHR staff",))
    run_id, _ = seed.failed_run_with_error(db, iid)
    with db.session() as s:
        detail = oq.run_detail(s, run_id)
        assert detail is not None and detail.integration == "BambooHR staff"
        assert [e.kind for e in detail.events] == ["started", "page_read", "finished"]
        assert detail.outcome_counts == {"written": 1, "failed": 1}
        rows, total = oq.outcomes_page(s, run_id, outcome="failed")
        assert total == 1 and rows[0].external_id == "P-2"
        assert oq.run_detail(s, "nope") is None
    changes = oq.diff({"a": 1, "b": 2}, {"b": 3, "c": 4})
    assert [(c.field, c.kind) for c in changes] == [("a", "removed"), ("b", "changed"), ("c", "added")]


def test_errors_grouped_explained_and_fixed_by_resubmitting(db: Any) -> None:
    (iid,) = seed.integrations(db, ("BambooHR staff",))
    run_id, error_id = seed.failed_run_with_error(db, iid)
    with db.session() as s:
        s.add(IntegrationError(integration_id=iid, error_type="auth", error_code="401", error_message="Unauthorized"))
    with db.session() as s:
        groups = oq.error_groups(s)
        assert [(g.error_type, g.count) for g in groups] == [("auth", 1), ("validation", 1)] or \
            {(g.error_type, g.count) for g in groups} == {("auth", 1), ("validation", 1)}
        validation = next(g for g in groups if g.error_type == "validation")
        assert "edit" in validation.explanation.actions and "value" in validation.explanation.cause
    with db.session() as s, pytest.raises(oq.OpsError, match="not a valid NHS number"):
        oq.resubmit_with_value(s, error_id, "nhsNumber", "9990000001", "admin@x")
    with db.session() as s:
        record = oq.resubmit_with_value(s, error_id, "nhsNumber", "999 000 0026", "admin@x")
        record_id = record.id
    with db.session() as s:
        stored = s.get(CareRecord, record_id)
        assert stored is not None and stored.data["nhsNumber"] == "999 000 0026"
        error = s.get(IntegrationError, error_id)
        assert error is not None and error.resolved and error.resolution_action == "edited"
        assert oq.resolution_minutes(error) is not None
        assert s.exec(select(ExternalLink).where(ExternalLink.external_id == "P-2")).one().record_id == record_id
        assert [o.outcome for o in oq.outcomes_page(s, run_id)[0]] == ["written", "failed", "written"]
        assert [f.field for f in oq.lineage(s, record_id)] == sorted(stored.data)
        assert s.exec(select(AuditLog).where(AuditLog.action == "error.edited")).one().actor == "admin@x"
    with db.session() as s, pytest.raises(oq.OpsError, match="already dealt"):
        oq.ignore_error(s, error_id, "dup", "admin@x")


def test_retry_ignore_map_and_limits(db: Any) -> None:
    (iid,) = seed.integrations(db, ("Xero finance",))
    with db.session() as s:
        errs = [IntegrationError(integration_id=iid, error_type="vendor", error_code="500", stream="invoices",
                                 record_id=f"INV-{i}", error_details={"external_id": f"INV-{i}", "stream": "invoices"})
                for i in range(3)]
        s.add_all(errs)
        target = CareRecord(care_type="Invoice", data={"number": "INV-9"})
        s.add(target)
        s.flush()
        ids = [e.id for e in errs]
        target_id = target.id
    with db.session() as s:
        plans = oq.retry_errors(s, ids[:2], "admin@x")
        assert list(plans) == [iid] and plans[iid]["error_ids"] == ids[:2]
        assert plans[iid]["record_ids"] == ["INV-0", "INV-1"]
        run_id = oq.queue_retry_run(s, iid, plans[iid], "admin@x")
    with db.session() as s:
        run = s.get(SyncRun, run_id)
        assert run is not None and run.trigger == "retry" and run.status == "queued"
        assert s.get(IntegrationError, ids[0]).retry_count == 1  # type: ignore[union-attr]
        with pytest.raises(oq.OpsError, match="Say why"):
            oq.ignore_error(s, ids[0], "  ", "admin@x")
    with db.session() as s:
        oq.ignore_error(s, ids[0], "duplicate invoice", "admin@x")
        oq.map_to_record(s, ids[1], target_id, "admin@x")
        with pytest.raises(oq.OpsError, match="no care record"):
            oq.map_to_record(s, ids[2], "missing", "admin@x")
    with db.session() as s:
        link = s.exec(select(ExternalLink).where(ExternalLink.external_id == "INV-1")).one()
        assert link.record_id == target_id
        e = s.get(IntegrationError, ids[2])
        assert e is not None
        e.retry_count = 3
        s.add(e)
    with db.session() as s, pytest.raises(oq.OpsError, match="limit"):
        oq.retry_errors(s, [ids[2]], "admin@x")


def test_health_figures_against_targets(db: Any) -> None:
    ids = seed.integrations(db)
    now = utcnow()
    seed.bulk_runs(db, ids, 300, days=10, now=now)
    seed.failed_run_with_error(db, ids[0], minutes_ago=200)
    with db.session() as s:
        overall, per = oq.health(s, now=now)
        assert overall.runs == 301
        assert overall.success_pct is not None and 95 < overall.success_pct < 100
        assert overall.meets()["success_pct"] is False  # 1 in 97 fails: below 99.5 %
        assert overall.p95_duration_seconds is not None and overall.p95_duration_seconds <= 400
        assert overall.aged_errors == 1 and overall.open_errors == 1
        assert len(per) == 3 and all(h.uptime_pct is not None for h in per)
        trend = oq.daily_trend(s, now=now)
        assert len(trend) == 14 and sum(d["runs"] for d in trend) >= 200
        assert [e.run_id for e in oq.aged_errors(s, now=now)] != []
        assert len(oq.failed_runs_since(s, now - timedelta(days=1))) >= 0


def test_conflict_keep_incoming_writes_a_version_and_keep_local_changes_nothing(db: Any) -> None:
    (iid,) = seed.integrations(db, ("BambooHR staff",))
    with db.session() as s:
        record = CareRecord(care_type="Employee", data={"givenName": "Ruth", "jobTitle": "Carer"})
        s.add(record)
        s.flush()
        errors = [IntegrationError(integration_id=iid, error_type="conflict", error_code="manual_review",
                                   record_id=record.id, stream="employees",
                                   error_details={"external_id": f"E{i}", "local": dict(record.data),
                                                  "incoming": {"givenName": "Ruth", "jobTitle": "Senior Carer"}})
                  for i in range(2)]
        s.add_all(errors)
        s.flush()
        record_id, ids = record.id, [e.id for e in errors]
    with db.session() as s:
        oq.resolve_conflict(s, ids[0], "writecarenotes", "admin@x")
    with db.session() as s:
        assert s.get(CareRecord, record_id).data["jobTitle"] == "Carer"  # type: ignore[union-attr]
        oq.resolve_conflict(s, ids[1], "incoming", "admin@x")
    with db.session() as s:
        stored = s.get(CareRecord, record_id)
        assert stored is not None and stored.data["jobTitle"] == "Senior Carer" and stored.version == 2
        assert s.get(IntegrationError, ids[1]).resolution_action == "kept_incoming"  # type: ignore[union-attr]
        with pytest.raises(oq.OpsError, match="already dealt"):
            oq.resolve_conflict(s, ids[1], "incoming", "admin@x")
