"""The operations sandboxes mounted under ``/sandbox/<id>`` as in demo mode: next links, path pages, signed
URLs and token endpoints keep working behind the prefix, across more than one page."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from connectors.manifest import RateLimits
from connectors.runtime import ConnectorSession
from connectors.sandboxes import (
    SandboxConfig,
    brightpearl,
    cin7,
    coupa,
    fiix,
    microsoft_teams,
    mount_sandboxes,
    samsara,
    unleashed,
    upkeep,
    verizon_connect,
    webfleet,
    whatsapp_business,
    zoom,
)
from connectors.sandboxes.operations import OPERATIONS_SANDBOXES

from .ops_helpers import fast_rules, manifest, map_records

CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {  # connector: (stream, config, secrets)
    "microsoft_teams": ("channel_messages", {"tenant_id": microsoft_teams.TENANT_ID, "team_id": microsoft_teams.TEAM_ID,
                                             "channel_id": microsoft_teams.CHANNEL_ID},
                        {"client_id": microsoft_teams.CLIENT_ID, "client_secret": microsoft_teams.CLIENT_SECRET}),
    "cin7": ("products", {"account_id": cin7.ACCOUNT_ID}, {"application_key": cin7.APPLICATION_KEY}),
    "unleashed": ("products", {}, {"api_id": unleashed.API_ID, "api_key": unleashed.API_KEY}),
    "brightpearl": ("products", {"account_code": brightpearl.ACCOUNT, "app_ref": brightpearl.APP_REF},
                    {"account_token": brightpearl.ACCOUNT_TOKEN}),
    "upkeep": ("work_orders", {}, {"email": upkeep.EMAIL, "password": upkeep.PASSWORD}),
    "fiix": ("work_orders", {"tenant": "willowcourt"}, {"app_key": fiix.APP_KEY, "access_key": fiix.ACCESS_KEY,
                                                        "secret_key": fiix.SECRET_KEY}),
    "samsara": ("trips", {}, {"api_token": samsara.API_TOKEN}),
    "webfleet": ("trips", {"account": webfleet.ACCOUNT}, {"username": webfleet.USERNAME,
                                                          "password": webfleet.PASSWORD, "api_key": webfleet.API_KEY}),
    "zoom": ("meetings", {"account_id": zoom.ACCOUNT_ID, "user_id": zoom.USER_EMAIL},
             {"client_id": zoom.CLIENT_ID, "client_secret": zoom.CLIENT_SECRET}),
    "whatsapp_business": ("message_templates", {"phone_number_id": whatsapp_business.PHONE_NUMBER_ID,
                                                "waba_id": whatsapp_business.WABA_ID},
                          {"system_user_token": whatsapp_business.ACCESS_TOKEN}),
    "coupa": ("purchase_orders", {"instance": "willowcourt"}, {"client_id": coupa.CLIENT_ID,
                                                               "client_secret": coupa.CLIENT_SECRET}),
    "verizon_connect": ("locations", {"app_id": verizon_connect.APP_ID},  # 620 vehicles, bulk POSTs of 50
                        {"username": verizon_connect.USERNAME, "password": verizon_connect.PASSWORD}),
}


@pytest.fixture(scope="module")
def hub() -> FastAPI:
    app = FastAPI()
    mount_sandboxes(app, "/sandbox", SandboxConfig(records=620), only=list(OPERATIONS_SANDBOXES))
    return app


def test_every_operations_sandbox_has_a_case() -> None:
    assert set(CASES) == set(OPERATIONS_SANDBOXES)


@pytest.mark.parametrize("connector", sorted(CASES))
async def test_multi_page_read_behind_the_mount(hub: FastAPI, connector: str) -> None:
    stream, config, secrets = CASES[connector]
    m = manifest(connector)
    async with ConnectorSession(m, config, secrets, base_url=f"http://hub/sandbox/{connector}",
                                transport=httpx.ASGITransport(app=hub), connection_id=f"mounted-{connector}",
                                error_rules=fast_rules(m), rate_limits=RateLimits()) as sess:
        ids: list[str] = []
        pages = 0
        async for page in sess.read(stream):
            ids += [r.external_id for r in page.records]
            pages += 1
    assert len(ids) == len(set(ids)) == 620 and pages >= 2, (connector, len(ids), pages)


@pytest.mark.parametrize("connector", sorted(CASES))
def test_connection_form_asks_for_every_secret_the_connector_uses(connector: str) -> None:
    from ui.components.connection_form import form_fields

    _stream, config, secrets = CASES[connector]
    asked = {f.name for f in form_fields(manifest(connector), sandbox=False)}
    assert set(secrets) <= asked, (connector, set(secrets) - asked)
    assert set(config) <= asked, (connector, set(config) - asked)


SUPPLIER_STREAMS = {"cin7": "suppliers", "unleashed": "suppliers", "brightpearl": "suppliers", "coupa": "suppliers"}


@pytest.mark.parametrize("connector", sorted(SUPPLIER_STREAMS))
async def test_suppliers_map_to_contacts(hub: FastAPI, connector: str) -> None:
    stream = SUPPLIER_STREAMS[connector]
    _s, config, secrets = CASES[connector]
    m = manifest(connector)
    assert m.streams[stream].care_type == "Contact"
    async with ConnectorSession(m, config, secrets, base_url=f"http://hub/sandbox/{connector}",
                                transport=httpx.ASGITransport(app=hub), connection_id=f"contacts-{connector}",
                                error_rules=fast_rules(m), rate_limits=RateLimits()) as sess:
        records = await sess.sample(stream, 25)
    contacts = map_records(connector, "Contact", records, stream=stream)
    assert len(contacts) == len(records) > 0
    assert all(c["kind"] == "supplier" and c["name"] and c["status"] in {"active", "inactive"} for c in contacts)
