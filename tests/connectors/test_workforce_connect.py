"""The Connect page's "test connection" for every HR, rota, payroll and small-accounting connector: it
succeeds with the sandbox's own credentials and explains a refusal in plain English."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from connectors.sandboxes import kashflow, planday, staffology, when_i_work

from .workforce_helpers import sandbox, session


def oauth(app: FastAPI) -> dict[str, Any]:
    tok = app.state.sandbox.issue_tokens()
    return {"client_id": "carehub", "client_secret": "s3cret", "access_token": tok["access_token"],
            "refresh_token": tok["refresh_token"], "expires_at": time.time() + 300}


def from_sandbox(app: FastAPI) -> dict[str, Any]:
    return dict(app.state.credentials)


Secrets = Callable[[FastAPI], dict[str, Any]]
CASES: dict[str, tuple[dict[str, Any], Secrets, dict[str, Any]]] = {
    "breathe_hr": ({}, from_sandbox, {"api_key": "wrong"}),
    "rotacloud": ({}, from_sandbox, {"api_key": "wrong"}),
    "brightpay": ({}, oauth, {"client_id": "x", "client_secret": "y", "access_token": "bad", "refresh_token": "bad"}),
    "staffology": ({"employer_id": staffology.EMPLOYER_ID}, from_sandbox, {"api_key": "wrong"}),
    "freeagent": ({}, oauth, {"client_id": "x", "client_secret": "y", "access_token": "bad", "refresh_token": "bad"}),
    "peoplehr": ({}, from_sandbox, {"api_key": "wrong"}),
    "when_i_work": ({}, from_sandbox, {"developer_key": when_i_work.DEVELOPER_KEY, "email": when_i_work.EMAIL,
                                       "password": "wrong"}),
    "planday": ({}, lambda app: {"client_id": planday.CLIENT_ID, "refresh_token": planday.REFRESH_TOKEN},
                {"client_id": planday.CLIENT_ID, "refresh_token": "revoked"}),
    "kashflow": ({}, from_sandbox, {"username": kashflow.USERNAME, "password": kashflow.PASSWORD,
                                    "memorable_word": "zzzzzzzz"}),
}


@pytest.mark.parametrize("connector", sorted(CASES))
async def test_connection_succeeds_with_sandbox_credentials(connector: str) -> None:
    config, secrets, _ = CASES[connector]
    app = sandbox(connector, records=30)
    async with session(connector, app, config, secrets(app)) as s:
        result = await s.test_connection()
    assert result.ok, result.reason
    assert result.reason.startswith(f"Connected to {s.manifest.name}")


@pytest.mark.parametrize("connector", sorted(CASES))
async def test_connection_explains_refused_credentials(connector: str) -> None:
    config, _, bad = CASES[connector]
    app = sandbox(connector, records=30)
    async with session(connector, app, config, bad) as s:
        result = await s.test_connection()
    assert not result.ok
    assert s.manifest.name in result.reason and "credentials" in result.reason


WRITE_ONLY = {("brightpay", "hourly_payments")}
WRITE_FIELDS: dict[tuple[str, str], set[str]] = {}
NEEDS = {"staffology": {"tax_year": "Year2026", "pay_period": "Monthly", "period_number": "6"},
         "freeagent": {"bank_account": "http://freeagent.sandbox/v2/bank_accounts/81"},
         "kashflow": {"bank_account_id": "1"},
         "peoplehr": {"holiday_query": "CareHub holidays", "absence_query": "CareHub sickness and other absence"}}


@pytest.mark.parametrize("connector", sorted(CASES))
async def test_every_declared_field_is_in_the_sandbox_records(connector: str) -> None:
    config, secrets, _ = CASES[connector]
    app = sandbox(connector, records=30)
    async with session(connector, app, {**config, **NEEDS.get(connector, {})}, secrets(app)) as s:
        for name, stream in s.manifest.streams.items():
            if (connector, name) in WRITE_ONLY:
                continue
            records = await s.sample(name, 5)
            assert records, f"{connector}.{name} read nothing"
            declared = {f.name for f in stream.fields} - WRITE_FIELDS.get((connector, name), set())
            missing = declared - set(records[0].data)
            assert not missing, f"{connector}.{name}: declared but not sent: {sorted(missing)}"
