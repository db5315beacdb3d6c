"""Skillsoft Percipio connector against its sandbox: service-account bearer token with the organisation in the path,
users and catalog content over offset/max pages (totals in x-total-count, catalog paging snapshots), the
asynchronous learning-activity report (several polls, a FAILED report, the deadline), incremental windows, storms,
vendor errors, the mappings and an end-to-end sync into the care store through the real worker."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import httpx
import pytest
import yaml
from arq.connections import ArqRedis
from fastapi import FastAPI

from app.sync_jobs import enqueue_run
from connectors.custom.percipio import PercipioSession, ReportFailed
from connectors.errors import AuthFailed, ConnectorError, VendorError
from connectors.manifest import ConnectorManifest, RateLimits
from connectors.runtime import ConnectorSession
from connectors.sandboxes import SandboxConfig, mount_sandboxes
from connectors.sandboxes.percipio import DATA_FROM, ORG_ID, TOKEN
from connectors.sessions import open_session, session_class
from storage import runs as runrepo
from storage.models import Integration, MappingDesign, SyncConfiguration

from .worker_harness import count_care, drain, serve
from .workforce_helpers import (
    MAPPINGS,
    check_registered,
    control,
    fast_rules,
    manifest,
    map_records,
    read_all,
    sandbox,
    storm_starter,
)

USERS, ACTIVITY, CATALOG = 2500, 400, 2100
RECORDS = {"users": USERS, "learning_activity": ACTIVITY, "catalog_content": CATALOG}
CONFIG = {"org_id": ORG_ID, "activity_from": DATA_FROM.date().isoformat()}
SECRETS = {"bearer_token": TOKEN}


def fast_manifest(**report: Any) -> ConnectorManifest:
    """The manifest with short report waits (the real ones start at 5 seconds)."""
    m = manifest("percipio")
    stream = m.streams["learning_activity"]
    options = {**stream.paginator.options, "poll_seconds": 0.01, "max_poll_seconds": 0.05, **report}
    paginator = stream.paginator.model_copy(update={"options": options})
    streams = {**m.streams, "learning_activity": stream.model_copy(update={"paginator": paginator})}
    return m.model_copy(update={"streams": streams})


def percipio(app: FastAPI, secrets: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
             m: ConnectorManifest | None = None) -> ConnectorSession:
    m = m or fast_manifest()
    return open_session(m, config or CONFIG, secrets or SECRETS, base_url="http://percipio.sandbox",
                        transport=httpx.ASGITransport(app=app), connection_id=f"test-percipio-{id(app)}",
                        error_rules=fast_rules(m), rate_limits=RateLimits())


def windows_until_now() -> int:
    return math.ceil((datetime.now(UTC) - DATA_FROM).total_seconds() / (30 * 86400))


def test_manifest_sandbox_session_and_catalog() -> None:
    check_registered("percipio", "skillsoft")
    assert session_class("percipio") is PercipioSession


async def test_eu_data_centre_host_comes_from_the_connection() -> None:
    m = manifest("percipio")
    app = sandbox("percipio")
    for environment, host in (("eu", "https://dew1-api.percipio.com"), ("production", "https://api.percipio.com")):
        async with open_session(m, {**CONFIG, "environment": environment}, SECRETS, connection_id="eu",
                                transport=httpx.ASGITransport(app=app)) as s:
            assert s.base_url == host and s._url(m.streams["users"].path) == (
                f"{host}/user-management/v1/organizations/{ORG_ID}/users")


async def test_users_full_read_over_pages_stops_at_the_header_total() -> None:
    app = sandbox("percipio", records=RECORDS)
    async with percipio(app) as s:
        records, pages = await read_all(s, "users")
    assert len(records) == USERS and len({r.external_id for r in records}) == USERS
    assert [len(p.records) for p in pages] == [1000, 1000, 500]
    assert app.state.sandbox.calls == 3
    assert pages[-1].checkpoint == {"since": max(r.updated_at for r in records if r.updated_at).isoformat()}

    exact = sandbox("percipio", records={**RECORDS, "users": 2000})
    async with percipio(exact) as s:
        records, pages = await read_all(s, "users")
    assert len(records) == 2000 and len(pages) == 2 and exact.state.sandbox.calls == 2  # no empty third page


async def test_users_incremental_read_returns_only_changes() -> None:
    app = sandbox("percipio", records=RECORDS)
    async with percipio(app) as s:
        _, pages = await read_all(s, "users")
        touched = (await control(app, "/_sandbox/touch-users", {"count": 4}))["touched"]
        changed, _ = await read_all(s, "users", pages[-1].checkpoint)
    fresh = [r for r in changed if r.data["jobTitle"] == "Senior Care Assistant" and r.external_id in touched]
    assert len(fresh) == 4 and len(changed) <= 5  # the changes, plus at most the boundary user


async def test_catalog_pages_carry_the_paging_request_id() -> None:
    app = sandbox("percipio", records=RECORDS)
    async with percipio(app) as s:
        records, pages = await read_all(s, "catalog_content")
    assert len(records) == CATALOG and len({r.external_id for r in records}) == CATALOG
    assert len(pages) == 3 and len(app.state.paging) == 1  # one snapshot, sent back on pages 2 and 3


async def test_report_ready_after_several_polls_in_windows() -> None:
    app = sandbox("percipio", records=RECORDS)
    await control(app, "/_sandbox/report", {"polls": 3, "fail": False})
    async with percipio(app) as s:
        assert isinstance(s, PercipioSession)
        started = datetime.now(UTC).replace(microsecond=0)
        records, pages = await read_all(s, "learning_activity")
    windows = windows_until_now()
    assert len(pages) == windows == len(app.state.reports)
    assert s.report_polls == windows * 4  # three IN_PROGRESS answers, then the rows
    assert len(records) == ACTIVITY and len({r.external_id for r in records}) == ACTIVITY
    assert s.stats.slept_seconds > 0
    last = datetime.fromisoformat(pages[-1].checkpoint["since"].replace("Z", "+00:00"))
    assert started <= last <= datetime.now(UTC)
    bodies = list(app.state.reports.values())
    assert bodies[0]["start"] == DATA_FROM and all(a["end"] == b["start"] for a, b in pairwise(bodies))


async def test_report_incremental_from_the_last_window_end() -> None:
    app = sandbox("percipio", records=RECORDS)
    async with percipio(app) as s:
        _, pages = await read_all(s, "learning_activity")
        done = (await control(app, "/_sandbox/learn", {"count": 5}))["completed"]
        await asyncio.sleep(1.05)  # windows end at whole seconds: let the changes fall before the read's end
        before = len(app.state.reports)
        changed, new_pages = await read_all(s, "learning_activity", pages[-1].checkpoint)
    assert len(app.state.reports) == before + 1 and len(new_pages) == 1  # one short window
    assert sorted(r.external_id for r in changed) == sorted(done)
    assert all(r.data["status"] == "COMPLETED" for r in changed)


async def test_failed_report_ends_the_read_with_the_vendor_reason() -> None:
    app = sandbox("percipio", records=RECORDS)
    await control(app, "/_sandbox/report", {"polls": 1, "fail": True})
    async with percipio(app) as s:
        with pytest.raises(ReportFailed, match=r"status FAILED: Report generation failed: the reporting service "
                                               r"timed out") as err:
            await read_all(s, "learning_activity")
    assert "learning-activity report" in str(err.value) and not err.value.retryable


async def test_report_still_running_at_the_deadline_is_retryable() -> None:
    app = sandbox("percipio", records=RECORDS)
    await control(app, "/_sandbox/report", {"polls": 10_000})
    async with percipio(app, m=fast_manifest(deadline_seconds=0.3)) as s:
        with pytest.raises(ConnectorError, match="was still IN_PROGRESS after") as err:
            await read_all(s, "learning_activity")
    assert err.value.retryable and 3 <= s.report_polls < 100


async def test_plain_runtime_refuses_the_report_stream() -> None:
    app = sandbox("percipio", records=RECORDS)
    m = fast_manifest()
    async with ConnectorSession(m, CONFIG, SECRETS, base_url="http://percipio.sandbox",
                                transport=httpx.ASGITransport(app=app), connection_id="plain",
                                rate_limits=RateLimits()) as s:
        with pytest.raises(ConnectorError, match="asynchronous"):
            await read_all(s, "learning_activity")


async def test_vendor_errors_become_clear_messages() -> None:
    app = sandbox("percipio", records=RECORDS)
    async with percipio(app, {"bearer_token": "revoked"}) as s:
        with pytest.raises(AuthFailed, match="Invalid or expired service account token"):
            await read_all(s, "users")
        check = await s.test_connection()
    assert not check.ok and "did not accept the credentials" in check.reason
    async with percipio(app, config={**CONFIG, "org_id": "00000000-0000-0000-0000-000000000000"}) as s:
        with pytest.raises(VendorError, match="no access to organization") as err:
            await read_all(s, "users")
    assert err.value.status == 403


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
@pytest.mark.parametrize("stream", ["users", "learning_activity"])
async def test_storm_ends_with_every_record(stream: str, storm: str) -> None:
    app = sandbox("percipio", records=RECORDS)
    async with percipio(app) as s:
        if stream == "users":
            records, _ = await read_all(s, stream, between=storm_starter(app, storm))
        else:  # the storm starts before the first report request, so it hits submits and polls
            await control(app, "/_sandbox/faults", {storm: 6, "retry_after": "0", "error_status": 503})
            records, _ = await read_all(s, stream)
    assert len(records) == (USERS if stream == "users" else ACTIVITY)
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_users_and_activity() -> None:
    app = sandbox("percipio", records=RECORDS)
    async with percipio(app) as s:
        users, _ = await read_all(s, "users")
        rows, _ = await read_all(s, "learning_activity")
    staff = map_records("percipio", "Employee", users[:300])
    assert all(e["employeeNumber"].startswith("WC") and e["status"] in ("active", "inactive") for e in staff)
    assert all(e["site"] for e in staff)
    training = map_records("percipio", "TrainingRecord", rows)
    assert {t["status"] for t in training} == {"completed", "in-progress"}
    assert all(t["employeeRef"].startswith("WC") and t["provider"] == "Skillsoft Percipio" for t in training)
    assert all(bool(t.get("completedAt")) == (t["status"] == "completed") for t in training)
    assert not (MAPPINGS / "percipio" / "CatalogContent.yaml").exists()  # no care type fits a course catalogue


async def test_practice_mode_reads_every_stream_when_mounted() -> None:
    host = FastAPI()
    app = mount_sandboxes(host, config=SandboxConfig(records=12), only=["percipio"])["percipio"]
    await control(app, "/_sandbox/report", {"polls": 0})
    m = fast_manifest()
    async with open_session(m, app.state.config, app.state.credentials,
                            base_url="http://carehub.local/sandbox/percipio", transport=httpx.ASGITransport(app=host),
                            connection_id="percipio-practice", error_rules=fast_rules(m),
                            rate_limits=RateLimits()) as s:
        check = await s.test_connection()
        assert check.ok, check.reason
        counts = {stream: len((await read_all(s, stream))[0]) for stream in m.streams}
    assert counts == {"users": 12, "learning_activity": 12, "catalog_content": 12}


@pytest.fixture
def served() -> Iterator[tuple[str, FastAPI]]:
    app = sandbox("percipio", records={"users": 40, "learning_activity": 90, "catalog_content": 10})
    with serve(app) as url:
        yield url, app


async def test_learning_activity_through_the_worker(ctx: Any, arq: ArqRedis, redis_url: str,
                                                    served: tuple[str, FastAPI]) -> None:
    url, _app = served
    httpx.post(f"{url}/_sandbox/report", json={"polls": 0}, timeout=5)  # the real waits start at 5 seconds
    design = yaml.safe_load((MAPPINGS / "percipio" / "TrainingRecord.yaml").read_text())
    with ctx.db.session() as s:
        integ = Integration(name="Percipio", connector_id="percipio", status="active",
                            operation_mode="external_primary",
                            connection_details={"org_id": ORG_ID, "activity_from": DATA_FROM.date().isoformat(),
                                                "base_url": url},
                            credentials_encrypted=ctx.box.encrypt({"bearer_token": TOKEN}), error_handling={})
        s.add(integ)
        s.flush()
        s.add(SyncConfiguration(integration_id=integ.id, sync_direction="inbound", batch_size=50,
                                retry_policy={"base_seconds": 0.05, "cap_seconds": 0.2, "max_attempts": 3,
                                              "call_deadline_seconds": 10},
                                error_threshold=1000, max_change_share=1.0, sync_frequency={"kind": "manual"},
                                streams=[{"stream": "learning_activity", "care_type": "TrainingRecord"}]))
        s.add(MappingDesign(integration_id=integ.id, stream="learning_activity", care_type="TrainingRecord",
                            design=design))
        integ_id = str(integ.id)

    run1 = await enqueue_run(ctx.db, arq, integ_id, "manual", requested_by="test")
    await drain(ctx, redis_url, "percipio-test-worker")
    r1 = runrepo.get_run(ctx.db, run1)
    assert r1.status == "succeeded", r1.error
    assert r1.counts["read"] == 90 and r1.counts["created"] == 90 and count_care(ctx, "TrainingRecord") == 90

    httpx.post(f"{url}/_sandbox/learn", json={"count": 3}, timeout=5)
    await asyncio.sleep(1.05)
    run2 = await enqueue_run(ctx.db, arq, integ_id, "manual")
    await drain(ctx, redis_url, "percipio-test-worker")
    r2 = runrepo.get_run(ctx.db, run2)
    assert r2.status == "succeeded", r2.error
    assert r2.counts["read"] == 3 and r2.counts["created"] == 0 and r2.counts["updated"] == 3
    assert count_care(ctx, "TrainingRecord") == 90
