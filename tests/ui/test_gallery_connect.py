"""Gallery and Connect pages in NiceGUI's simulated browser, against the in-process vendor sandboxes."""

from __future__ import annotations

from typing import Any

from nicegui import ui
from nicegui.testing import User
from ui_helpers import connect_xero, newest_integration, sign_in

from storage.integrations import get_integration, get_sync_settings, update_integration
from ui.components.connector_access import catalog
from ui.services import services


async def test_gallery_lists_every_category_and_honest_badges(user: User, db: Any) -> None:
    await sign_in(user, db)
    await user.open("/gallery")
    for heading in ("Finance", "HR and workforce", "Healthcare", "Operations"):
        await user.should_see(heading)
    await user.should_see(marker="availability-available")
    await user.should_see(marker="availability-partner-only")
    await user.should_see(marker="connect-xero")


async def test_gallery_search_narrows_and_explains_no_match(user: User, db: Any) -> None:
    await sign_in(user, db)
    await user.open("/gallery")
    user.find(marker="gallery-search").type("bamboo")
    await user.should_see("BambooHR")
    await user.should_not_see("QuickBooks Online")
    user.find(marker="gallery-search").clear().type("no such vendor anywhere")
    await user.should_see(marker="gallery-empty")


async def test_gallery_available_only_switch_hides_partner_only_systems(user: User, db: Any) -> None:
    await sign_in(user, db)
    await user.open("/gallery")
    await user.should_see(marker="availability-partner-only")
    user.find(marker="gallery-available-only").click()
    await user.should_not_see(marker="availability-partner-only")
    await user.should_see(marker="connect-xero")


async def test_connect_unknown_system_says_why(user: User, db: Any) -> None:
    await sign_in(user, db)
    await user.open("/connect/not_a_vendor")
    await user.should_see(marker="connect-unknown")
    # Every system in the catalog has a route now: none may send a manager to a dead end.
    assert all(e.connector for e in catalog().list())


async def test_connect_xero_runs_the_oauth_redirect_and_stores_encrypted_tokens(user: User, db: Any) -> None:
    await sign_in(user, db)
    integration_id = await connect_xero(user, db)
    await user.should_see("Organisation: Willow Court Care Home Ltd")
    with db.session() as s:
        row = get_integration(s, integration_id=integration_id)
        assert row.connection_details["environment"] == "sandbox"
        assert row.connection_details["tenant_id"]
        assert "access_token" not in row.credentials_encrypted  # encrypted, not plain JSON
    creds = services().box.decrypt(row.credentials_encrypted)
    assert creds["tokens"]["access_token"] and creds["tokens"]["refresh_token"]


async def test_connect_form_requires_a_name(user: User, db: Any) -> None:
    await sign_in(user, db)
    await user.open("/connect/xero")
    user.find(marker="connect-name").clear()
    user.find(marker="connect-submit").click()
    await user.should_see("Please fill in: Name for this connection.")


async def test_oauth_callback_rejects_a_state_it_did_not_start(user: User, db: Any) -> None:
    await sign_in(user, db)
    await user.open("/oauth/callback?code=abc&state=forged")
    await user.should_see(marker="oauth-problem")
    await user.should_see("This sign-in link is not one CareHub started")


async def test_oauth_callback_reports_a_refusal(user: User, db: Any) -> None:
    await sign_in(user, db)
    await user.open("/oauth/callback?error=access_denied&error_description=The+user+said+no")
    await user.should_see(marker="oauth-problem")


async def test_practice_mode_connects_with_the_sandbox_test_account(user: User, db: Any) -> None:
    await sign_in(user, db)
    await user.open("/connect/bamboohr")
    await user.should_not_see(marker="field-api_key")  # the sandbox hands CareHub its test key
    domain = user.find(marker="field-company_domain").elements.pop()
    assert domain.value == "willowcourt"  # type: ignore[attr-defined]
    user.find(marker="field-time_off_start").type("2026-01-01")
    user.find(marker="field-time_off_end").type("2026-12-31")
    user.find(marker="connect-submit").click()
    await user.should_see("Success: Connected to BambooHR", retries=100)


async def test_api_key_is_a_write_only_password_field_and_a_wrong_key_is_explained(user: User, db: Any) -> None:
    await sign_in(user, db)
    await user.open("/connect/bamboohr")
    env = user.find(marker="connect-environment").elements.pop()
    with user:
        env.value = "production"  # type: ignore[attr-defined]
    await user.should_see(marker="field-api_key")
    key_box = user.find(marker="field-api_key").elements.pop()
    assert isinstance(key_box, ui.input)
    assert key_box.props.get("type") == "password"
    with user:
        env.value = "sandbox"  # type: ignore[attr-defined]
    await user.should_not_see(marker="field-api_key")
    user.find(marker="field-time_off_start").type("2026-01-01")
    user.find(marker="field-time_off_end").type("2026-12-31")
    user.find(marker="connect-submit").click()
    await user.should_see("Success: Connected to BambooHR", retries=100)
    integration_id = newest_integration(db)
    with db.session() as s:  # the key is replaced by a wrong one (as if it was revoked at BambooHR)
        update_integration(s, box=services().box, actor="test", integration_id=integration_id,
                           credentials={"api_key": "definitely-not-the-key"})
    await user.open(f"/connect/bamboohr?integration={integration_id}")
    user.find(marker="test-connection").click()
    await user.should_see("Problem: BambooHR did not accept the credentials", retries=100)
    assert user.client is not None
    for element in user.client.elements.values():  # the saved key is never put back into the page
        assert "definitely-not-the-key" not in str(getattr(element, "value", ""))
        assert "definitely-not-the-key" not in str(element.props)
    with db.session() as s:
        assert "definitely-not-the-key" not in get_integration(s, integration_id=integration_id).credentials_encrypted


async def test_choosing_data_types_goes_to_the_designer(user: User, db: Any) -> None:
    await sign_in(user, db)
    integration_id = await connect_xero(user, db)
    user.find(marker="stream-invoices").click()
    user.find(marker="continue-mapping").click()
    await user.should_see("Map fields", retries=100)
    with db.session() as s:
        streams = [x["stream"] for x in get_sync_settings(s, integration_id=integration_id).streams]
    assert streams == ["contacts", "invoices"]


async def test_no_data_type_chosen_is_refused(user: User, db: Any) -> None:
    await sign_in(user, db)
    await connect_xero(user, db)
    user.find(marker="stream-contacts").click()  # untick the default
    user.find(marker="continue-mapping").click()
    await user.should_see("Tick at least one kind of record.")


async def test_systems_without_a_sandbox_offer_only_a_live_account(user: User, db: Any) -> None:
    await sign_in(user, db)
    await user.open("/connect/hl7_lab")
    await user.should_see(marker="connect-form")
    await user.should_not_see(marker="connect-environment")
    await user.open("/connect/xero")
    await user.should_see(marker="connect-environment")


async def test_a_bank_card_opens_open_banking_with_that_bank_chosen(user: User, db: Any) -> None:
    await sign_in(user, db)
    await user.open("/gallery")
    user.find(marker="gallery-search").type("hsbc")
    user.find(marker="connect-hsbc").click()
    await user.should_see(marker="connect-bank")
    (picker,) = user.find(marker="connect-bank").elements
    assert picker.value == "hsbc"  # type: ignore[attr-defined]


async def test_partner_only_systems_with_a_connector_can_be_connected_and_say_what_they_need(
        user: User, db: Any) -> None:
    await sign_in(user, db)
    await user.open("/gallery")
    user.find(marker="gallery-search").type("paychex")
    await user.should_see("Connect Paychex (with partner access)")
    user.find(marker="connect-paychex").click()
    await user.should_see(marker="connect-form")
