"""Connect a bank through Open Banking in NiceGUI's simulated browser, against the in-process sandbox bank:
consent → the bank's authorize page → back with a code → connected, consent kept encrypted, accounts readable;
a consent refused at the bank saves nothing; a consent near its end prompts a re-authorisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from nicegui import app as nicegui_app
from nicegui.testing import User
from starlette.routing import Mount
from ui_helpers import newest_integration, sign_in

from connectors.banking.obie import consent_days_left
from connectors.sandboxes import LazySandboxes
from storage.integrations import get_integration, list_integrations, update_integration
from ui.components.connector_access import SANDBOX_PREFIX, session_for_integration
from ui.services import services


def sandbox_bank() -> FastAPI:
    """The Open Banking sandbox mounted in this app (built on its first request)."""
    for route in nicegui_app.routes:
        if isinstance(route, Mount) and route.path == SANDBOX_PREFIX and isinstance(route.app, LazySandboxes):
            bank = route.app.app_for("open_banking")
            assert bank is not None
            return bank
    raise AssertionError("sandboxes are not mounted")


async def customer_will(user: User, decision: str) -> None:
    """What the customer answers at the sandbox bank (its mounted app lives as long as the test process)."""
    resp = await user.http_client.post(f"{SANDBOX_PREFIX}/open_banking/_sandbox/ob/psu-decision",
                                       json={"decision": decision})
    assert resp.json() == {"decision": decision}


async def connect_bank(user: User, bank: str = "hsbc", name: str = "Willow Court operating account") -> None:
    await user.open("/connect/open_banking")
    select = user.find(marker="connect-bank").elements.pop()
    with user:
        select.value = bank  # type: ignore[attr-defined]
    user.find(marker="connect-name").clear().type(name)
    user.find(marker="connect-submit").click()


async def test_connect_bank_approved_at_the_bank_stores_the_consent_encrypted_and_reads(user: User, db: Any) -> None:
    await sign_in(user, db)
    await customer_will(user, "approve")
    await connect_bank(user, "hsbc")
    await user.should_see("Success:", retries=150)
    await user.should_see("HSBC access authorised until")
    await user.should_see("(90 days left)")
    await user.should_not_see(marker="bank-reauthorise-prompt")
    integration_id = newest_integration(db)
    with db.session() as s:
        row = get_integration(s, integration_id=integration_id)
        assert row.connection_details["environment"] == "sandbox" and row.connection_details["bank"] == "hsbc"
    creds = services().box.decrypt(row.credentials_encrypted)
    consent = creds["consent"]
    assert consent["id"] not in row.credentials_encrypted and "Authorised" not in row.credentials_encrypted
    assert consent["status"] == "Authorised" and consent_days_left(consent["expires"]) == 90
    assert creds["tokens"]["access_token"] and creds["tokens"]["refresh_token"]
    at_bank = sandbox_bank().state.sandbox.extra["consents"][consent["id"]]
    assert at_bank.status == "AUTH" and at_bank.expires == consent["expires"]
    assert "ReadTransactionsDetail" in at_bank.permissions
    async with session_for_integration(row) as sess:  # the saved connection reads the bank
        accounts = [r async for p in sess.read("accounts") for r in p.records]
        txs = [r async for p in sess.read("transactions") for r in p.records]
    per_account = sandbox_bank().state.sandbox.config.count("transactions", 120)
    assert [a.external_id for a in accounts] == ["acc-001", "acc-002", "acc-003"]
    assert len(txs) == 3 * per_account and len({t.external_id for t in txs}) == 3 * per_account


async def test_consent_rejected_at_the_bank_is_explained_and_nothing_is_saved(user: User, db: Any) -> None:
    await sign_in(user, db)
    await customer_will(user, "reject")
    before = set(sandbox_bank().state.sandbox.extra["consents"])
    await connect_bank(user, "barclays")
    await user.should_see(marker="oauth-problem", retries=150)
    await user.should_see("Barclays did not authorise CareHub to see your accounts (you chose not to allow access). "
                          "Nothing was saved.")
    with db.session() as s:
        assert list_integrations(s, limit=10).items == []
    consents = sandbox_bank().state.sandbox.extra["consents"]
    assert [c.status for k, c in consents.items() if k not in before] == ["RJCT"]  # asked once, refused


async def test_consent_near_its_end_prompts_and_re_authorises(user: User, db: Any) -> None:
    await sign_in(user, db)
    await customer_will(user, "approve")
    await connect_bank(user, "natwest")
    await user.should_see("Success:", retries=150)
    integration_id = newest_integration(db)
    with db.session() as s:
        row = get_integration(s, integration_id=integration_id)
        old = services().box.decrypt(row.credentials_encrypted)["consent"]
        soon = (datetime.now(UTC) + timedelta(days=6, hours=1)).replace(microsecond=0).isoformat()
        update_integration(s, box=services().box, actor="test", integration_id=integration_id,
                           credentials={"consent": {**old, "expires": soon}})
    await user.open(f"/connect/open_banking?integration={integration_id}")
    await user.should_see("NatWest access authorised until")
    await user.should_see("Your bank access ends in 7 days")
    await customer_will(user, "reject")
    user.find(marker="bank-reauthorise").click()  # refused at the bank: the existing access is kept
    await user.should_see("Your existing bank access is unchanged.", retries=150)
    with db.session() as s:
        kept = services().box.decrypt(get_integration(s, integration_id=integration_id).credentials_encrypted)
    assert kept["consent"]["id"] == old["id"] and kept["consent"]["expires"] == soon
    await customer_will(user, "approve")
    await user.open(f"/connect/open_banking?integration={integration_id}")
    user.find(marker="bank-reauthorise").click()
    await user.should_see("(90 days left)", retries=150)
    await user.should_not_see(marker="bank-reauthorise-prompt")
    with db.session() as s:
        renewed = services().box.decrypt(get_integration(s, integration_id=integration_id).credentials_encrypted)
        assert len(list_integrations(s, limit=10).items) == 1  # the same connection, renewed
    assert renewed["consent"]["id"] != old["id"] and consent_days_left(renewed["consent"]["expires"]) == 90
    at_bank = sandbox_bank().state.sandbox.extra["consents"]
    assert at_bank[renewed["consent"]["id"]].status == "AUTH"
    assert at_bank[old["id"]].status == "CANC"  # the replaced consent is withdrawn at the bank
