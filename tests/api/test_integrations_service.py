"""storage.integrations: configure, revisions, versioned designs with diff/restore, ownership, errors."""

from __future__ import annotations

from typing import Any

import pytest

from storage import integrations as svc
from storage.models import AuditLog, IntegrationError

DESIGN: dict[str, Any] = {
    "connector": "xero", "stream": "invoices", "careType": "Invoice",
    "mappings": [{"sourceField": "InvoiceNumber", "targetField": "number"}],
}


def test_configure_update_delete_audited(ctx: Any) -> None:
    with ctx.db.session() as s:
        row = svc.configure_integration(s, box=ctx.box, actor="m@x.uk", name="Xero", connector_id="xero",
                                        credentials={"client_secret": "CANARY-1"})
        iid = row.id
        assert svc.credentials_set(row) and "CANARY" not in row.credentials_encrypted
    with ctx.db.session() as s:
        row = svc.update_integration(s, box=ctx.box, actor="m@x.uk", integration_id=iid, expected_revision=1,
                                     name="Xero UK", credentials={"tenant": "t"})
        assert row.revision == 2
        assert svc.read_credentials(ctx.box, row) == {"client_secret": "CANARY-1", "tenant": "t"}
    with ctx.db.session() as s, pytest.raises(svc.RevisionMismatch):
        svc.update_integration(s, box=ctx.box, actor="m@x.uk", integration_id=iid, expected_revision=1, name="n")
    with ctx.db.session() as s:
        svc.delete_integration(s, actor="a@x.uk", integration_id=iid)
    with ctx.db.session() as s:
        with pytest.raises(svc.NotFound):
            svc.get_integration(s, integration_id=iid)
        actions = [a.action for a in s.query(AuditLog).all()]
        assert {"integration.configure", "integration.update", "integration.delete"} <= set(actions)


def test_design_versions_diff_restore(ctx: Any) -> None:
    with ctx.db.session() as s:
        iid = svc.configure_integration(s, box=ctx.box, actor="m", name="X", connector_id="xero").id
    with ctx.db.session() as s:
        v1 = svc.save_mapping_design(s, actor="m", integration_id=iid, design=DESIGN)
    changed = dict(DESIGN, mappings=[{"sourceField": "Total", "targetField": "totalPence"}])
    with ctx.db.session() as s:
        v2 = svc.save_mapping_design(s, actor="m", integration_id=iid, design=changed, expected_revision=2)
    assert (v1.version, v2.version) == (1, 2)
    with ctx.db.session() as s:
        diff = svc.diff_design_versions(s, integration_id=iid, stream="invoices", care_type="Invoice",
                                        from_version=1, to_version=2)
        assert [d["targetField"] for d in diff.added] == ["totalPence"]
        assert [d["targetField"] for d in diff.removed] == ["number"]
        v3 = svc.restore_mapping_design(s, actor="m", integration_id=iid, stream="invoices", care_type="Invoice",
                                        version=1)
        assert v3.version == 3
    with ctx.db.session() as s:
        current = svc.current_designs(s, integration_id=iid)
        assert [c.version for c in current] == [3]
        assert [(m["sourceField"], m["targetField"]) for m in current[0].design["mappings"]] == [
            ("InvoiceNumber", "number")]


def test_ownership_and_errors(ctx: Any) -> None:
    with ctx.db.session() as s:
        iid = svc.configure_integration(s, box=ctx.box, actor="m", name="X", connector_id="xero").id
        svc.set_ownership(s, actor="m", integration_id=iid, care_type="Invoice", primary_system="external")
        with pytest.raises(svc.InvalidInput):
            svc.set_ownership(s, actor="m", integration_id=iid, care_type="Invoice", primary_system="nobody")
        s.add(IntegrationError(integration_id=iid, error_type="validation", error_message="bad"))
        s.add(IntegrationError(integration_id=iid, error_type="vendor", error_message="500"))
    with ctx.db.session() as s:
        page = svc.list_errors(s, integration_id=iid, error_type="validation")
        assert page.total == 1
        svc.resolve_error(s, actor="a", integration_id=iid, error_id=page.items[0].id, action="ignored")
    with ctx.db.session() as s:
        assert svc.list_errors(s, integration_id=iid, state="resolved").total == 1
        assert svc.count_open_errors(s, integration_id=iid) == 1
        assert len(svc.get_ownership(s, integration_id=iid)) == 1
