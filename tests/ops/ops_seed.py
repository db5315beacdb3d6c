"""Test and benchmark data for the operate pages: integrations, many runs, a failed run with errors."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert

from storage.models import Integration, IntegrationError, RecordOutcome, SyncRun, SyncRunEvent, utcnow


def integrations(db: Any, names: tuple[str, ...] = ("Xero finance", "BambooHR staff", "Deputy rota")) -> list[str]:
    """Active integrations with the given names; returns their ids."""
    ids = []
    with db.session() as s:
        for i, name in enumerate(names):
            row = Integration(name=name, connector_id=["xero", "bamboohr", "deputy", "nhs_pds"][i % 4], status="active",
                              last_success=utcnow())
            s.add(row)
            s.flush()
            ids.append(row.id)
    return ids


def bulk_runs(db: Any, integration_ids: list[str], count: int, *, days: int = 90, fail_every: int = 97,
              now: datetime | None = None, seed: int = 7) -> None:
    """``count`` finished runs spread over the last ``days`` days, inserted in bulk."""
    rng = random.Random(seed)
    now = now or utcnow()
    rows: list[dict[str, Any]] = []
    for i in range(count):
        queued = now - timedelta(seconds=rng.randrange(days * 86400))
        seconds = rng.randrange(5, 400)
        failed = i % fail_every == 0
        read = rng.randrange(10, 300)
        rows.append({"id": f"bulk{i:028d}", "integration_id": integration_ids[i % len(integration_ids)],
                     "trigger": "scheduled", "status": "failed" if failed else "succeeded", "direction": "inbound",
                     "params": {}, "counts": {"read": read, "written": read - (3 if failed else 0),
                                              "failed": 3 if failed else 0},
                     "error": "3 records failed" if failed else "", "attempt": 1, "worker_id": "",
                     "queued_at": queued, "started_at": queued + timedelta(seconds=1),
                     "finished_at": queued + timedelta(seconds=1 + seconds), "requested_by": ""})
    with db.engine.begin() as conn:
        for start in range(0, len(rows), 2000):
            conn.execute(insert(SyncRun), rows[start:start + 2000])


def failed_run_with_error(db: Any, integration_id: str, *, minutes_ago: int = 30,
                          bad_nhs: str = "9990000000") -> tuple[str, str]:
    """A failed BambooHR-style run that wrote one resident and failed one on an invalid NHS number.

    Returns (run id, error id).
    """
    now = utcnow()
    started = now - timedelta(minutes=minutes_ago)
    good = {"givenName": "Edna", "familyName": "Hall", "dateOfBirth": "1931-04-02", "nhsNumber": "9990000018"}
    bad = {"givenName": "Walter", "familyName": "Green", "dateOfBirth": "1935-09-12", "nhsNumber": bad_nhs}
    with db.session() as s:
        run = SyncRun(integration_id=integration_id, trigger="scheduled", status="failed", queued_at=started,
                      started_at=started, finished_at=started + timedelta(seconds=42),
                      counts={"read": 2, "written": 1, "failed": 1}, error="1 record failed validation")
        s.add(run)
        s.flush()
        s.add(SyncRunEvent(run_id=run.id, kind="started", message="Run started", at=started))
        s.add(SyncRunEvent(run_id=run.id, kind="page_read", message="Read 2 residents <b>page 1</b>",
                           at=started + timedelta(seconds=5)))
        s.add(SyncRunEvent(run_id=run.id, kind="finished", message="1 written, 1 failed",
                           at=started + timedelta(seconds=42)))
        s.add(RecordOutcome(run_id=run.id, stream="residents", care_type="Resident", external_id="P-1",
                            outcome="written", reason="created", before={}, after=good))
        s.add(RecordOutcome(run_id=run.id, stream="residents", care_type="Resident", external_id="P-2",
                            outcome="failed", reason="nhsNumber is not a valid NHS number", after=bad))
        error = IntegrationError(
            integration_id=integration_id, run_id=run.id, error_type="validation", error_code="invalid_field",
            error_message="Resident P-2: nhsNumber is not a valid NHS number", stream="residents", record_id="P-2",
            timestamp=started + timedelta(seconds=30),
            error_details={"field": "nhsNumber", "value": bad_nhs, "problem": "is not a valid NHS number",
                           "record": bad, "care_type": "Resident", "external_id": "P-2", "stream": "residents"})
        s.add(error)
        s.flush()
        return run.id, error.id
