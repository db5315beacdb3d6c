"""HL7 v2 ORU^R01 parsing into FHIR R4 Observations, ACK/NAK and MLLP over loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.hl7.mllp import MllpListener, ack_code, frame, read_frame, send_message
from connectors.hl7.oru import LOINC, SNOMED, Hl7Error, LabReport, build_ack, parse_oru, reference_range

SAMPLES = Path(__file__).parent / "samples"


def _sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def _by_loinc(report: LabReport) -> dict[str, dict]:
    out = {}
    for obs in report.observations:
        for c in obs["code"]["coding"]:
            if c["system"] == LOINC:
                out[c["code"]] = obs
    return out


def test_clinisys_oru_becomes_observations_with_loinc_units_ranges_and_flags() -> None:
    report = parse_oru(_sample("clinisys_oru_r01.hl7"))
    assert report.control_id == "WP20250301-0001"
    assert report.nhs_number == "9990001103"
    assert report.sending_application == "WINPATH"
    assert len(report.observations) == 7
    assert len(report.reports) == 2
    obs = _by_loinc(report)
    assert set(obs) == {"718-7", "6690-2", "777-3", "2951-2", "2823-3", "2160-0", "33914-3"}
    hb = obs["718-7"]
    assert hb["resourceType"] == "Observation" and hb["status"] == "final"
    assert hb["code"]["coding"][0] == {"system": LOINC, "code": "718-7",
                                       "display": "Hemoglobin [Mass/volume] in Blood"}
    assert {"system": "urn:carehub:hl7:local:WINPATH", "code": "HB", "display": "Haemoglobin"} in hb["code"]["coding"]
    assert hb["valueQuantity"] == {"value": 108.0, "unit": "g/L", "system": "http://unitsofmeasure.org", "code": "g/L"}
    assert hb["referenceRange"][0]["low"]["value"] == 115.0
    assert hb["referenceRange"][0]["high"]["value"] == 165.0
    assert hb["interpretation"][0]["coding"][0]["code"] == "L"
    assert hb["subject"]["identifier"] == {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990001103"}
    assert hb["effectiveDateTime"] == "2025-03-01T08:30:00+00:00"
    assert hb["category"][0]["coding"][0]["code"] == "laboratory"
    k = obs["2823-3"]
    assert k["valueQuantity"]["value"] == 5.9 and k["interpretation"][0]["coding"][0]["code"] == "H"
    egfr = obs["33914-3"]
    assert egfr["referenceRange"][0]["low"]["value"] == 60.0 and "high" not in egfr["referenceRange"][0]
    assert egfr["valueQuantity"]["code"] == "mL/min/{1.73_m2}"
    assert obs["777-3"]["note"][0]["text"].startswith("Platelets mildly raised")
    assert obs["6690-2"]["interpretation"][0]["coding"][0]["code"] == "N"
    # The report links its results; the panel keeps its SNOMED code.
    fbc = report.reports[0]
    assert fbc["resourceType"] == "DiagnosticReport"
    assert fbc["code"]["coding"][0]["system"] == SNOMED
    assert len(fbc["result"]) == 3
    assert len({o["id"] for o in report.observations}) == 7


def test_sunquest_oru_keeps_snomed_organism_comparators_and_preliminary_status() -> None:
    report = parse_oru(_sample("sunquest_oru_r01.hl7"))
    assert report.control_id == "SQ0000048812" and report.nhs_number == "9990002029"
    obs = _by_loinc(report)
    alt = obs["1742-6"]
    assert alt["valueQuantity"]["comparator"] == "<" and alt["valueQuantity"]["value"] == 5.0
    assert alt["referenceRange"][0]["high"]["value"] == 41.0
    culture = obs["630-4"]
    assert culture["status"] == "preliminary"
    assert culture["valueCodeableConcept"]["coding"][0] == {"system": SNOMED, "code": "112283007",
                                                             "display": "Escherichia coli"}
    assert culture["interpretation"][0]["coding"][0]["code"] == "A"
    assert "\n" in obs["19113-0"]["valueString"]


def test_parsing_is_deterministic_so_redelivery_upserts_the_same_ids() -> None:
    a = parse_oru(_sample("clinisys_oru_r01.hl7"))
    b = parse_oru(_sample("clinisys_oru_r01.hl7").encode())
    assert [o["id"] for o in a.observations] == [o["id"] for o in b.observations]


@pytest.mark.parametrize(("text", "reason"), [
    ("PID|1||9990001103", "does not start with an MSH"),
    ("MSH|^~\\&|A|B|C|D|20250101||ADT^A01|X1|P|2.4\rPID|1", "expected ORU^R01"),
    ("MSH|^~\\&|A|B|C|D|20250101||ORU^R01|X2|P|2.4\rOBR|1||1|FBC\rOBX|1|NM|HB^Hb^L||1", "no PID"),
    ("MSH|^~\\&|A|B|C|D|20250101||ORU^R01|X3|P|2.4\rPID|1||9990001103^^^NHS^NH\rOBR|1||1|FBC", "no OBX"),
])
def test_malformed_messages_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(Hl7Error) as exc:
        parse_oru(text)
    assert reason in str(exc.value)


def test_obx_before_obr_is_refused() -> None:
    with pytest.raises(Hl7Error) as exc:
        parse_oru(_sample("malformed_oru_no_obr.hl7"))
    assert exc.value.control_id == "WP-BAD-0002"
    assert "before any OBR" in exc.value.reason


def test_ack_swaps_sender_and_receiver_and_echoes_the_control_id() -> None:
    ack = build_ack(_sample("clinisys_oru_r01.hl7"), "AA")
    msh, msa = ack.strip("\r").split("\r")
    f = msh.split("|")
    assert f[2] == "CAREHUB" and f[3] == "WILLOWCT" and f[4] == "WINPATH" and f[8] == "ACK^R01^ACK"
    assert msa == "MSA|AA|WP20250301-0001"


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=0, max_value=10000, allow_nan=False).map(lambda x: round(x, 2)),
       st.floats(min_value=0, max_value=10000, allow_nan=False).map(lambda x: round(x, 2)))
def test_reference_ranges_parse_low_and_high(low: float, high: float) -> None:
    rng = reference_range(f"{low}-{high}", "g/L")[0]
    assert rng["low"]["value"] == low and rng["high"]["value"] == high
    assert rng["text"] == f"{low}-{high}"


async def test_mllp_round_trip_over_loopback_acks_and_stores() -> None:
    stored: list[LabReport] = []

    async def store(report: LabReport, raw: str) -> None:
        stored.append(report)

    async with MllpListener(store) as listener:
        ack = await send_message("127.0.0.1", listener.port, _sample("clinisys_oru_r01.hl7"))
        assert ack_code(ack) == "AA"
        assert "MSA|AA|WP20250301-0001" in ack
        # Two messages on one connection, as lab interface engines do.
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        for name in ("sunquest_oru_r01.hl7", "malformed_oru_no_obr.hl7"):
            writer.write(frame(_sample(name)))
            await writer.drain()
        first = (await read_frame(reader) or b"").decode()
        second = (await read_frame(reader) or b"").decode()
        writer.close()
        await writer.wait_closed()
    assert ack_code(first) == "AA" and "SQ0000048812" in first
    assert ack_code(second) == "AR" and "MSA|AR|WP-BAD-0002" in second and "OBR" in second
    assert [r.control_id for r in stored] == ["WP20250301-0001", "SQ0000048812"]
    assert listener.stats.accepted == 2 and listener.stats.rejected == 1
    assert sum(len(r.observations) for r in stored) == 12


async def test_mllp_naks_with_ae_when_the_store_fails_so_the_lab_resends() -> None:
    attempts = 0

    async def flaky(report: LabReport, raw: str) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("database is locked")

    async with MllpListener(flaky) as listener:
        first = await send_message("127.0.0.1", listener.port, _sample("clinisys_oru_r01.hl7"))
        second = await send_message("127.0.0.1", listener.port, _sample("clinisys_oru_r01.hl7"))
    assert ack_code(first) == "AE" and ack_code(second) == "AA"
    assert listener.stats.errored == 1 and listener.stats.accepted == 1


async def test_mllp_rejects_a_block_without_start_byte() -> None:
    async def store(report: LabReport, raw: str) -> None:
        raise AssertionError("must not be called")

    async with MllpListener(store) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"MSH|garbage\x1c\r")
        await writer.drain()
        payload = await read_frame(reader)
        writer.close()
        await writer.wait_closed()
    assert payload is not None and ack_code(payload.decode()) == "AR"


async def test_listener_spools_before_acking_and_a_sync_run_reads_the_spool(tmp_path: Path) -> None:
    from connectors.errors import ConnectorError
    from connectors.hl7.spool import Hl7SpoolSession, Spool
    from connectors.manifest import load_manifest
    from connectors.sessions import open_session

    from .conftest import TEMPLATES

    spool = Spool(tmp_path / "spool")
    async with MllpListener(spool.store) as listener:
        for name in ("clinisys_oru_r01.hl7", "sunquest_oru_r01.hl7", "clinisys_oru_r01.hl7"):
            assert ack_code(await send_message("127.0.0.1", listener.port, _sample(name))) == "AA"
    assert len(spool.waiting()) == 2  # the resent Clinisys message replaced its own file
    (spool.directory / "zz_garbage.hl7").write_text("MSH|^~\\&|X|Y|Z|W|2025||ORU^R01|G1|P|2.4\rPID|1")
    manifest = load_manifest(TEMPLATES / "hl7_lab.yaml")
    session = open_session(manifest, {"spool_dir": str(spool.directory)}, {}, connection_id="hl7-spool")
    assert isinstance(session, Hl7SpoolSession)
    async with session:
        pages = []
        with pytest.raises(ConnectorError, match=r"zz_garbage\.hl7: the message has no OBX"):
            async for page in session.read("results"):
                pages.append(page)
        records = [r for p in pages for r in p.records]
        assert len(records) == 12
        assert {r.data["labControlId"] for r in records} == {"WP20250301-0001", "SQ0000048812"}
        assert [x.name for x in session.rejected] == ["zz_garbage.hl7"]
        assert len(spool.waiting()) == 2  # moved only once a committed checkpoint names them
        again = [p async for p in session.read("results", pages[-1].checkpoint)]
    assert sum(len(p.records) for p in again) == 0 and spool.waiting() == []
    assert sorted(p.name for p in (spool.directory / "done").iterdir()) == sorted(
        [Spool.file_name(parse_oru(_sample("clinisys_oru_r01.hl7"))),
         Spool.file_name(parse_oru(_sample("sunquest_oru_r01.hl7")))])
    assert (spool.directory / "rejected" / "zz_garbage.hl7.reason.txt").read_text().startswith("the message has no")


def test_the_observation_mapping_keeps_loinc_units_ranges_and_the_resident() -> None:
    from engine.mapping import compile_design, load_mapping_template_file

    from .conftest import TEMPLATES

    design = load_mapping_template_file(TEMPLATES.parent / "mappings" / "hl7_lab" / "Observation.yaml")
    compiled = compile_design(design)
    report = parse_oru(_sample("clinisys_oru_r01.hl7"))
    mapped = [compiled.apply({**o, "labControlId": report.control_id}) for o in report.observations]
    assert all(m.ok for m in mapped), [m.errors for m in mapped if not m.ok]
    hb = next(dict(m.values) for m in mapped if m.values["code"] == "718-7")
    assert hb["residentRef"] == "9990001103" and hb["unit"] == "g/L" and hb["referenceRange"] == "115-165"
    assert hb["value"] == "108.0" and hb["status"] == "final" and hb["source"] == "lab"
    assert hb["reportRef"] == "WP20250301-0001" and hb["display"] == "Haemoglobin"


def test_catalog_routes_clinisys_and_sunquest_to_hl7_and_mesh_is_listed() -> None:
    from connectors.catalog import load_catalog
    from connectors.sandboxes import SANDBOXES

    from .conftest import TEMPLATES

    by_id = {e.id: e for e in load_catalog(TEMPLATES).entries}
    for lab in ("clinisys", "sunquest"):
        assert (by_id[lab].connector, by_id[lab].integration_method, by_id[lab].availability) == \
            ("hl7_lab", "HL7 v2", "available")
    assert by_id["mesh"].availability == "available" and "mesh" in SANDBOXES


async def test_the_listener_command_serves_and_spools(tmp_path: Path) -> None:
    import socket

    from connectors.hl7.__main__ import serve

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    task = asyncio.create_task(serve("127.0.0.1", port, str(tmp_path / "spool")))
    try:
        for _ in range(100):
            try:
                ack = await send_message("127.0.0.1", port, _sample("sunquest_oru_r01.hl7"))
                break
            except OSError:
                await asyncio.sleep(0.02)
        assert ack_code(ack) == "AA"
        assert len(list((tmp_path / "spool").glob("*.hl7"))) == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_batch_files_split_into_messages() -> None:
    from connectors.hl7.oru import split_messages

    batch = ("FHS|^~\\&|WINPATH|RXX01|CAREHUB|WILLOWCT|20250301120000\rBHS|^~\\&|WINPATH|RXX01\r"
             + _sample("clinisys_oru_r01.hl7") + _sample("sunquest_oru_r01.hl7") + "BTS|2\rFTS|1\r")
    parts = split_messages(batch)
    assert [parse_oru(p).control_id for p in parts] == ["WP20250301-0001", "SQ0000048812"]
    raw = (SAMPLES / "clinisys_oru_r01.hl7").read_bytes().decode()
    assert split_messages(raw) == [raw]
