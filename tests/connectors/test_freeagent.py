"""FreeAgent connector against its sandbox: OAuth2 with refresh, Link-header paging, updated_since reads,
URL ids, contact create/edit, invoice create without duplicates on retry, storms, mapping templates."""

from __future__ import annotations

import time
from typing import Any

import pytest

from engine.ports import OutboundRecord

from .workforce_helpers import (
    check_registered,
    control,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

RECORDS = {"contacts": 130, "invoices": 260, "bank_transactions": 450}
ACCOUNT = "http://freeagent.sandbox/v2/bank_accounts/81"


def tokens(app: Any) -> dict[str, Any]:
    tok = app.state.sandbox.issue_tokens()
    return {"client_id": "carehub", "client_secret": "s3cret", "access_token": tok["access_token"],
            "refresh_token": tok["refresh_token"], "expires_at": time.time() + 3600}


def books(app: Any) -> Any:
    return session("freeagent", app, {"bank_account": ACCOUNT}, tokens(app))


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("freeagent")


@pytest.mark.parametrize(("stream", "pages"), [("contacts", 2), ("invoices", 3)])
async def test_full_read_follows_link_header(stream: str, pages: int) -> None:
    app = sandbox("freeagent", records=RECORDS)
    async with books(app) as s:
        records, got = await read_all(s, stream)
    assert len(got) == pages
    assert len(records) == len({r.external_id for r in records}) == RECORDS[stream]
    assert all(r.external_id.startswith("http://freeagent.sandbox/v2/") for r in records)


async def test_bank_transactions_of_one_account() -> None:
    app = sandbox("freeagent", records=RECORDS)
    async with books(app) as s:
        records, _ = await read_all(s, "bank_transactions")
        accounts, _ = await read_all(s, "bank_accounts")
    expected = sum(1 for i in range(RECORDS["bank_transactions"]) if i % 5)
    assert len(records) == expected and {r.data["bank_account"].rsplit("/", 1)[-1] for r in records} == {"81"}
    assert [a.external_id for a in accounts] == [ACCOUNT, ACCOUNT[:-2] + "82"]


async def test_incremental_read_with_updated_since_and_token_refresh() -> None:
    app = sandbox("freeagent", records=RECORDS)
    async with books(app) as s:
        _, pages = await read_all(s, "contacts")
        checkpoint = pages[-1].checkpoint
        assert checkpoint and checkpoint["since"]
        changed = OutboundRecord("upd", {"phone_number": "0113 496 0000"}, external_id=pages[0].records[4].external_id)
        assert (await s.write("contacts", [changed]))[0].ok
        await control(app, "/_sandbox/expire-tokens")
        delta, _ = await read_all(s, "contacts", checkpoint)
    ids = [r.external_id for r in delta]
    assert changed.external_id in ids and len(ids) <= 2  # the change (and at most the boundary record)
    assert s.stats.refreshes == 1 and app.state.sandbox.token_grants.get("refresh_token") == 1


async def test_invoice_create_retried_is_not_duplicated() -> None:
    app = sandbox("freeagent", records=RECORDS)
    async with books(app) as s:
        contacts, _ = await read_all(s, "contacts")
        payload = {"contact": contacts[2].external_id, "dated_on": "2026-11-01", "reference": "WCN-2026-11-0042",
                   "invoice_items": [{"description": "Residential care, November", "item_type": "Weeks",
                                      "quantity": "4.0", "price": "1250.00", "sales_tax_rate": "0.0"}]}
        first = await s.write("invoices", [OutboundRecord("inv-key-42", payload)])
        again = await s.write("invoices", [OutboundRecord("inv-key-42", payload)])  # reply was lost; resend
        other = await s.write("invoices", [OutboundRecord("inv-key-43", payload)])  # a real duplicate reference
        made = await s.write("contacts", [OutboundRecord("c-1", {"organisation_name": "Leeds City Council (ASC)"})])
        invoices, _ = await read_all(s, "invoices")
    assert first[0].ok and again[0].ok and first[0].external_id == again[0].external_id
    assert len(invoices) == RECORDS["invoices"] + 1
    assert not other[0].ok and "Reference has already been taken" in (other[0].error_message or "")
    assert made[0].ok and made[0].external_id and "/v2/contacts/" in made[0].external_id


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("freeagent", records=RECORDS)
    async with books(app) as s:
        records, _ = await read_all(s, "invoices", between=storm_starter(app, storm))
    assert len(records) == len({r.external_id for r in records}) == RECORDS["invoices"]
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("freeagent", records=RECORDS)
    async with books(app) as s:
        contacts = await s.sample("contacts", 80)
        invoices = await s.sample("invoices", 80)
        bank = await s.sample("bank_transactions", 80)
    people = map_records("freeagent", "Contact", contacts)
    assert all(p["name"] for p in people)
    bills = map_records("freeagent", "Invoice", invoices)
    assert all(b["kind"] == "sales" and b["totalPence"] >= b["netPence"] for b in bills)
    assert bills[0]["lines"][0]["unitAmountPence"] > 0
    money = map_records("freeagent", "BankTransaction", bank)
    assert any(m["amountPence"] < 0 for m in money) and any(m["amountPence"] > 0 for m in money)
    assert {m["reconciled"] for m in money} == {True, False}


async def test_record_urls_follow_the_address_the_sandbox_is_mounted_at() -> None:
    import httpx
    from fastapi import FastAPI

    from connectors.runtime import ConnectorSession
    from connectors.sandboxes import SandboxConfig, mount_sandboxes

    from .workforce_helpers import manifest

    parent = FastAPI()
    apps = mount_sandboxes(parent, "/sandbox", SandboxConfig(records=RECORDS), only=["freeagent"])
    async with ConnectorSession(manifest("freeagent"), {}, tokens(apps["freeagent"]),
                                base_url="http://hub/sandbox/freeagent", transport=httpx.ASGITransport(app=parent),
                                connection_id="mounted-freeagent") as s:
        contacts = await s.sample("contacts", 5)
        edited = await s.write("contacts", [OutboundRecord("m-1", {"town": "Leeds"}, external_id=contacts[0].external_id)])
    assert contacts[0].external_id.startswith("http://hub/sandbox/freeagent/v2/contacts/")
    assert edited[0].ok and edited[0].data["town"] == "Leeds"


async def test_sandbox_rate_limit_test_header_gives_freeagent_throttle() -> None:
    from connectors.errors import RateLimited

    from .workforce_helpers import fast_rules, manifest

    app = sandbox("freeagent", records=RECORDS)
    rules = fast_rules(manifest("freeagent")).model_copy(update={"deadline_seconds": 2})
    async with session("freeagent", app, {"bank_account": ACCOUNT, "rate_limit_test": "true"}, tokens(app),
                       error_rules=rules) as s:
        await read_all(s, "contacts")  # 2 calls
        await read_all(s, "invoices")  # 3 calls: the limit of 5 a minute is reached
        with pytest.raises(RateLimited) as err:
            await read_all(s, "contacts")
    assert "5 requests per 60 seconds" in str(err.value) and 0 < err.value.retry_after <= 60
