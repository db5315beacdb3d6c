"""The designer in the simulated browser: drag, click-to-map, suggestions, transforms, explanation,
required flags, preview with per-field errors, versions with diff and restore, Advanced mode, and text safety."""

from __future__ import annotations

from typing import Any

from nicegui import ui
from nicegui.testing import User
from ui_helpers import connect_xero, sign_in

from storage.integrations import design_history, update_integration
from ui.services import services

XSS = "<img src=x onerror=alert(1)>"


async def open_designer(user: User, db: Any, name: str = "Xero for Willow Court") -> str:
    await sign_in(user, db)
    integration_id = await connect_xero(user, db, name)
    user.find(marker="continue-mapping").click()
    await user.should_see(marker="tgt:name", retries=100)
    return integration_id


async def test_drag_a_source_field_onto_a_target(user: User, db: Any) -> None:
    await open_designer(user, db)
    await user.should_see(marker="required-missing")
    user.find(marker="src:Name").trigger("dragstart")
    user.find(marker="tgt:name").trigger("drop")
    await user.should_see(marker="mapped:name")
    await user.should_see("Filled from Name")
    await user.should_see(marker="required-ok")


async def test_drop_carries_the_source_from_the_browser(user: User, db: Any) -> None:
    await open_designer(user, db)
    # What the browser's drop handler emits: the dragged field's index from dataTransfer.
    user.find(marker="tgt:email").trigger("drop", "src:4")
    await user.should_see(marker="mapped:email")
    await user.should_see("Filled from EmailAddress")


async def test_click_then_put_here_maps_without_a_mouse_drag(user: User, db: Any) -> None:
    await open_designer(user, db)
    await user.should_not_see(marker="put:accountNumber")
    user.find(marker="pick:AccountNumber").click()
    await user.should_see(marker="put:accountNumber")
    user.find(marker="put:accountNumber").click()
    await user.should_see(marker="mapped:accountNumber")
    await user.should_not_see(marker="put:name")  # the selection is used up


async def test_explanation_updates_live_and_remove_unmaps(user: User, db: Any) -> None:
    await open_designer(user, db)
    await user.should_see("Nothing is mapped yet.")
    user.find(marker="tgt:name").trigger("drop", "src:1")
    await user.should_see("Xero's Name becomes the contact's name")
    await user.should_see("This integration copies Xero contacts into WriteCareNotes")
    user.find(marker="unmap:name").click()
    await user.should_see("Nothing is mapped yet.")
    await user.should_see(marker="required-missing")


async def test_suggestions_accept_one_then_all(user: User, db: Any) -> None:
    await open_designer(user, db)
    await user.should_see(marker="suggestions")
    user.find(marker="accept:name").click()
    await user.should_see(marker="mapped:name")
    await user.should_not_see(marker="accept:name")
    user.find(marker="accept-all").click()
    await user.should_see(marker="mapped:email")
    await user.should_see(marker="mapped:accountNumber")
    await user.should_not_see(marker="suggestions")


async def test_transform_picker_shows_description_and_example(user: User, db: Any) -> None:
    await open_designer(user, db)
    user.find(marker="tgt:name").trigger("drop", "src:1")
    await user.should_see(marker="transform:name")
    picker = user.find(marker="transform:name").elements.pop()
    assert isinstance(picker, ui.select)
    assert "Changes the text to CAPITALS." in " ".join(map(str, picker.options.values()))  # type: ignore[union-attr]
    with user:
        picker.value = "upper"
    await user.should_see('Example: "sw1a 1aa" becomes "SW1A 1AA"')
    await user.should_see("in capitals")


async def test_save_versions_diff_and_restore(user: User, db: Any) -> None:
    integration_id = await open_designer(user, db)
    user.find(marker="save-design").click()
    await user.should_see("Fill these before saving: Name")
    user.find(marker="tgt:name").trigger("drop", "src:1")
    user.find(marker="save-comment").type("first cut")
    user.find(marker="save-design").click()
    await user.should_see("Saved version: 1")
    user.find(marker="tgt:email").trigger("drop", "src:4")
    user.find(marker="save-design").click()
    await user.should_see("Saved version: 2")
    await user.should_see(marker="restore-1")
    user.find(marker="restore-1").click()
    await user.should_see("Saved version: 3")
    await user.should_not_see(marker="mapped:email")
    with db.session() as s:
        history = design_history(s, integration_id=integration_id, stream="contacts", care_type="Contact")
    assert [h.version for h in history] == [3, 2, 1]
    assert [m["targetField"] for m in history[0].design["mappings"]] == ["name"]
    assert history[1].comment == "" and history[2].comment == "first cut"


async def test_version_diff_is_described_in_words(user: User, db: Any) -> None:
    await open_designer(user, db)
    user.find(marker="tgt:name").trigger("drop", "src:1")
    user.find(marker="save-design").click()
    await user.should_see("Saved version: 1")
    user.find(marker="tgt:email").trigger("drop", "src:4")
    await user.should_see("On screen but not in this version: Email from EmailAddress")
    await user.should_see("Differences from what is on screen (1)")


async def test_preview_shows_before_after_and_errors_in_place(user: User, db: Any) -> None:
    await open_designer(user, db)
    user.find(marker="tgt:name").trigger("drop", "src:1")
    user.find(marker="tgt:email").trigger("drop", "src:5")  # AccountNumber is not an email address
    user.find(marker="run-preview").click()
    await user.should_see(marker="preview-summary")
    await user.should_see("10 sample records")
    await user.should_see(marker="preview-error-1-email")
    await user.should_see("is not a valid e-mail address")
    await user.should_see("new record in WriteCareNotes")


async def test_advanced_switch_reveals_expressions(user: User, db: Any) -> None:
    await open_designer(user, db)
    await user.should_not_see(marker="expr:name")
    user.find(marker="advanced-switch").click()
    await user.should_see(marker="expr:name")
    user.find(marker="expr:name").type("Name")
    await user.should_see("A value worked out from Xero's record (advanced expression) becomes the contact's name")


async def test_fixed_value_fills_a_required_field(user: User, db: Any) -> None:
    await open_designer(user, db)
    user.find(marker="fixed:name").type("Resident family")
    await user.should_see(marker="required-ok")
    await user.should_see("Always Resident family")


async def test_user_text_is_shown_literally(user: User, db: Any) -> None:
    integration_id = await open_designer(user, db)
    with db.session() as s:
        update_integration(s, box=services().box, actor="test", integration_id=integration_id, name=XSS)
    await user.open(f"/integrations/{integration_id}/design/contacts")
    await user.should_see(f"{XSS}: Contacts → Contact in WriteCareNotes")
    assert not any(type(e).__name__ in ("Html", "Markdown") for e in user.client.elements.values())  # type: ignore[union-attr]


async def test_missing_integration_and_unknown_stream(user: User, db: Any) -> None:
    await sign_in(user, db)
    await user.open("/integrations/" + "0" * 32 + "/design/contacts")
    await user.should_see(marker="designer-missing")
    integration_id = await connect_xero(user, db)
    await user.open(f"/integrations/{integration_id}/design/nonsense")
    await user.should_see(marker="designer-bad-stream")


async def test_preview_diffs_against_the_current_care_record(user: User, db: Any) -> None:
    from storage.models import CareRecord, ExternalLink

    integration_id = await open_designer(user, db)
    first_id = "5fbffac3-bc89-7145-7b73-000000000000"  # the sandbox's first contact (seeded, stable)
    with db.session() as s:
        record = CareRecord(care_type="Contact", data={"name": "An old name", "accountNumber": "RES00001"})
        s.add(record)
        s.flush()
        s.add(ExternalLink(integration_id=integration_id, stream="contacts", external_id=first_id,
                           record_id=record.id))
    user.find(marker="tgt:name").trigger("drop", "src:1")
    user.find(marker="tgt:accountNumber").trigger("drop", "src:5")
    user.find(marker="run-preview").click()
    await user.should_see(f"Record 1 ({first_id}): 1 change to the current record")
    await user.should_see("An old name")
    await user.should_see("Record 2 (5fbffac3-bc89-7145-7b73-000000000001): new record in WriteCareNotes")


async def test_revoked_credentials_are_explained_in_designer_and_connect(user: User, db: Any) -> None:
    integration_id = await open_designer(user, db)
    with db.session() as s:  # the vendor no longer honours the tokens (revoked access and refresh token)
        update_integration(s, box=services().box, actor="test", integration_id=integration_id,
                           credentials={"tokens": {"access_token": "revoked", "refresh_token": "revoked",
                                                   "expires_at": 0}})
    await user.open(f"/integrations/{integration_id}/design/contacts")
    await user.should_see(marker="sample-problem", retries=50)
    await user.should_see("You can still map fields; sample values will be missing.")
    user.find(marker="tgt:name").trigger("drop", "src:1")
    await user.should_see(marker="mapped:name")
    user.find(marker="run-preview").click()
    await user.should_see(marker="preview-empty")
    await user.open(f"/connect/xero?integration={integration_id}")
    user.find(marker="test-connection").click()
    await user.should_see("Problem: Xero did not accept the credentials", retries=50)


async def test_start_from_the_ready_made_mapping_then_preview_and_save(user: User, db: Any) -> None:
    integration_id = await open_designer(user, db)
    user.find(marker="use-template").click()
    await user.should_see(marker="mapped:name")
    await user.should_see(marker="mapped:address.postcode")
    await user.should_see("Not saved yet")
    await user.should_see(marker="more-steps:email")  # the template trims, then lower-cases
    await user.should_see("Then also: changes the text to lower case.")
    user.find(marker="run-preview").click()
    await user.should_see(marker="preview-summary")
    user.find(marker="save-design").click()
    await user.should_see("Saved version: 1")
    with db.session() as s:
        saved = design_history(s, integration_id=integration_id, stream="contacts", care_type="Contact")[0]
    assert {m["targetField"] for m in saved.design["mappings"]} >= {"name", "email", "externalRefs.xero"}


async def test_invoice_lines_are_a_list_target_mapped_item_by_item(user: User, db: Any) -> None:
    await sign_in(user, db)
    integration_id = await connect_xero(user, db)
    await user.open(f"/integrations/{integration_id}/design/invoices")
    await user.should_see("Lines (a list)")
    user.find(marker="pick:LineItems").click()
    await user.should_see(marker="put:lines")
    user.find(marker="put:lines").click()
    await user.should_see(marker="transform:lines")
    picker = user.find(marker="transform:lines").elements.pop()
    with user:
        picker.value = "map_items"  # type: ignore[attr-defined]
    await user.should_see("Item field -> source item field, or {source, transformation}.")
    await user.should_see(marker="compile-problem")  # map_items needs to know which item fields to copy
    box = next(e for e in user.find(ui.input).elements if "Item field" in str(e.props.get("label")))
    with user:
        box.value = "description = Description; quantity = Quantity"  # type: ignore[attr-defined]
    await user.should_not_see(marker="compile-problem")
    await user.should_see("Xero's LineItems becomes the invoice's lines")


async def test_two_way_fields_and_record_filters(user: User, db: Any) -> None:
    integration_id = await open_designer(user, db)
    user.find(marker="tgt:name").trigger("drop", "src:1")
    await user.should_see(marker="two-way:name")
    user.find(marker="two-way:name").click()
    await user.should_see("changes in WriteCareNotes are written back")
    await user.should_see(marker="no-filters")
    with user:
        user.find(marker="filter-field").elements.pop().value = "IsCustomer"  # type: ignore[attr-defined]
    user.find(marker="filter-value").type("yes")
    user.find(marker="add-filter").click()
    await user.should_see("Only records whose IsCustomer is yes.")
    user.find(marker="run-preview").click()
    await user.should_see(marker="preview-summary")
    await user.should_see("skipped:")  # suppliers are left out, with the reason
    user.find(marker="save-design").click()
    await user.should_see("Saved version: 1")
    with db.session() as s:
        saved = design_history(s, integration_id=integration_id, stream="contacts", care_type="Contact")[0].design
    assert saved["filters"] == [{"field": "IsCustomer", "operator": "equals", "value": True}]
    assert saved["mappings"][0]["bidirectional"] is True
