"""The pure parts behind the pages: the mapping draft, form generation, transform arguments, sentences."""

from __future__ import annotations

import re

import pytest

from connectors.manifest import StreamField
from engine.caretypes import CARE_TYPES
from engine.mapping import FieldMapping, TransformStep, compile_design
from ui.components.connection_form import form_fields, uses_redirect
from ui.components.connector_access import catalog
from ui.components.mapping_state import MappingDraft, SourceField, humanise, target_fields
from ui.components.ownership_text import MODES, rule_sentence, schedule_sentence
from ui.components.samples import first_sample, short, source_fields
from ui.components.transforms import arg_text, function_options, parse_arg
from ui.pages.settings import collect


def draft() -> MappingDraft:
    sources = [SourceField("Name", "string", "Full name"), SourceField("EmailAddress", "string", "Email")]
    return MappingDraft(connector="xero", stream="contacts", care_type=CARE_TYPES["Contact"], sources=sources,
                        key_field="ContactID")


def test_targets_flatten_nested_objects_and_flag_required() -> None:
    targets = {t.path: t for t in target_fields(CARE_TYPES["Contact"])}
    assert "address.postcode" in targets and "address" not in targets
    assert targets["address.postcode"].label == "Address: Postcode"
    assert targets["name"].required


def test_click_to_map_needs_a_selection_and_uses_it_once() -> None:
    d = draft()
    assert d.click_target("name") is None
    d.select_source("Name")
    mapping = d.click_target("name")
    assert mapping is not None and mapping.source_field == "Name" and mapping.required
    assert d.selected_source is None
    d.select_source("Name")
    d.select_source("Name")  # clicking again cancels
    assert d.selected_source is None
    with pytest.raises(KeyError):
        d.select_source("Nope")


def test_required_fields_are_missing_until_mapped_and_the_design_compiles() -> None:
    d = draft()
    assert [t.path for t in d.missing_required()] == ["name"]
    d.map("Name", "name")
    d.map("EmailAddress", "email")
    d.set_transform("email", "lower")
    assert d.missing_required() == []
    compiled = compile_design(d.to_design())
    assert compiled.apply({"Name": "Jo", "EmailAddress": "JO@X.ORG"}).values == {"name": "Jo", "email": "jo@x.org"}


def test_remapping_keeps_the_transform_and_fixed_values_fill_alone() -> None:
    d = draft()
    d.map("Name", "name")
    d.set_transform("name", "upper")
    d.map("EmailAddress", "name")
    assert d.mappings["name"].transformation[0].function == "upper"
    d.set_default("kind", "customer")
    assert d.mappings["kind"].source_field is None and d.mappings["kind"].default_value == "customer"
    d.set_default("kind", "")
    assert "kind" not in d.mappings


def test_load_round_trips_a_saved_design() -> None:
    d = draft()
    d.map("Name", "name")
    saved = d.to_design().model_dump(by_alias=True, mode="json", exclude_none=True)
    other = draft()
    other.load(saved, 4)
    assert other.mappings.keys() == {"name"} and other.base_version == 4 and not other.dirty


def test_humanise() -> None:
    assert humanise("dateOfBirth") == "Date of birth"
    assert humanise("nhs_number") == "Nhs number"
    assert humanise("line1") == "Line1"


def test_form_fields_follow_the_auth_and_hide_discovered_config() -> None:
    cat = catalog()
    xero = cat.get("xero")
    assert uses_redirect(xero)
    assert form_fields(xero, sandbox=True) == []
    live = {f.name: f for f in form_fields(xero, sandbox=False)}
    assert set(live) == {"client_id", "client_secret"} and live["client_secret"].secret
    assert not live["client_id"].secret
    bamboo = {f.name: f for f in form_fields(cat.get("bamboohr"), sandbox=True)}
    assert bamboo["api_key"].secret and bamboo["api_key"].store == "secrets"
    assert bamboo["company_domain"].store == "config" and not bamboo["company_domain"].secret


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("12", "integer", 12), ("1.5", "number", 1.5), ("yes", "boolean", True), ("a, b", "list", ["a", "b"]),
    ("ACCREC = sales; ACCPAY = purchase", "mapping", {"ACCREC": "sales", "ACCPAY": "purchase"}), ("", "string", None),
])
def test_parse_arg(text: str, kind: str, value: object) -> None:
    assert parse_arg(text, kind) == value
    if value is not None:
        assert parse_arg(arg_text(value, kind), kind) == value


def test_parse_arg_explains_bad_input() -> None:
    with pytest.raises(ValueError, match="whole number"):
        parse_arg("ten", "integer")
    with pytest.raises(ValueError, match="from = to"):
        parse_arg("ACCREC", "mapping")


def test_expression_functions_only_in_advanced_mode() -> None:
    assert "template" not in function_options(False)
    assert "template" in function_options(True)
    assert "e.g." in function_options(False)["upper"]


def test_sentences() -> None:
    assert len(MODES) == 5
    text = rule_sentence("Invoice", "Xero", "external", "inbound", ["external"], "primary_wins")
    assert text == ("Invoice records belong to Xero (WriteCareNotes holds a copy); they are copied from Xero into "
                    "WriteCareNotes; Xero may change them; if both change the same record, Xero wins.")
    assert schedule_sentence({"kind": "daily", "at": "02:00"}) == "Runs every day at 02:00"
    assert schedule_sentence({}) == "Runs only when someone presses Sync now"


def test_settings_collect_validates_in_words() -> None:
    good, problems = collect({"kind": "minutes", "every": 15, "batch_size": 100, "max_attempts": 3,
                              "backoff_seconds": 60, "error_threshold": 10, "max_change_pct": 50})
    assert problems == [] and good["sync_frequency"] == {"kind": "minutes", "every": 15}
    assert good["max_change_share"] == 0.5
    _, problems = collect({"kind": "minutes", "every": 1, "batch_size": 0, "max_attempts": "x",
                           "backoff_seconds": 60, "error_threshold": 10, "max_change_pct": 50})
    assert "Minutes between runs must be between 5 and 1440." in problems
    assert "Records per batch must be between 1 and 10000." in problems
    assert "Tries per record must be a whole number." in problems


def test_samples_expand_objects_and_lists_and_mask_personal_values() -> None:
    fields = [StreamField(name="Contact", type="object", description="who"),
              StreamField(name="Phones", type="array", description="phones", sensitivity="personal")]
    records = [{"Contact": {"Name": "Jo Bloggs", "ContactID": "c1"}, "Phones": [{"PhoneNumber": "07700 900123"}]}]
    names = [s.name for s in source_fields(fields, records)]
    assert names == ["Contact", "Contact.Name", "Contact.ContactID", "Phones", "Phones[0].PhoneNumber"]
    phone = next(s for s in source_fields(fields, records) if s.name == "Phones[0].PhoneNumber")
    assert first_sample(records, phone) == "0•••23"
    assert short({"Name": "Jo"}) == "{Jo…}" and short([1, 2]) == "[2 items]" and short(None) == "(empty)"


def test_every_credential_a_manifest_uses_is_asked_for() -> None:
    for connector in catalog().manifests.values():
        for sandbox in (True, False):
            names = {f.name for f in form_fields(connector, sandbox=sandbox)}
            used = set(re.findall(r"\{secrets\.([A-Za-z_]\w*)\}", connector.model_dump_json()))
            expected = used - {"access_token", "refresh_token", "client_id", "client_secret"}
            assert expected <= names, (connector.id, sandbox, expected - names)
            if sandbox:
                assert "environment" not in names


def test_filters_and_two_way_flags_travel_with_the_design() -> None:
    from engine.mapping import FilterOperator

    d = draft()
    d.map("Name", "name")
    d.set_bidirectional("name", True)
    d.add_filter("EmailAddress", FilterOperator.EXISTS)
    design = d.to_design()
    assert design.mappings[0].bidirectional and design.filters[0].field == "EmailAddress"
    compiled = compile_design(design)
    assert compiled.apply({"Name": "Jo"}).skipped_reason
    other = draft()
    other.load(design.model_dump(by_alias=True, mode="json"))
    assert other.filters == design.filters
    other.remove_filter(0)
    assert other.filters == [] and other.dirty


def test_filter_values_and_sentences() -> None:
    from ui.components.transforms import filter_sentence, filter_value

    assert filter_value("AUTHORISED, PAID", "in", "string") == ["AUTHORISED", "PAID"]
    assert filter_value("yes", "equals", "boolean") is True
    assert filter_value("100", "gt", "string") == 100
    assert filter_value("", "exists", "string") is None
    assert filter_sentence("Status", "in", ["AUTHORISED", "PAID"]) == "Only records whose Status is one of AUTHORISED, PAID"


def test_changing_the_first_step_keeps_the_rest_until_removed() -> None:
    d = draft()
    d.map("EmailAddress", "email")
    d.accept(FieldMapping(source_field="EmailAddress", target_field="email",
                          transformation=[TransformStep(function="trim"), TransformStep(function="lower")]))
    d.set_transform("email", "upper")
    assert [s.function for s in d.mappings["email"].steps()] == ["upper", "lower"]
    d.drop_extra_steps("email")
    assert [s.function for s in d.mappings["email"].steps()] == ["upper"]
    d.set_transform("email", None)
    assert d.mappings["email"].steps() == []
