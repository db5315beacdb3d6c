"""ADP Workforce Now connector: mutual TLS for real (the sandbox under uvicorn with CERT_REQUIRED and a test CA
made with ``cryptography``; the client certificate is part of the connection's secrets), client-credentials
token over the same TLS, OData $top/$skip paging ending in 204 No Content, storms and the Employee mapping."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest

from connectors.catalog import load_catalog
from connectors.errors import AuthFailed, ConnectorError
from connectors.manifest import RateLimits
from connectors.runtime import ConnectorSession
from connectors.sandboxes.adp import CLIENT_ID, CLIENT_SECRET
from connectors.sandboxes.mtls import SandboxPki, make_test_pki, serve_mtls

from .workforce_helpers import (
    CONNECTORS,
    fast_rules,
    manifest,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

WORKERS = 250
RECORDS = {"workers": WORKERS}


@pytest.fixture(scope="module")
def pki() -> SandboxPki:
    return make_test_pki(CLIENT_ID)


def secrets_for(pki: SandboxPki, *, client: Any = None) -> dict[str, Any]:
    chosen = client or pki.client
    return {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "client_certificate": chosen.cert,
            "client_key": chosen.key, "server_ca": pki.ca.cert}


def over_tls(base_url: str, secrets: dict[str, Any]) -> ConnectorSession:
    m = manifest("adp")
    return ConnectorSession(m, {}, secrets, base_url=base_url, connection_id=f"adp-mtls-{id(secrets)}",
                            allow_private=True, error_rules=fast_rules(m).model_copy(update={"max_attempts": 2}),
                            rate_limits=RateLimits())


def test_manifest_sandbox_and_honest_catalog() -> None:
    m = manifest("adp")
    assert m.client_certificate is not None and m.availability == "partner-only"
    entry = next(e for e in load_catalog(CONNECTORS).entries if e.id == "adp")
    assert entry.connector == "adp" and entry.availability == "partner-only"


async def test_full_read_over_real_mutual_tls(pki: SandboxPki) -> None:
    app = sandbox("adp", records=RECORDS)
    with serve_mtls(app, pki) as url:
        async with over_tls(url, secrets_for(pki)) as s:
            records, pages = await read_all(s, "workers")
    assert url.startswith("https://127.0.0.1:")
    assert [len(p.records) for p in pages] == [100, 100, 50]
    assert len({r.external_id for r in records}) == WORKERS
    assert app.state.sandbox.token_grants == {"client_credentials": 1}  # the token call went over mTLS too


async def test_without_the_right_certificate_the_handshake_fails(pki: SandboxPki) -> None:
    app = sandbox("adp", records=RECORDS)
    trusting = ssl.create_default_context(cadata=pki.ca.cert)
    with serve_mtls(app, pki) as url:
        async with httpx.AsyncClient(verify=trusting) as plain:  # trusts the server, shows no certificate
            with pytest.raises(httpx.HTTPError):
                resp = await plain.post(f"{url}/auth/oauth/v2/token", data={"grant_type": "client_credentials"})
                resp.raise_for_status()
        async with over_tls(url, secrets_for(pki, client=pki.stranger)) as s:  # a certificate from another CA
            with pytest.raises(ConnectorError, match="token endpoint unreachable"):
                await read_all(s, "workers")
    assert app.state.sandbox.token_grants == {}  # nothing got past the handshake
    with pytest.raises(AuthFailed, match="client certificate"):
        over_tls("https://127.0.0.1:9", {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})


async def test_paging_ends_with_no_content() -> None:
    app = sandbox("adp", records={"workers": 200})
    async with session("adp", app, {}, {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}) as s:
        records, pages = await read_all(s, "workers")
    assert [len(p.records) for p in pages] == [100, 100, 0]  # the third call is answered 204
    assert len(records) == 200 and s.stats.failed_calls == 0


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("adp", records=RECORDS)
    async with session("adp", app, {}, {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}) as s:
        records, _ = await read_all(s, "workers", between=storm_starter(app, storm))
    assert len(records) == len({r.external_id for r in records}) == WORKERS
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_template_maps_sandbox_workers() -> None:
    app = sandbox("adp", records=RECORDS)
    async with session("adp", app, {}, {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}) as s:
        workers = await s.sample("workers", 100)
    staff = map_records("adp", "Employee", workers)
    assert staff[0]["employeeNumber"] == "WC0001" and len(staff[0]["niNumber"]) == 9
    assert all(("endDate" in e) == (e["status"] == "inactive") for e in staff)
