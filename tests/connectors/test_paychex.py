"""Paychex Flex connector against its sandbox: OAuth2 client credentials (token expiry and a refused client),
companies and workers in the metadata/content envelope over offset/limit pages, full re-reads (Paychex has no
changed-since filter), IN_PROGRESS worker creates looked up by clockId first (counted at the vendor), storms,
vendor error bodies, the Employee mapping and an end-to-end sync into the care store through the real worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from arq.connections import ArqRedis
from fastapi import FastAPI

from app.sync_jobs import enqueue_run
from connectors.auth import OutgoingRequest
from connectors.catalog import load_catalog
from connectors.errors import AuthFailed, VendorError
from connectors.manifest import RateLimits
from connectors.runtime import ConnectorSession
from connectors.sandboxes import SANDBOXES, SandboxConfig, mount_sandboxes
from connectors.sandboxes.paychex import CLIENT_ID, CLIENT_SECRET, COMPANY_ID, DISPLAY_ID
from connectors.sessions import open_session
from engine.ports import OutboundRecord
from storage import runs as runrepo
from storage.models import Integration, MappingDesign, SyncConfiguration

from .worker_harness import count_care, drain, serve
from .workforce_helpers import (
    CONNECTORS,
    MAPPINGS,
    control,
    fast_rules,
    manifest,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

WORKERS = 230
SECRETS = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
CONFIG = {"company_id": COMPANY_ID, "display_id": DISPLAY_ID}


def paychex(app: FastAPI, secrets: dict[str, Any] | None = None, config: dict[str, Any] | None = None) -> ConnectorSession:
    return session("paychex", app, config or CONFIG, secrets or SECRETS)


def new_worker(key: str, given: str = "Maria", family: str = "Lopez") -> OutboundRecord:
    return OutboundRecord(key, {"name": {"givenName": given, "familyName": family}, "employmentType": "PART_TIME",
                                "hireDate": "2026-12-07T00:00:00Z", "job": {"title": "Care Assistant"}})


def test_manifest_sandbox_and_catalog_are_honest() -> None:
    m = manifest("paychex")
    assert m.availability == "partner-only" and "US payroll only" in m.note
    assert all(f.description for s in m.streams.values() for f in s.fields)
    assert all(s.incremental is None for s in m.streams.values())  # no changed-since filter at Paychex
    assert "paychex" in SANDBOXES
    entry = next(e for e in load_catalog(CONNECTORS).entries if e.id == "paychex")
    assert (entry.availability, entry.connector) == ("partner-only", "paychex")
    assert "not for UK care homes' payroll" in entry.note and "US-registered operators" in entry.note


async def test_full_read_over_pages_with_exact_counts() -> None:
    app = sandbox("paychex", records={"workers": WORKERS})
    async with paychex(app) as s:
        records, pages = await read_all(s, "workers")
        companies, _ = await read_all(s, "companies")
    assert [len(p.records) for p in pages] == [100, 100, 30]
    assert len(records) == WORKERS and len({r.external_id for r in records}) == WORKERS
    assert pages[-1].checkpoint == {}  # every read is a full read
    assert [c.external_id for c in companies] == [COMPANY_ID]
    assert app.state.sandbox.calls == 4 and app.state.sandbox.token_grants == {"client_credentials": 1}

    exact = sandbox("paychex", records={"workers": 200})
    async with paychex(exact, config={**CONFIG, "display_id": "00000000"}) as s:
        records, pages = await read_all(s, "workers")
        nobody, _ = await read_all(s, "companies")
    assert len(records) == 200 and len(pages) == 2 and not nobody  # the total stops it: no empty third page


async def test_rereads_are_full_and_include_new_in_progress_workers() -> None:
    app = sandbox("paychex", records={"workers": WORKERS})
    async with paychex(app) as s:
        first, _ = await read_all(s, "workers")
        [made] = await s.write("workers", [new_worker("k" * 40)])
        again, _ = await read_all(s, "workers")
    assert made.ok and len(again) == WORKERS + 1
    added = [r for r in again if r.external_id == made.external_id]
    assert added and added[0].data["currentStatus"]["statusType"] == "IN_PROGRESS"
    assert {r.external_id for r in first} < {r.external_id for r in again}


async def test_creates_are_idempotent_at_the_vendor() -> None:
    app = sandbox("paychex", records={"workers": 40})
    async with paychex(app) as s:
        first = await s.write("workers", [new_worker("a" * 40), new_worker("b" * 40, "Tom", "Reyes")])
        repeat = await s.write("workers", [new_worker("a" * 40), new_worker("b" * 40, "Tom", "Reyes")])
        await control(app, "/_sandbox/faults", {"storm_5xx": 2, "error_status": 503})
        stormy = await s.write("workers", [new_worker("c" * 40, "Ana", "Silva")])
        stormy_again = await s.write("workers", [new_worker("c" * 40, "Ana", "Silva")])
    assert all(o.ok for o in first + repeat + stormy + stormy_again)
    assert [o.external_id for o in first] == [o.external_id for o in repeat]
    assert stormy[0].external_id == stormy_again[0].external_id
    assert len(app.state.creates) == 3  # counted at the vendor: one worker per key
    assert s.stats.server_errors == 2


async def test_vendor_errors_become_clear_messages() -> None:
    app = sandbox("paychex", records={"workers": 40})
    async with paychex(app) as s:
        [bad] = await s.write("workers", [OutboundRecord("d" * 40, {"name": {"givenName": "Sam"}})])
        with pytest.raises(VendorError, match=r"^HTTP 400: Paging and filtering attributes cannot be applied "
                                              r"together \(INVALID_REQUEST\)$") as err:
            url = f"{s.base_url}/companies/{COMPANY_ID}/workers"
            await s.request(lambda: OutgoingRequest("GET", url, {"offset": "0", "from": "2020-01-01T00:00:00Z"}))
        assert err.value.status == 400
    assert not bad.ok and bad.error_message == "familyName required" and bad.error_code == "INVALID_WORKER"
    assert not app.state.creates
    async with paychex(app, config={**CONFIG, "company_id": "99NOTLINKED000000000"}) as s:
        with pytest.raises(VendorError, match=r"^HTTP 404: Company 99NOTLINKED000000000 is not linked to this "
                                              r"application \(NOT_FOUND\)$"):
            await read_all(s, "workers")


async def test_expired_token_is_renewed_and_a_refused_client_is_explained() -> None:
    app = sandbox("paychex", records={"workers": WORKERS})

    async def expire(n: int) -> None:
        if n == 1:
            await control(app, "/_sandbox/expire-tokens")

    async with paychex(app) as s:
        records, _ = await read_all(s, "workers", between=expire)
    assert len(records) == WORKERS and s.stats.refreshes == 1
    assert app.state.sandbox.token_grants == {"client_credentials": 2}
    async with paychex(app, {"client_id": CLIENT_ID, "client_secret": "wrong"}) as s:
        with pytest.raises(AuthFailed, match="The given client credentials were not valid"):
            await read_all(s, "workers")
        check = await s.test_connection()
    assert not check.ok and "did not accept the credentials" in check.reason


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("paychex", records={"workers": WORKERS})
    async with paychex(app) as s:
        records, _ = await read_all(s, "workers", between=storm_starter(app, storm))
    assert len(records) == WORKERS and s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_template_maps_workers_and_in_progress_hires() -> None:
    app = sandbox("paychex", records={"workers": WORKERS})
    async with paychex(app) as s:
        [made] = await s.write("workers", [new_worker("e" * 40)])
        records, _ = await read_all(s, "workers")
    staff = map_records("paychex", "Employee", records)
    assert {e["status"] for e in staff} == {"active", "leaver", "inactive"}
    hire = next(e for e in staff if e["payrollId"] == made.external_id)
    assert hire["employeeNumber"] == made.external_id and hire["status"] == "inactive"
    assert (hire["givenName"], hire["familyName"], hire["employmentType"]) == ("Maria", "Lopez", "part-time")
    assert all(e["givenName"][0].isupper() and not e["givenName"][1:].isupper() for e in staff)


async def test_practice_mode_connects_and_reads_when_mounted() -> None:
    host = FastAPI()
    app = mount_sandboxes(host, config=SandboxConfig(records=12), only=["paychex"])["paychex"]
    m = manifest("paychex")
    async with open_session(m, app.state.config, app.state.credentials,
                            base_url="http://carehub.local/sandbox/paychex", transport=httpx.ASGITransport(app=host),
                            connection_id="paychex-practice", error_rules=fast_rules(m),
                            rate_limits=RateLimits()) as s:
        check = await s.test_connection()
        assert check.ok, check.reason
        workers, _ = await read_all(s, "workers")
    assert len(workers) == 12


@pytest.fixture
def served() -> Iterator[tuple[str, FastAPI]]:
    app = sandbox("paychex", records={"workers": 120})
    with serve(app) as url:
        yield url, app


async def test_workers_through_the_worker(ctx: Any, arq: ArqRedis, redis_url: str,
                                          served: tuple[str, FastAPI]) -> None:
    url, app = served
    design = yaml.safe_load((MAPPINGS / "paychex" / "Employee.yaml").read_text())
    with ctx.db.session() as s:
        integ = Integration(name="Paychex (US)", connector_id="paychex", status="active",
                            operation_mode="external_primary", connection_details={**CONFIG, "base_url": url},
                            credentials_encrypted=ctx.box.encrypt(dict(SECRETS)), error_handling={})
        s.add(integ)
        s.flush()
        s.add(SyncConfiguration(integration_id=integ.id, sync_direction="inbound", batch_size=50,
                                retry_policy={"base_seconds": 0.05, "cap_seconds": 0.2, "max_attempts": 3,
                                              "call_deadline_seconds": 10},
                                error_threshold=1000, max_change_share=1.0, sync_frequency={"kind": "manual"},
                                streams=[{"stream": "workers", "care_type": "Employee"}]))
        s.add(MappingDesign(integration_id=integ.id, stream="workers", care_type="Employee", design=design))
        integ_id = str(integ.id)

    run1 = await enqueue_run(ctx.db, arq, integ_id, "manual", requested_by="test")
    await drain(ctx, redis_url, "paychex-test-worker")
    r1 = runrepo.get_run(ctx.db, run1)
    assert r1.status == "succeeded", r1.error
    assert r1.counts["read"] == 120 and r1.counts["created"] == 120 and count_care(ctx, "Employee") == 120

    async with paychex(app) as direct:  # payroll adds a hire in Flex
        [made] = await direct.write("workers", [new_worker("f" * 40, "Grace", "Okafor")])
    run2 = await enqueue_run(ctx.db, arq, integ_id, "manual")
    await drain(ctx, redis_url, "paychex-test-worker")
    r2 = runrepo.get_run(ctx.db, run2)
    assert r2.status == "succeeded", r2.error
    assert r2.counts["read"] == 121 and r2.counts["created"] == 1 and r2.counts.get("updated", 0) == 0
    assert count_care(ctx, "Employee") == 121 and made.ok
