"""Open Banking AIS connector against the OBIE sandbox: consent flow, paging, increments, errors, profiles,
and requests/replies checked against the OBIE OpenAPI schemas (vendor-specs/open-banking)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jsonschema
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from shared_docs import VENDOR_SPECS

from connectors.banking.obie import (
    authorization_url,
    complete_authorisation,
    consent_days_left,
    consent_expiry,
    create_consent,
    needs_reauthorisation,
)
from connectors.errors import ConnectorError, VendorError
from connectors.manifest import RateLimits, load_manifest
from connectors.runtime import ConnectorSession
from connectors.sandboxes import open_banking as ob
from connectors.sandboxes.common import SandboxConfig
from connectors.sessions import open_session
from engine.ports import OutboundRecord

from .conftest import TEMPLATES, fast_rules

SPEC = VENDOR_SPECS / "open-banking/account-info-openapi.yaml"
MANIFEST = load_manifest(TEMPLATES / "open_banking.yaml")
REDIRECT = "https://carehub.example/connect/callback"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
PUBLIC_PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@lru_cache(maxsize=1)
def _spec() -> dict[str, Any]:
    return yaml.load(SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def conforms(instance: Any, schema_name: str) -> None:
    """Validate against ``#/components/schemas/<name>`` of the OBIE OpenAPI document."""
    if not SPEC.exists():
        pytest.skip("vendor spec not available")
    registry = Registry().with_resource("urn:obie", Resource.from_contents(_spec(), default_specification=DRAFT4))
    validator = jsonschema.Draft4Validator({"$ref": f"urn:obie#/components/schemas/{schema_name}"}, registry=registry)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


async def _control(app: FastAPI, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ob.sandbox") as c:
        resp = await c.post(path, json=body)
        out: dict[str, Any] = resp.json()
        return out


def _session(app: FastAPI, environment: str = "sandbox") -> ConnectorSession:
    return open_session(MANIFEST, {"environment": environment, "psu_ip_address": "203.0.113.7"},
                        {"client_id": ob.CLIENT_ID, "private_key": PRIVATE_PEM, "kid": "carehub-signing-1"},
                        base_url="http://ob.sandbox", transport=httpx.ASGITransport(app=app),
                        connection_id=f"ob-{environment}-{id(app)}", error_rules=fast_rules(MANIFEST),
                        rate_limits=RateLimits())


async def _connect(app: FastAPI, s: ConnectorSession) -> str:
    """Consent → PSU authorisation (sandbox approves) → code exchange. Returns the consent id."""
    consent = await create_consent(s, transaction_from="2024-01-01T00:00:00+00:00")
    assert consent["Status"] == "AWAU"
    url = authorization_url(s, consent["ConsentId"], REDIRECT, state="xyz")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ob.sandbox") as c:
        resp = await c.get(url)
    assert resp.status_code == 302
    back = parse_qs(urlsplit(resp.headers["location"]).query)
    assert back["state"] == ["xyz"]
    await complete_authorisation(s, back["code"][0], REDIRECT)
    return str(consent["ConsentId"])


@pytest.fixture
async def bank() -> FastAPI:
    app = ob.create_app(SandboxConfig(records=60))
    await _control(app, "/_sandbox/ob/register-client", {"public_key_pem": PUBLIC_PEM})
    return app


async def test_consent_flow_then_accounts_balances_and_every_transaction_page(bank: FastAPI) -> None:
    async with _session(bank) as s:
        consent_id = await _connect(bank, s)
        assert bank.state.sandbox.extra["consents"][consent_id].status == "AUTH"
        conforms(bank.state.sandbox.extra["last_consent_body"], "OBReadConsent1")
        accounts = [r async for p in s.read("accounts") for r in p.records]
        assert [a.external_id for a in accounts] == ["acc-001", "acc-002", "acc-003"]
        balances = [r async for p in s.read("balances") for r in p.records]
        assert {b.external_id for b in balances} >= {"acc-001-ITBD", "acc-001-ITAV"}
        pages = [p async for p in s.read("transactions")]
        assert len(pages) == 8  # 180 transactions, 25 a page, followed through Links.Next
        txs = [r for p in pages for r in p.records]
        assert len(txs) == 180 and len({t.external_id for t in txs}) == 180
        assert s.stats.requests == 8 + 2  # no page fetched twice
        t = txs[0].data
        assert t["Amount"]["Currency"] == "GBP" and t["Status"] == "BOOK"
        assert pages[-1].checkpoint == {"since": max(x.updated_at for x in txs if x.updated_at).isoformat()}
        with pytest.raises(ConnectorError, match="read-only"):
            await s.write("transactions", [OutboundRecord("k", {"Amount": {"Amount": "1.00"}})])


async def test_incremental_read_asks_from_the_last_booking_time(bank: FastAPI) -> None:
    async with _session(bank) as s:
        await _connect(bank, s)
        first = [p async for p in s.read("transactions")]
        cp = first[-1].checkpoint
        await _control(bank, "/_sandbox/ob/post-transaction", {"account_id": "acc-002", "amount": 1320.0,
                                                                "information": "KENT CC CARE FEES"})
        later = [r async for p in s.read("transactions", cp) for r in p.records]
    ids = [r.external_id for r in later]
    assert "acc-002-tx-000061" in ids
    assert len(later) <= 3  # the boundary transaction (inclusive filter) plus the new one; upserts absorb it
    seen = bank.state.sandbox.extra["requests"][-1]
    assert seen["x-fapi-customer-ip-address"] == "203.0.113.7" and seen["x-fapi-interaction-id"]


async def test_sandbox_replies_conform_to_the_obie_schemas(bank: FastAPI) -> None:
    async with _session(bank) as s:
        await _connect(bank, s)
        for path, schema in (("/accounts", "OBReadAccount6"), ("/balances", "OBReadBalance1"),
                             ("/transactions?page=2", "OBReadTransaction6"),
                             ("/accounts/acc-003/transactions?fromBookingDateTime=2024-01-05T00:00:00",
                              "OBReadTransaction6")):
            resp = await s.request(lambda p=path: _get(s, p))  # type: ignore[misc]
            body = resp.json()
            conforms(body, schema)
            assert resp.headers["x-fapi-interaction-id"]
        consents = bank.state.sandbox.extra["consents"]
        cid = next(c for c in consents if c != ob.DEMO_CONSENT)
        resp = await s.request(lambda: _get(s, f"/account-access-consents/{cid}"))
        conforms(resp.json(), "OBReadConsentResponse1")


def _get(s: ConnectorSession, path: str) -> Any:
    from connectors.auth import OutgoingRequest

    return OutgoingRequest("GET", f"{s.base_url}/open-banking/v3.1/aisp{path}")


async def test_errors_arrive_in_the_obie_envelope_and_throttling_is_retried(bank: FastAPI) -> None:
    async with _session(bank) as s:
        consent_id = await _connect(bank, s)
        with pytest.raises(VendorError) as bad:
            await s.request(lambda: _get(s, "/transactions?fromBookingDateTime=last-tuesday"))
        assert bad.value.status == 400 and bad.value.code == "DT01"
        assert bad.value.vendor_message == "fromBookingDateTime is not an ISO 8601 date-time (fromBookingDateTime)"
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bank), base_url="http://ob.sandbox") as c:
            raw = await c.get("/open-banking/v3.1/aisp/transactions?fromBookingDateTime=x",
                              headers={"Authorization": f"Bearer {(await s.token_store.load(s.connection_id) or {})['access_token']}"})
        conforms(raw.json(), "OBErrorResponse1")
        await _control(bank, "/_sandbox/faults", {"storm_429": 2, "retry_after": "0"})
        accounts = [r async for p in s.read("accounts") for r in p.records]
        assert len(accounts) == 3 and s.stats.throttled == 2
        # The PSU withdraws consent at the bank: reads fail with the bank's own reason.
        bank.state.sandbox.extra["consents"][consent_id].status = "CANC"
        with pytest.raises(VendorError) as gone:
            [r async for p in s.read("accounts") for r in p.records]
        assert gone.value.status == 403 and "not authorised (CANC)" in gone.value.vendor_message
        result = await s.test_connection()
        assert not result.ok and "CANC" in result.reason


async def test_an_expired_access_token_is_refreshed_once(bank: FastAPI) -> None:
    async with _session(bank) as s:
        await _connect(bank, s)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bank), base_url="http://ob.sandbox") as c:
            await c.post("/_sandbox/expire-tokens")
        accounts = [r async for p in s.read("accounts") for r in p.records]
        assert len(accounts) == 3 and s.stats.refreshes == 1
        assert bank.state.sandbox.token_grants.get("refresh_token") == 1


async def test_bank_profiles_add_their_headers_and_the_client_assertion_is_checked(bank: FastAPI) -> None:
    async with _session(bank, environment="lloyds") as s:
        await _connect(bank, s)
        [r async for p in s.read("accounts") for r in p.records]
    assert bank.state.sandbox.extra["requests"][-1]["x-lbg-channel"] == "RC"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    forged = open_session(MANIFEST, {"environment": "sandbox"}, {"client_id": ob.CLIENT_ID, "private_key": other},
                          base_url="http://ob.sandbox", transport=httpx.ASGITransport(app=bank),
                          connection_id="ob-forged", error_rules=fast_rules(MANIFEST), rate_limits=RateLimits())
    async with forged:
        with pytest.raises(ConnectorError, match=r"invalid_client|Signature"):
            await create_consent(forged)


@pytest.mark.parametrize("bank_id", ["barclays", "hsbc", "lloyds", "natwest"])
def test_every_bank_profile_has_an_environment(bank_id: str) -> None:
    from connectors.banking.profiles import PROFILES

    env = MANIFEST.environments[bank_id]
    assert env.base_url.startswith("https://") and env.token_url and env.token_url.startswith("https://")
    assert PROFILES[bank_id].name


async def test_a_tpp_token_cannot_read_accounts_but_a_demo_token_can(bank: FastAPI) -> None:
    async with _session(bank) as s:
        tpp = await s.auth.client_credentials_token()  # type: ignore[attr-defined]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bank), base_url="http://ob.sandbox") as c:
            denied = await c.get("/open-banking/v3.1/aisp/accounts", headers={"Authorization": f"Bearer {tpp}"})
            demo = (await c.post("/_sandbox/tokens")).json()["access_token"]
            ok = await c.get("/open-banking/v4.0/aisp/accounts", headers={"Authorization": f"Bearer {demo}"})
    assert denied.status_code == 403 and denied.json()["Errors"][0]["ErrorCode"] == "AG01"
    conforms(denied.json(), "OBErrorResponse1")
    assert ok.status_code == 200 and len(ok.json()["Data"]["Account"]) == 3


async def test_the_bank_transaction_mapping_signs_amounts_in_pence(bank: FastAPI) -> None:
    from engine.mapping import compile_design, load_mapping_template_file

    compiled = compile_design(load_mapping_template_file(
        TEMPLATES.parent / "mappings" / "open_banking" / "BankTransaction.yaml"))
    async with _session(bank) as s:
        await _connect(bank, s)
        records = [r async for p in s.read("transactions") for r in p.records]
    mapped = [compiled.apply(r.data) for r in records]
    assert all(m.ok for m in mapped), [m.errors for m in mapped if not m.ok][:3]
    for r, m in zip(records, mapped, strict=True):
        pence = round(float(r.data["Amount"]["Amount"]) * 100)
        assert m.values["amountPence"] == (-pence if r.data["CreditDebitIndicator"] == "Debit" else pence)
        assert m.values["bankAccountRef"] == r.data["AccountId"] and m.values["date"] == r.data["BookingDateTime"][:10]


def test_catalog_sends_every_bank_to_the_one_obie_connector() -> None:
    from connectors.catalog import load_catalog
    from connectors.sandboxes import SANDBOXES

    by_id = {e.id: e for e in load_catalog(TEMPLATES).entries}
    for bank in ("open_banking", "barclays", "hsbc", "lloyds", "natwest"):
        assert by_id[bank].connector == "open_banking" and by_id[bank].availability == "available"
        assert "aisp" in by_id[bank].note.lower() or "fca" in by_id[bank].note.lower()
    assert "open_banking" in SANDBOXES


async def test_a_browser_sees_the_consent_screen_and_a_refusal_comes_back_as_access_denied(bank: FastAPI) -> None:
    async with _session(bank) as s:
        consent = await create_consent(s, expires="2031-01-01T00:00:00+00:00")
        url = authorization_url(s, consent["ConsentId"], REDIRECT, state="st1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bank), base_url="http://ob.sandbox") as c:
        screen = await c.get(url, headers={"Accept": "text/html,application/xhtml+xml"})
        assert screen.status_code == 200 and "your balances" in screen.text and "2031-01-01" in screen.text
        assert bank.state.sandbox.extra["consents"][consent["ConsentId"]].status == "AWAU"  # nothing decided yet
        reject = html.unescape(re.findall(r'href="([^"]+)"', screen.text)[1])
        assert "psu_decision=reject" in reject
        back = await c.get(reject)
    assert back.status_code == 302
    assert parse_qs(urlsplit(back.headers["location"]).query) == {"error": ["access_denied"], "state": ["st1"]}
    assert bank.state.sandbox.extra["consents"][consent["ConsentId"]].status == "RJCT"


async def test_an_expired_consent_reads_nothing(bank: FastAPI) -> None:
    async with _session(bank) as s:
        await _connect(bank, s)
        cid = next(c for c in bank.state.sandbox.extra["consents"] if c != ob.DEMO_CONSENT)
        bank.state.sandbox.extra["consents"][cid].expires = "2020-01-01T00:00:00+00:00"
        with pytest.raises(VendorError, match="not authorised"):
            [r async for p in s.read("accounts") for r in p.records]
    assert bank.state.sandbox.extra["consents"][cid].status == "Expired"


def test_consent_days_left_and_the_re_authorise_threshold() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert consent_expiry(now) == "2027-02-26T12:00:00+00:00"  # 90 days
    assert consent_days_left(consent_expiry(now), now) == 90
    assert consent_days_left("2026-11-28T12:00:01+00:00", now) == 1  # a part-day counts
    assert consent_days_left("2026-11-28T11:59:59Z", now) == -1  # ended
    assert consent_days_left(None, now) is None and consent_days_left("soon", now) is None
    assert not needs_reauthorisation("2026-12-13T12:00:00+00:00", now)  # 15 days left
    assert needs_reauthorisation("2026-12-12T12:00:00+00:00", now)  # 14 days left
    assert needs_reauthorisation("2020-01-01T00:00:00+00:00", now) and not needs_reauthorisation(None, now)
