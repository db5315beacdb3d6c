"""MESH mailbox connector against the MESH sandbox: inbox read with ack-after-store, chunks, send, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from connectors.hl7.oru import LOINC
from connectors.manifest import RateLimits, load_manifest
from connectors.mesh.session import MeshSession, nhsmesh_header
from connectors.sandboxes import mesh as mesh_sandbox
from connectors.sandboxes.common import SandboxConfig
from connectors.sessions import open_session
from engine.ports import OutboundRecord

from .conftest import TEMPLATES, fast_rules

MANIFEST = load_manifest(TEMPLATES / "mesh.yaml")
GOOD = {"mailbox_password": mesh_sandbox.PASSWORD, "shared_key": mesh_sandbox.SHARED_KEY}


def _session(app: FastAPI, secrets: dict[str, Any] | None = None, mailbox: str = mesh_sandbox.MAILBOX) -> MeshSession:
    s = open_session(MANIFEST, {"mailbox_id": mailbox}, secrets or GOOD, base_url="http://mesh.sandbox",
                     transport=httpx.ASGITransport(app=app), connection_id=f"mesh-{id(app)}-{mailbox}",
                     error_rules=fast_rules(MANIFEST), rate_limits=RateLimits())
    assert isinstance(s, MeshSession)
    return s


def _inbox(app: FastAPI, box: str = mesh_sandbox.MAILBOX) -> list[str]:
    return list(app.state.world.inboxes[box])


def _expected_results(app: FastAPI, ids: list[str]) -> int:
    return sum(app.state.world.messages[m].body.count(b"\rOBX|") for m in ids)


async def test_full_read_parses_every_message_and_acks_only_what_a_committed_checkpoint_names() -> None:
    app = mesh_sandbox.create_app(SandboxConfig(records=12))
    waiting = _inbox(app)
    expected = _expected_results(app, waiting)
    async with _session(app) as s:
        pages = []
        checkpoint: dict[str, Any] | None = None
        async for page in s.read("lab_results"):
            # Nothing this page carries has been acknowledged while the engine is storing it.
            assert not set(page.checkpoint["pending_ack"]) & set(s.acknowledged)
            pages.append(page)
            checkpoint = page.checkpoint
        assert len(pages) == 12
        records = [r for p in pages for r in p.records]
        assert len(records) == expected
        # The engine reads ahead, so nothing is acknowledged by the read itself; the committed checkpoint
        # names every message stored, and the next read acknowledges them first.
        assert _inbox(app) == waiting and checkpoint == {"pending_ack": waiting}
        obs = records[0].data
        assert obs["resourceType"] == "Observation"
        assert obs["code"]["coding"][0]["system"] == LOINC
        assert obs["subject"]["identifier"]["value"].startswith("999")
        assert obs["meshMessageId"] == waiting[0]
        # Next run: acknowledges every stored message, then finds the inbox empty.
        again = [p async for p in s.read("lab_results", checkpoint)]
        assert sum(len(p.records) for p in again) == 0
        assert _inbox(app) == []


async def test_a_run_killed_mid_read_loses_nothing_and_redelivers_the_same_ids() -> None:
    app = mesh_sandbox.create_app(SandboxConfig(records=6))
    async with _session(app) as s:
        reader = s.read("lab_results")
        first = await reader.__anext__()
        committed = first.checkpoint  # the engine stored page 1 with this checkpoint
        second = await reader.__anext__()  # page 2 read, then the worker dies before storing it
        await reader.aclose()
        lost_ids = {r.external_id for r in second.records}
    async with _session(app) as s2:
        pages = [p async for p in s2.read("lab_results", committed)]
    ids = [r.external_id for p in pages for r in p.records]
    assert lost_ids <= set(ids)  # message 2 came back with the same record ids
    assert len(pages) == 5  # messages 2..6; message 1 was acknowledged from the checkpoint
    all_ids = {r.external_id for r in first.records} | set(ids)
    assert len(all_ids) == _expected_results(app, list(app.state.world.messages))


async def test_chunked_messages_are_reassembled() -> None:
    app = mesh_sandbox.create_app(SandboxConfig(records=2))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mesh.sandbox") as c:
        await c.post("/_sandbox/mesh/chunk-size", json={"bytes": 90})
    mid = _inbox(app)[0]
    async with _session(app) as s:
        body, headers = await s.download(mid)
    assert body == app.state.world.messages[mid].body
    assert int(headers["mex-chunk-range"].split(":")[1]) > 2


async def test_inbox_listing_follows_links_next() -> None:
    app = mesh_sandbox.create_app(SandboxConfig(records=11))
    async with _session(app) as s:
        ids = await s.list_inbox(page_size=4)
    assert ids == _inbox(app) and len(ids) == 11


async def test_a_message_that_is_not_an_oru_stays_in_the_inbox_with_a_reason() -> None:
    app = mesh_sandbox.create_app(SandboxConfig(records=1))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mesh.sandbox") as c:
        bad = (await c.post("/_sandbox/mesh/deliver", json={"content": "MSH|^~\\&|X|Y|Z|W|2025||ADT^A01|A1|P|2.4"}))
    bad_id = bad.json()["message_id"]
    async with _session(app) as s:
        pages = [p async for p in s.read("lab_results")]
        [p async for p in s.read("lab_results", pages[-1].checkpoint)]
    assert [r.message_id for r in s.rejected] == [bad_id]
    assert "expected ORU^R01" in s.rejected[0].reason
    assert _inbox(app) == [bad_id]


async def test_send_is_idempotent_by_local_id_and_reaches_the_recipient() -> None:
    app = mesh_sandbox.create_app(SandboxConfig(records=0))
    rec = OutboundRecord("carenote-2025-03-01-9990001103", {
        "to": mesh_sandbox.GP_MAILBOX, "workflow_id": "CAREHUB_CARE_NOTE", "filename": "note.txt",
        "subject": "Care note", "content": "Resident seen by district nurse; dressing changed."})
    async with _session(app) as s:
        first = await s.write("outbox", [rec])
        again = await s.write("outbox", [rec])
        bad = await s.write("outbox", [OutboundRecord("k2", {"to": "X26NOPE1", "workflow_id": "W", "content": "x"})])
    assert first[0].ok and first[0].external_id
    assert again[0].ok and again[0].external_id == first[0].external_id and again[0].data["duplicate"]
    assert len(app.state.world.sent) == 1
    assert _inbox(app, mesh_sandbox.GP_MAILBOX) == [first[0].external_id]
    assert not bad[0].ok and bad[0].error_message == "Unregistered to address: X26NOPE1" and bad[0].error_code == "12"
    async with _session(app, mailbox=mesh_sandbox.GP_MAILBOX) as gp:
        body, headers = await gp.download(first[0].external_id)
    assert body.startswith(b"Resident seen") and headers["mex-from"] == mesh_sandbox.MAILBOX


async def test_wrong_password_fails_the_connection_test_in_plain_words() -> None:
    app = mesh_sandbox.create_app(SandboxConfig(records=3))
    async with _session(app, {**GOOD, "mailbox_password": "wrong"}) as s:
        result = await s.test_connection()
    assert not result.ok and "wrong" in result.reason
    async with _session(app) as s:
        ok = await s.test_connection()
    assert ok.ok and "3 message(s) waiting" in ok.reason


async def test_throttling_and_server_errors_are_retried() -> None:
    app = mesh_sandbox.create_app(SandboxConfig(records=2))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mesh.sandbox") as c:
        await c.post("/_sandbox/faults", json={"storm_429": 2, "storm_5xx": 2, "retry_after": "0"})
    async with _session(app) as s:
        pages = [p async for p in s.read("lab_results")]
        assert s.stats.throttled == 2 and s.stats.server_errors == 2
    assert len(pages) == 2


async def test_nonce_replay_is_refused_by_the_sandbox() -> None:
    app = mesh_sandbox.create_app(SandboxConfig(records=0))
    header = nhsmesh_header(mesh_sandbox.MAILBOX, mesh_sandbox.PASSWORD, mesh_sandbox.SHARED_KEY, nonce="n-1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mesh.sandbox") as c:
        first = await c.get(f"/messageexchange/{mesh_sandbox.MAILBOX}", headers={"Authorization": header})
        assert first.status_code == 200
        replay = await c.get(f"/messageexchange/{mesh_sandbox.MAILBOX}", headers={"Authorization": header})
    assert replay.status_code == 403 and "nonce" in replay.json()["detail"][0]["msg"]


@pytest.mark.parametrize("box", [mesh_sandbox.MAILBOX])
def test_the_client_and_sandbox_sign_identically(box: str) -> None:
    a = nhsmesh_header(box, "pw", "key", nonce="abc", nonce_count=1)
    b = mesh_sandbox.mesh_auth_header(box, "pw", "key", nonce="abc", nonce_count=1, timestamp=a.split(":")[3])
    assert a == b


def _pki(tmp: Any) -> dict[str, str]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate (PEM files and texts)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def pem_key(k: ec.EllipticCurvePrivateKey) -> str:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()).decode()

    now = dt.datetime.now(dt.UTC)
    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Spine CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, serial: int, san: x509.GeneralName | None) -> tuple[str, str]:
        k = key()
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(ca_name).public_key(k.public_key()).serial_number(serial)
             .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1)))
        if san is not None:
            b = b.add_extension(x509.SubjectAlternativeName([san]), critical=False)
        return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode(), pem_key(k)

    server_cert, server_key = leaf("127.0.0.1", 2, x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    client_cert, client_key = leaf(mesh_sandbox.MAILBOX, 3, None)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    files = {}
    for name, text in (("ca", ca_pem), ("server_cert", server_cert), ("server_key", server_key)):
        path = tmp / f"{name}.pem"
        path.write_text(text)
        files[name] = str(path)
    return {**files, "ca_pem": ca_pem, "client_cert": client_cert, "client_key": client_key}


async def test_mutual_tls_over_loopback_like_the_spine(tmp_path: Any) -> None:
    import asyncio
    import socket
    import ssl

    import uvicorn

    from connectors.errors import ConnectorError

    pki = _pki(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = mesh_sandbox.create_app(SandboxConfig(records=3))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                           ssl_certfile=pki["server_cert"], ssl_keyfile=pki["server_key"],
                                           ssl_ca_certs=pki["ca"], ssl_cert_reqs=ssl.CERT_REQUIRED))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        tls = {**GOOD, "client_cert_pem": pki["client_cert"], "client_key_pem": pki["client_key"],
               "ca_bundle_pem": pki["ca_pem"]}
        one_try = fast_rules(MANIFEST, max_attempts=1)
        s = open_session(MANIFEST, {"mailbox_id": mesh_sandbox.MAILBOX}, tls, base_url=f"https://127.0.0.1:{port}",
                         connection_id="mesh-mtls", allow_private=True, error_rules=one_try, rate_limits=RateLimits())
        async with s:
            assert len(await s.list_inbox()) == 3
        no_cert = {**GOOD, "ca_bundle_pem": pki["ca_pem"]}
        s2 = open_session(MANIFEST, {"mailbox_id": mesh_sandbox.MAILBOX}, no_cert, base_url=f"https://127.0.0.1:{port}",
                          connection_id="mesh-no-cert", allow_private=True, error_rules=one_try,
                          rate_limits=RateLimits())
        async with s2:
            with pytest.raises(ConnectorError):
                await s2.list_inbox()  # trusts the server, but the server demands a client certificate
    finally:
        server.should_exit = True
        await task


async def test_a_mesh_payload_with_an_hl7_batch_yields_every_message() -> None:
    from pathlib import Path

    samples = Path(__file__).parent / "samples"
    batch = ("FHS|^~\\&|WINPATH|RXX01\rBHS|^~\\&|WINPATH|RXX01\r"
             + (samples / "clinisys_oru_r01.hl7").read_bytes().decode()
             + (samples / "sunquest_oru_r01.hl7").read_bytes().decode() + "BTS|2\rFTS|1\r")
    app = mesh_sandbox.create_app(SandboxConfig(records=0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mesh.sandbox") as c:
        await c.post("/_sandbox/mesh/deliver", json={"content": batch})
    async with _session(app) as s:
        pages = [p async for p in s.read("lab_results")]
    assert len(pages) == 1 and len(pages[0].records) == 12
    assert {r.data["labControlId"] for r in pages[0].records} == {"WP20250301-0001", "SQ0000048812"}
