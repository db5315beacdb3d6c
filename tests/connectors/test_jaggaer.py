"""Jaggaer by cXML files: OrderRequest documents in an inbox folder become PurchaseOrder care records with their
lines; unsafe XML (billion laughs, external entities) and malformed orders are refused naming the element path
and reason, and import nothing; ConfirmationRequest documents are written back once per record.

Real parts: defusedxml on the sample documents, the JaggaerFilesSession on real folders, the mapping compiler, and
(end to end) the arq worker running ``run_sync`` on the test Redis into the care store on the test database."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from arq.connections import ArqRedis
from sqlalchemy import select

from app.sync_jobs import enqueue_run
from connectors.manifest import load_manifest
from connectors.sessions import open_session
from connectors.xmlfeeds.cxml import confirmation_request, parse_confirmation, parse_order_request
from connectors.xmlfeeds.safe import XmlRejected
from connectors.xmlfeeds.sessions import JaggaerFilesSession
from engine.mapping import compile_design, load_mapping_template_file
from engine.ports import OutboundRecord, ReadPage, SourceRecord
from storage import runs as runrepo
from storage.models import CareRecord

from .conftest import TEMPLATES
from .worker_harness import count_care, drain, folder_integration

SAMPLES = Path(__file__).parent / "samples"
MAPPING = TEMPLATES.parent / "mappings" / "jaggaer_files" / "PurchaseOrder.yaml"
THREE = (SAMPLES / "jaggaer_order_3_lines.xml").read_bytes()
TWO = (SAMPLES / "jaggaer_order_2_lines.xml").read_bytes()

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE cXML [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<cXML payloadID="x"><Request><OrderRequest><OrderRequestHeader orderID="&lol3;" orderDate="2026-11-27T10:00:00Z"/>
</OrderRequest></Request></cXML>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE cXML [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<cXML><Request><OrderRequest><OrderRequestHeader orderID="&secret;" orderDate="2026-11-27T10:00:00Z"/>
</OrderRequest></Request></cXML>"""


def _malformed() -> bytes:
    """The three-line order with a bad quantity on line 2, a line without its part id and a bad price on line 3."""
    text = THREE.decode()
    text = text.replace('quantity="4" lineNumber="2"', 'quantity="four" lineNumber="2"')
    text = text.replace("<SupplierPartID>HS-5L</SupplierPartID>", "<SupplierPartID></SupplierPartID>")
    text = text.replace('<Money currency="GBP">21.00</Money>', '<Money currency="pounds">21,00</Money>')
    return text.encode()


def _session(inbox: Path, outbox: Path | None = None) -> JaggaerFilesSession:
    manifest = load_manifest(TEMPLATES / "jaggaer_files.yaml")
    config = {"inbox_dir": str(inbox), **({"outbox_dir": str(outbox)} if outbox else {})}
    session = open_session(manifest, config, {}, connection_id=f"test-jaggaer-{inbox}")
    assert isinstance(session, JaggaerFilesSession)
    return session


async def _read(session: JaggaerFilesSession, checkpoint: dict[str, Any] | None = None
                ) -> tuple[list[SourceRecord], list[ReadPage], Exception | None]:
    records: list[SourceRecord] = []
    pages: list[ReadPage] = []
    try:
        async for page in session.read("purchase_orders", checkpoint):
            pages.append(page)
            records.extend(page.records)
    except XmlRejected as exc:
        return records, pages, exc
    return records, pages, None


def test_order_request_parsed_with_every_line() -> None:
    po = parse_order_request(THREE, "po.xml")
    assert (po["orderID"], po["orderDate"], po["orderType"]) == ("PO-2026-00417", "2026-11-27T15:42:00+00:00", "new")
    assert (po["supplier"], po["buyer"], po["total"], po["currency"]) == ("SUP-MEDISUPPLY-0042", "ROSECOURT-CARE",
                                                                         "185.80", "GBP")
    assert (po["shipToName"], po["shipToAddressID"], po["shipToPostalCode"]) == ("Rose Court Care Home", "RC-LEEDS",
                                                                                "LS17 8AB")
    assert po["requestedDeliveryDate"] == "2026-12-02T09:00:00+00:00"
    assert [(ln["lineNumber"], ln["quantity"], ln["supplierPartID"], ln["unitPrice"]) for ln in po["lines"]] == [
        (1, 10.0, "NG-100-M", "8.45"), (2, 4.0, "APR-200", "12.20"), (3, 2.5, "HS-5L", "21.00")]
    assert po["lines"][2]["description"] == "Hand sanitiser 5 L <refill>"  # CDATA text kept as text
    assert po["lines"][0]["unitOfMeasure"] == "BX"


@pytest.mark.parametrize(("document", "reason"), [
    (BILLION_LAUGHS, "entity declarations are refused (entity 'lol')"),
    (EXTERNAL_ENTITY, "external entity 'secret' (file:///etc/passwd) refused"),
])
def test_entity_bombs_and_external_entities_refused(document: bytes, reason: str) -> None:
    with pytest.raises(XmlRejected) as caught:
        parse_order_request(document, "evil.xml")
    assert reason in str(caught.value)
    assert str(caught.value).startswith("evil.xml was not imported")


def test_malformed_order_names_each_element_path_and_reason() -> None:
    with pytest.raises(XmlRejected) as caught:
        parse_order_request(_malformed(), "po-bad.xml")
    problems = {(i.path, i.reason) for i in caught.value.issues}
    item = "/cXML/Request/OrderRequest/ItemOut"
    assert problems == {
        (f"{item}[2]/@quantity", "not a positive number"),
        (f"{item}[3]/ItemID/SupplierPartID", "a value is required"),
        (f"{item}[3]/ItemDetail/UnitPrice/Money", "not a decimal amount"),
        (f"{item}[3]/ItemDetail/UnitPrice/Money/@currency", "not a three-letter ISO 4217 currency code"),
    }
    with pytest.raises(XmlRejected, match=r"not well-formed XML at line 3, column \d+: mismatched tag"):
        parse_order_request(b"<?xml version='1.0'?>\n<cXML>\n<Request></OrderRequest></cXML>", "cut.xml")
    with pytest.raises(XmlRejected, match=r"/cXML/Request/OrderRequest: there is no OrderRequest \(the Request "
                                          r"holds ConfirmationRequest\)"):
        parse_order_request(confirmation_request({"orderID": "PO-1"}), "wrong.xml")


async def test_folder_read_imports_good_files_and_quarantines_bad_ones(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    for name, data, when in (("po-417.xml", THREE, 1_000), ("po-418.xml", TWO, 2_000),
                             ("po-evil.xml", BILLION_LAUGHS, 3_000), ("po-bad.xml", _malformed(), 4_000)):
        (inbox / name).write_bytes(data)
        os.utime(inbox / name, (when, when))
    session = _session(inbox)
    records, pages, error = await _read(session)
    assert [r.external_id for r in records] == ["PO-2026-00417", "PO-2026-00418"]
    assert [len(r.data["lines"]) for r in records] == [3, 2]
    assert isinstance(error, XmlRejected)
    assert "po-evil.xml and po-bad.xml" in str(error)
    assert "/cXML/Request/OrderRequest/ItemOut[2]/@quantity: not a positive number (found 'four')" in str(error)
    assert sorted(p.name for p in (inbox / "rejected").iterdir()) == [
        "po-bad.xml", "po-bad.xml.reason.txt", "po-evil.xml", "po-evil.xml.reason.txt"]
    assert "billion laughs" in (inbox / "rejected" / "po-evil.xml.reason.txt").read_text()
    # Incremental: the next read with the last checkpoint finds nothing new, then only a new file.
    checkpoint = pages[-1].checkpoint
    assert isinstance(checkpoint, dict)
    again, _, error2 = await _read(session, checkpoint)
    assert again == [] and error2 is None
    (inbox / "po-418-copy.xml").write_bytes(TWO)  # the same document under another name is not imported twice
    (inbox / "po-419.xml").write_bytes(TWO.replace(b"PO-2026-00418", b"PO-2026-00419"))
    later, _, _ = await _read(session, checkpoint)
    assert [r.external_id for r in later] == ["PO-2026-00419"]


def test_mapping_gives_purchase_orders_with_lines_in_pence() -> None:
    design = compile_design(load_mapping_template_file(MAPPING))
    mapped = design.apply(parse_order_request(THREE))
    assert mapped.errors == []
    v = mapped.values
    assert (v["number"], v["supplierRef"], v["site"], v["totalPence"], v["status"]) == (
        "PO-2026-00417", "SUP-MEDISUPPLY-0042", "Rose Court Care Home", 18580, "ordered")
    assert (v["orderedAt"], v["expectedAt"]) == ("2026-11-27", "2026-12-02")
    assert v["lines"] == [
        {"item": "Nitrile gloves, medium, box of 100", "quantity": 10.0, "unitPricePence": 845},
        {"item": "Disposable aprons, roll of 200", "quantity": 4.0, "unitPricePence": 1220},
        {"item": "Hand sanitiser 5 L <refill>", "quantity": 2.5, "unitPricePence": 2100},
    ]
    assert sum(int(ln["quantity"] * ln["unitPricePence"]) for ln in v["lines"]) == v["totalPence"]


async def test_confirmations_written_once_and_read_back(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    session = _session(tmp_path / "in", tmp_path / "out")
    po = parse_order_request(THREE)
    payload = {"orderID": po["orderID"], "orderDate": po["orderDate"], "payloadID": po["payloadID"],
               "supplier": po["supplier"], "buyer": po["buyer"], "type": "detail",
               "comments": "Aprons back-ordered: 2 now, 2 next week & the rest as ordered",
               "lines": [{"lineNumber": 1, "quantity": 10, "type": "accept"},
                         {"lineNumber": 2, "quantity": 2, "type": "backordered"}]}
    records = [OutboundRecord("k" * 40, payload), OutboundRecord("j" * 40, {"orderID": "PO-X", "type": "maybe"})]
    first = await session.write("order_confirmations", records)
    assert [o.ok for o in first] == [True, False]
    assert first[1].error_message == ("confirmation type must be one of accept, reject, detail, except, allDetail, "
                                      "got 'maybe'")
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == [f"confirmation_PO-2026-00417_{'k' * 12}.xml"]
    again = await session.write("order_confirmations", records[:1])  # a retried write finds its file
    assert again[0].ok and again[0].data == {"file": files[0].name, "duplicate": True}
    assert len(list((tmp_path / "out").iterdir())) == 1
    data = files[0].read_bytes()
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE cXML SYSTEM')
    back = parse_confirmation(data)
    assert (back["orderID"], back["orderDate"], back["type"], back["payloadID"].endswith("@carehub")) == (
        "PO-2026-00417", "2026-11-27T15:42:00+00:00", "detail", True)
    assert back["lines"] == [{"lineNumber": "1", "quantity": "10", "type": "accept"},
                             {"lineNumber": "2", "quantity": "2", "type": "backordered"}]
    assert b"2 now, 2 next week &amp; the rest" in data  # escaped, not raw


def _integration(ctx: Any, inbox: Path) -> str:
    return folder_integration(ctx, "jaggaer_files", "Jaggaer (cXML files)", {"inbox_dir": inbox},
                              {"purchase_orders": ("PurchaseOrder", yaml.safe_load(MAPPING.read_text()))})


async def test_cxml_orders_through_the_worker_into_the_care_store(ctx: Any, arq: ArqRedis, redis_url: str,
                                                                 tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(SAMPLES / "jaggaer_order_3_lines.xml", inbox / "PO-2026-00417.xml")
    shutil.copy(SAMPLES / "jaggaer_order_2_lines.xml", inbox / "PO-2026-00418.xml")
    integ = _integration(ctx, inbox)

    run1 = await enqueue_run(ctx.db, arq, integ, "manual", requested_by="test")
    await drain(ctx, redis_url, "jaggaer-test-worker")
    r1 = runrepo.get_run(ctx.db, run1)
    assert r1.status == "succeeded", r1.error
    assert r1.counts["read"] == 2 and r1.counts["created"] == 2
    assert count_care(ctx, "PurchaseOrder") == 2
    with ctx.db.session() as s:
        stored = {r.data["number"]: r.data for r in s.execute(
            select(CareRecord).where(CareRecord.care_type == "PurchaseOrder")).scalars()}
    assert sorted(stored) == ["PO-2026-00417", "PO-2026-00418"]
    assert [ln["unitPricePence"] for ln in stored["PO-2026-00417"]["lines"]] == [845, 1220, 2100]
    assert stored["PO-2026-00418"]["totalPence"] == 6480 and len(stored["PO-2026-00418"]["lines"]) == 2

    (inbox / "PO-2026-00419.xml").write_bytes(_malformed().replace(b"PO-2026-00417", b"PO-2026-00419"))
    os.utime(inbox / "PO-2026-00419.xml", (2_000_000_000, 2_000_000_000))
    run2 = await enqueue_run(ctx.db, arq, integ, "manual")
    await drain(ctx, redis_url, "jaggaer-test-worker")
    r2 = runrepo.get_run(ctx.db, run2)
    assert r2.status == "failed"
    assert "PO-2026-00419.xml was not imported" in (r2.error or "")
    assert "/cXML/Request/OrderRequest/ItemOut[2]/@quantity: not a positive number" in (r2.error or "")
    assert count_care(ctx, "PurchaseOrder") == 2  # nothing from the bad order

    run3 = await enqueue_run(ctx.db, arq, integ, "manual")
    await drain(ctx, redis_url, "jaggaer-test-worker")
    r3 = runrepo.get_run(ctx.db, run3)
    assert r3.status == "succeeded" and r3.counts["read"] == 0  # the bad file was set aside; nothing new
