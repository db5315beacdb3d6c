"""KashFlow connector against its sandbox: two-step session log-in with memorable-word characters (KfToken),
one re-login when the session lapses, MetaData.NextPageUrl paging, customer and invoice writes, storms."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import AuthFailed
from connectors.sandboxes.kashflow import MEMORABLE_WORD, PASSWORD, USERNAME
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

RECORDS = {"customers": 230, "invoices": 330, "bank_transactions": 360}
SECRETS = {"username": USERNAME, "password": PASSWORD, "memorable_word": MEMORABLE_WORD}


def kf(app: Any, secrets: dict[str, Any] | None = None) -> Any:
    return session("kashflow", app, {"bank_account_id": "1"}, secrets or SECRETS)


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("kashflow")


@pytest.mark.parametrize(("stream", "count", "pages"), [("customers", 230, 3), ("invoices", 330, 4),
                                                        ("bank_transactions", 300, 3), ("bank_accounts", 2, 1)])
async def test_full_read_follows_next_page_url(stream: str, count: int, pages: int) -> None:
    app = sandbox("kashflow", records=RECORDS)
    async with kf(app) as s:
        records, got = await read_all(s, stream)
    assert len(got) == pages and len(records) == len({r.external_id for r in records}) == count
    assert app.state.sandbox.extra["logins"] == 1


async def test_lapsed_session_means_one_new_login() -> None:
    app = sandbox("kashflow", records=RECORDS)

    async def lapse(n: int) -> None:
        if n == 2:
            await control(app, "/_sandbox/expire-sessions")

    async with kf(app) as s:
        records, _ = await read_all(s, "invoices", between=lapse)
    assert len(records) == RECORDS["invoices"] and s.stats.refreshes == 1
    assert app.state.sandbox.extra["logins"] == 2


async def test_wrong_memorable_word_is_auth_failed() -> None:
    app = sandbox("kashflow")
    async with kf(app, {**SECRETS, "memorable_word": "zzzzzzzz"}) as s:
        with pytest.raises(AuthFailed, match="Memorable word characters are incorrect"):
            await read_all(s, "customers")


async def test_invoice_create_retried_is_not_duplicated_and_customer_writes() -> None:
    app = sandbox("kashflow", records=RECORDS)
    async with kf(app) as s:
        customers, _ = await read_all(s, "customers")
        code = customers[5].external_id
        invoice = {"CustomerCode": code, "IssuedDate": "2026-11-01T00:00:00", "DueDate": "2026-11-15T00:00:00",
                   "LineItems": [{"Description": "Residential care - November", "Quantity": 4, "Rate": 1250.0,
                                  "VATRate": 0, "NominalCode": 4000}]}
        first = await s.write("invoices", [OutboundRecord("wcn-inv-2026-11-0042", invoice)])
        again = await s.write("invoices", [OutboundRecord("wcn-inv-2026-11-0042", invoice)])
        new_customer = OutboundRecord("c-1", {"Code": "KENTCC", "Name": "Kent County Council"})
        made = await s.write("customers", [new_customer])
        repeat = await s.write("customers", [new_customer])
        edit = await s.write("customers", [OutboundRecord("c-2", {"Telephone": "0113 496 0000"}, external_id=code)])
        invoices, _ = await read_all(s, "invoices")
        after, _ = await read_all(s, "customers")
    assert first[0].ok and again[0].ok and first[0].external_id == again[0].external_id
    assert len(invoices) == RECORDS["invoices"] + 1
    assert made[0].ok and made[0].external_id == "KENTCC"
    assert not repeat[0].ok and "already exists" in (repeat[0].error_message or "")
    assert edit[0].ok and edit[0].external_id == code
    assert len(after) == RECORDS["customers"] + 1


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("kashflow", records=RECORDS)
    async with kf(app) as s:
        records, _ = await read_all(s, "invoices", between=storm_starter(app, storm))
    assert len(records) == len({r.external_id for r in records}) == RECORDS["invoices"]
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("kashflow", records=RECORDS)
    async with kf(app) as s:
        customers = await s.sample("customers", 60)
        invoices = await s.sample("invoices", 60)
        bank = await s.sample("bank_transactions", 60)
    contacts = map_records("kashflow", "Contact", customers)
    assert all(c["name"] and c["accountNumber"] for c in contacts)
    bills = map_records("kashflow", "Invoice", invoices)
    assert all(b["totalPence"] >= b["netPence"] and b["lines"] for b in bills)
    money = map_records("kashflow", "BankTransaction", bank)
    assert any(m["amountPence"] < 0 for m in money) and any(m["amountPence"] > 0 for m in money)
