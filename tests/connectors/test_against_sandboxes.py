"""Each deep connector against its sandbox: full read, incremental, refresh mid-read, 429/5xx storms,
idempotent writes. Transport: httpx.ASGITransport (real HTTP requests into the ASGI app)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from engine.ports import OutboundRecord, ReadPage

from .conftest import SessionFactory, new_sandbox


@dataclass
class Case:
    connector: str
    stream: str
    records: dict[str, int]
    expected: int | None  # None: count from the sandbox
    min_pages: int


CASES = [
    Case("xero", "invoices", {"invoices": 250, "contacts": 40}, 250, 3),
    Case("quickbooks", "invoices", {"invoices": 2500, "customers": 40}, 2500, 3),
    Case("sage_accounting", "contacts", {"contacts": 450}, 450, 3),
    Case("hmrc_vat", "obligations", {}, None, 3),
]
IDS = [c.connector for c in CASES]


async def read_all(session: Any, stream: str, checkpoint: dict[str, Any] | None = None,
                   between: Any = None) -> tuple[list[str], list[ReadPage]]:
    ids: list[str] = []
    pages: list[ReadPage] = []
    async for page in session.read(stream, checkpoint):
        pages.append(page)
        ids.extend(r.external_id for r in page.records)
        if between is not None:
            await between(len(pages))
    return ids, pages


def expected_count(case: Case, app: Any) -> int:
    if case.expected is not None:
        return case.expected
    from datetime import UTC, datetime

    from connectors.sandboxes.hmrc_vat import _quarters
    return len(_quarters(datetime.now(UTC).date()))


async def control(app: Any, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sb") as c:
        r = await c.post(path, json=body or {})
        r.raise_for_status()
        return r.json()


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_full_read_every_page_once(case: Case, make_session: SessionFactory) -> None:
    app = new_sandbox(case.connector, records=case.records)
    async with make_session(case.connector, app) as s:
        ids, pages = await read_all(s, case.stream)
    assert len(pages) >= case.min_pages
    assert len(ids) == len(set(ids)) == expected_count(case, app)
    assert s.stats.failed_calls == 0
    assert pages[-1].checkpoint is not None and "page" not in pages[-1].checkpoint


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_token_expiry_and_refresh_mid_read(case: Case, make_session: SessionFactory) -> None:
    app = new_sandbox(case.connector, records=case.records)

    async def expire(n: int) -> None:
        if n == 1:
            await control(app, "/_sandbox/expire-tokens")

    async with make_session(case.connector, app) as s:
        ids, _ = await read_all(s, case.stream, between=expire)
        stored = await s.token_store.load(s.connection_id)
    assert len(ids) == len(set(ids)) == expected_count(case, app)
    assert app.state.sandbox.token_grants.get("refresh_token") == 1
    assert s.stats.refreshes == 1 and s.stats.failed_calls == 0
    assert stored is not None and stored["refresh_token"] in app.state.sandbox.refresh_tokens  # rotated and saved


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_refresh_ahead_of_expiry(case: Case, make_session: SessionFactory) -> None:
    from .conftest import sandbox_tokens
    app = new_sandbox(case.connector, records=case.records)
    async with make_session(case.connector, app, secrets=sandbox_tokens(app, ttl_left=5)) as s:
        await s.sample(case.stream, 3)
    assert app.state.sandbox.token_grants.get("refresh_token") == 1
    assert s.stats.refreshes == 0  # refreshed before sending, never saw a 401


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record_and_no_failed_call(case: Case, storm: str,
                                                               make_session: SessionFactory) -> None:
    app = new_sandbox(case.connector, records=case.records)

    async def start_storm(n: int) -> None:
        if n == 1:
            await control(app, "/_sandbox/faults", {storm: 6, "retry_after": "0", "error_status": 503
                                                    if storm == "storm_5xx" else 500})

    async with make_session(case.connector, app) as s:
        ids, _ = await read_all(s, case.stream, between=start_storm)
    assert len(ids) == len(set(ids)) == expected_count(case, app)
    assert s.stats.failed_calls == 0
    if storm == "storm_429":
        assert s.stats.throttled == 6
    else:
        assert s.stats.throttled + s.stats.server_errors == 6
    assert app.state.sandbox.faults.model_dump()[storm] == 0


async def test_retry_after_http_date_and_xero_problem_header(make_session: SessionFactory) -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime
    app = new_sandbox("xero", records={"invoices": 10})
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=1), usegmt=True)
    await control(app, "/_sandbox/faults", {"storm_429": 1, "retry_after": when})
    async with make_session("xero", app) as s:
        ids, _ = await read_all(s, "invoices")
    assert len(ids) == 10 and s.stats.throttled == 1 and 0 < s.stats.slept_seconds <= 2.5


async def test_xero_daily_limit_fails_fast_with_rate_limited(make_session: SessionFactory) -> None:
    from connectors.errors import RateLimited
    app = new_sandbox("xero", records={"invoices": 10})
    await control(app, "/_sandbox/faults", {"storm_429": 1, "retry_after": "3600", "rate_limit_problem": "day"})
    async with make_session("xero", app) as s:
        with pytest.raises(RateLimited) as err:
            await read_all(s, "invoices")
    assert err.value.problem == "day" and err.value.retry_after == 3600


async def test_401_refreshes_once_then_fails(make_session: SessionFactory) -> None:
    from connectors.errors import AuthFailed
    app = new_sandbox("xero", records={"invoices": 10})
    await control(app, "/_sandbox/faults", {"revoke_tokens": True})
    async with make_session("xero", app) as s:
        with pytest.raises(AuthFailed) as err:
            await read_all(s, "invoices")
    assert "invalid_grant" in str(err.value)
    assert app.state.sandbox.token_grants.get("refresh_token") == 1


@pytest.mark.parametrize("case", CASES[:3], ids=IDS[:3])
async def test_incremental_read_returns_only_changes(case: Case, make_session: SessionFactory) -> None:
    app = new_sandbox(case.connector, records=case.records)
    state = app.state.sandbox
    async with make_session(case.connector, app) as s:
        _, pages = await read_all(s, case.stream)
        checkpoint = dict(pages[-1].checkpoint or {})
        ds = next(iter(d for k, d in state.datasets.items()
                       if k.lower().rstrip("s") in case.stream.lower().replace("_", "")))
        changed = []
        for i in (3, 77, 120):
            rid = ds.id_of(i)
            rec = dict(ds.get(rid))
            ds.put(rid, rec)
            changed.append(rid)
        ids, _ = await read_all(s, case.stream, checkpoint)
    assert set(changed) <= set(ids)
    assert len(ids) <= len(changed) + 1


async def test_hmrc_incremental_reads_only_the_open_window(make_session: SessionFactory) -> None:
    app = new_sandbox("hmrc_vat")
    async with make_session("hmrc_vat", app) as s:
        all_ids, pages = await read_all(s, "obligations")
        again, again_pages = await read_all(s, "obligations", pages[-1].checkpoint)
    assert len(again_pages) == 1 and 0 < len(again) < len(all_ids)


async def test_resume_from_a_mid_read_checkpoint(make_session: SessionFactory) -> None:
    app = new_sandbox("xero", records={"invoices": 350})
    async with make_session("xero", app) as s:
        first: list[str] = []
        cp = None
        async for page in s.read("invoices"):
            first.extend(r.external_id for r in page.records)
            cp = page.checkpoint
            break  # the worker dies after committing page 1
        rest, _ = await read_all(s, "invoices", cp)
    assert len(first) + len(rest) == 350 and not set(first) & set(rest)


WRITES = {
    "xero": ("invoices", {"Type": "ACCREC", "Contact": {"Name": "Leeds City Council"}, "Status": "DRAFT",
                          "LineItems": [{"Description": "Residential care, week 12", "Quantity": 1,
                                         "UnitAmount": 1250.0, "AccountCode": "200"}]}, "invoices"),
    "quickbooks": ("invoices", {"CustomerRef": {"value": "1"}, "Line": [
        {"Amount": 1250.0, "DetailType": "SalesItemLineDetail",
         "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": 1250.0}}]}, "Invoice"),
    "sage_accounting": ("contacts", {"name": "Margaret Holloway", "contact_type_ids": ["CUSTOMER"]}, "contacts"),
}


@pytest.mark.parametrize("connector", list(WRITES))
async def test_retried_write_is_not_duplicated(connector: str, make_session: SessionFactory) -> None:
    stream, payload, ds_name = WRITES[connector]
    app = new_sandbox(connector, records=10)
    ds = app.state.sandbox.datasets[ds_name]
    recs = [OutboundRecord(idempotency_key=f"carehub-{connector}-k{i}", payload={**payload}) for i in range(3)]
    async with make_session(connector, app) as s:
        first = await s.write(stream, recs)
        # The reply was lost (e.g. a timeout); the engine retries the same records with the same keys.
        second = await s.write(stream, recs)
    assert all(o.ok for o in first + second), first
    assert [o.external_id for o in first] == [o.external_id for o in second]
    assert len({o.external_id for o in first}) == 3
    assert len(ds.overlay) == 3


async def test_hmrc_resubmitted_return_is_success_not_duplicate(make_session: SessionFactory) -> None:
    app = new_sandbox("hmrc_vat")
    payload = {"periodKey": "24A1", "vatDueSales": 105.5, "vatDueAcquisitions": -100.45, "totalVatDue": 5.05,
               "vatReclaimedCurrPeriod": 105.15, "netVatDue": 100.1, "totalValueSalesExVAT": 300,
               "totalValuePurchasesExVAT": 300, "totalValueGoodsSuppliedExVAT": 3000,
               "totalAcquisitionsExVAT": 3000, "finalised": True}
    rec = OutboundRecord("vat-24A1", payload)
    async with make_session("hmrc_vat", app) as s:
        a = await s.write("returns", [rec])
        b = await s.write("returns", [rec])
        bad = await s.write("returns", [OutboundRecord("vat-24A2", {**payload, "periodKey": "24A2", "totalVatDue": 9})])
    assert a[0].ok and b[0].ok and b[0].data == {"duplicate": True}
    assert len(app.state.sandbox.extra["returns"]) == 1
    assert not bad[0].ok and "totalVatDue should be equal" in (bad[0].error_message or "")
    assert bad[0].error_code == "VAT_TOTAL_VALUE"


async def test_xero_partial_batch_failure_gives_per_element_outcomes(make_session: SessionFactory) -> None:
    stream, payload, _ = WRITES["xero"]
    app = new_sandbox("xero", records=10)
    recs = [OutboundRecord(f"k{i}", dict(payload)) for i in range(4)]
    recs.append(OutboundRecord("bad", {"Type": "ACCREC", "Status": "AUTHORISED", "LineItems": []}))
    async with make_session("xero", app) as s:
        out = await s.write(stream, recs)
    assert [o.ok for o in out] == [True, True, True, True, False]
    assert "A Contact must be specified" in (out[-1].error_message or "")


async def test_quickbooks_partial_batch_failure(make_session: SessionFactory) -> None:
    stream, payload, _ = WRITES["quickbooks"]
    app = new_sandbox("quickbooks", records=10)
    recs = [OutboundRecord(f"k{i}", dict(payload)) for i in range(3)] + [OutboundRecord("bad", {"Line": []})]
    async with make_session("quickbooks", app) as s:
        out = await s.write(stream, recs)
    assert [o.ok for o in out] == [True, True, True, False]
    assert "CustomerRef" in (out[-1].error_message or "")


async def test_vendor_messages_surface(make_session: SessionFactory) -> None:
    from connectors.errors import VendorError
    app = new_sandbox("sage_accounting", records=5)
    async with make_session("sage_accounting", app) as s:
        out = await s.write("contacts", [OutboundRecord("x1", {"contact_type_ids": ["CUSTOMER"]})])
        assert not out[0].ok and out[0].error_message == "Name can't be blank (name)"
    app = new_sandbox("quickbooks", records=5)
    async with make_session("quickbooks", app, error_rules=None) as s:
        s.stream("invoices")
        with pytest.raises(VendorError) as err:
            from connectors.auth import OutgoingRequest
            await s.request(lambda: OutgoingRequest("GET", s.base_url + "/v3/company/9341452215667890/query",
                                                    {"query": "SELEKT"}))
        assert err.value.status == 400 and "QueryParserError" in err.value.vendor_message


async def test_quickbooks_cdc(make_session: SessionFactory) -> None:
    from datetime import UTC, datetime, timedelta
    app = new_sandbox("quickbooks", records=20)
    ds = app.state.sandbox.datasets["Invoice"]
    ds.put("5", dict(ds.get("5")))
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    async with make_session("quickbooks", app) as s:
        ids, pages = await read_all(s, "invoice_changes", {"since": since})
    assert ids == ["5"] and len(pages) == 1


async def test_test_connection_explains(make_session: SessionFactory) -> None:
    app = new_sandbox("xero", records=5)
    async with make_session("xero", app) as s:
        ok = await s.test_connection()
    assert ok.ok and "Connected to Xero" in ok.reason
    await control(app, "/_sandbox/faults", {"revoke_tokens": True})
    async with make_session("xero", app) as s:
        bad = await s.test_connection()
    assert not bad.ok and "did not accept the credentials" in bad.reason
    async with make_session("xero", app) as s:
        fields = s.stream_fields("invoices")
    assert any(f.name == "Total" and f.sensitivity == "financial" for f in fields)
