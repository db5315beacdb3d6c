"""Shiftboard connector against its sandbox over real HTTP: every call a JSON-RPC 2.0 GET signed with
HMAC-SHA1 over ``"method" + method + "params" + JSON`` (recomputed by the sandbox and by this test), page.next
paging, a rolling window of shift dates, shift.create/update with a look-up before create (counted at the
vendor), 429/5xx storms, JSON-RPC error objects turned into clear messages, and a sync into the care store."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from arq.connections import ArqRedis
from fastapi import FastAPI

from app.sync_jobs import enqueue_run
from connectors.custom.shiftboard import signature, signed_query
from connectors.errors import AuthFailed
from connectors.manifest import RateLimits
from connectors.runtime import ConnectorSession
from connectors.sandboxes import shiftboard as sb
from connectors.sandboxes.common import SandboxConfig
from engine.ports import OutboundRecord
from storage import runs as runrepo
from storage.models import Integration, MappingDesign, SyncConfiguration

from .ops_helpers import (
    MAPPINGS,
    check_registered,
    fast_rules,
    manifest,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)
from .worker_harness import count_care, drain, serve

CONFIG = {"access_key_id": sb.ACCESS_KEY_ID}
SECRETS = {"signature_key": sb.SIGNATURE_KEY}
SIGNED_KEYS = {"access_key_id", "jsonrpc", "id", "method", "params", "signature"}


def s(app: Any, **kw: Any) -> ConnectorSession:
    return session("shiftboard", app, kw.pop("config", CONFIG), kw.pop("secrets", SECRETS), **kw)


class Recorder:
    """ASGI wrapper keeping the raw method and query string of every API call (the wire format)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.calls: list[tuple[str, str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_sandbox"):
            self.calls.append((scope["method"], scope["path"], scope["query_string"].decode()))
        await self.app(scope, receive, send)


class LoseFirstCreate:
    """Lets Shiftboard act on the first shift.create, then loses its reply (the caller sees a 502)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.lost = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        query = dict(parse_qsl(scope.get("query_string", b"").decode())) if scope["type"] == "http" else {}
        if query.get("method") != "shift.create" or self.lost:
            await self.app(scope, receive, send)
            return
        self.lost += 1

        async def swallow(message: Any) -> None:
            return None

        await self.app(scope, receive, swallow)
        await send({"type": "http.response.start", "status": 502, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Bad Gateway"})


def rpc_calls(app: FastAPI, method: str) -> list[dict[str, Any]]:
    """The decoded params of the calls of one RPC method the sandbox accepted."""
    return [c["params"] for c in app.state.sandbox.extra["calls"] if c["method"] == method]


def window() -> tuple[date, date]:
    today = datetime.now(UTC).date()
    return today - timedelta(days=28), today + timedelta(days=56)


def test_manifest_validates_and_is_registered() -> None:
    m = check_registered("shiftboard")
    assert m.auth.type == "custom" and m.auth.name == "shiftboard_signature"
    assert m.environments["production"].base_url == "https://api.shiftdata.com"
    assert m.environments["eu"].base_url == "https://api-data.eu.shiftboard.com"
    assert {st.params["method"] for st in m.streams.values()} == {"account.list", "workgroup.list", "shift.list",
                                                                "timeclock.whosOn"}
    assert (m.streams["accounts"].care_type, m.streams["shifts"].care_type) == ("Employee", "Shift")


@pytest.mark.parametrize(("region", "host"), [("production", "api.shiftdata.com"),
                                               ("eu", "api-data.eu.shiftboard.com")])
async def test_region_picks_the_host_and_the_form_asks_for_both_keys(region: str, host: str) -> None:
    from ui.components.connection_form import form_fields

    app = sandbox("shiftboard", records={"shifts": 5, "accounts": 5})
    rec = Recorder(app)
    hosts: list[str] = []

    async def note_host(request: httpx.Request) -> None:
        hosts.append(request.url.host)

    m = manifest("shiftboard")
    sess = ConnectorSession(m, {"environment": region, **CONFIG}, SECRETS, transport=httpx.ASGITransport(app=rec),
                            connection_id=f"sb-{region}", error_rules=fast_rules(m), rate_limits=RateLimits())
    sess.client.event_hooks["request"].append(note_host)
    async with sess:
        result = await sess.test_connection()
    assert result.ok and sess.base_url == f"https://{host}" and set(hosts) == {host}
    asked = {(f.name, f.store) for f in form_fields(m, sandbox=False)}
    assert {("environment", "config"), ("access_key_id", "config"), ("signature_key", "secrets")} <= asked
    practice = {f.name for f in form_fields(m, sandbox=True, provided={"signature_key": sb.SIGNATURE_KEY})}
    # the sandbox's own key id is pre-filled; its signature key is provided; the workgroup is the home's choice
    assert practice == {"access_key_id", "default_workgroup"}


def test_signature_known_answer() -> None:
    # printf '%s' 'methodsystem.echoparams{"foo":"bar"}' | openssl dgst -sha1 -hmac "$KEY" -binary | base64
    assert signature(sb.SIGNATURE_KEY, "system.echo", '{"foo":"bar"}') == "FqytiVFLpxBwIsq8qblKaCNXzx4="
    assert sb.expected_signature("system.echo", '{"foo":"bar"}') == "FqytiVFLpxBwIsq8qblKaCNXzx4="
    q = signed_query(sb.ACCESS_KEY_ID, sb.SIGNATURE_KEY, "shift.list", {"extended": True,
                                                                          "page": {"start": 1, "batch": 100}}, 7)
    assert q["signature"] == "gMdUbAZ428/foo7z8gr/NsxiKFA=" and q["jsonrpc"] == "2.0" and q["id"] == "7"
    assert base64.b64decode(q["params"]).decode() == '{"extended":true,"page":{"start":1,"batch":100}}'
    assert signature(sb.SIGNATURE_KEY, "system.echo", '{"foo": "bar"}') != q["signature"]


async def test_every_call_is_a_signed_get_the_sandbox_recomputes() -> None:
    app = sandbox("shiftboard", records={"shifts": 150, "accounts": 10})
    rec = Recorder(app)
    async with s(app, transport=httpx.ASGITransport(app=rec)) as sess:
        shifts, _ = await read_all(sess, "shifts")
        out = await sess.write("shifts", [OutboundRecord("carehub-sign-1", {
            "workgroup": "7001", "subject": "Registered Nurse", "start_date": "2026-12-01T08:00:00",
            "end_date": "2026-12-01T20:00:00"})])
    assert len(shifts) == 150 and out[0].ok
    assert rec.calls and all(verb == "GET" and path == "/" for verb, path, _ in rec.calls)
    methods = []
    for _, _, raw in rec.calls:
        q = dict(parse_qsl(raw))
        assert set(q) == SIGNED_KEYS and q["jsonrpc"] == "2.0" and q["access_key_id"] == sb.ACCESS_KEY_ID
        text = base64.b64decode(q["params"]).decode()
        mine = base64.b64encode(hmac.new(sb.SIGNATURE_KEY.encode(), f"method{q['method']}params{text}".encode(),
                                         hashlib.sha1).digest()).decode()
        assert q["signature"] == mine
        methods.append((q["method"], json.loads(text)))
    assert [m for m, _ in methods] == ["shift.list", "shift.list", "shift.list", "shift.create"]
    # the look-up before the create, then the create carrying CareHub's key in external_id
    assert methods[2][1]["select"] == {"external_id": "carehub-sign-1"}
    assert methods[3][1]["external_id"] == "carehub-sign-1" and methods[3][1]["workgroup"] == "7001"
    assert len({dict(parse_qsl(raw))["id"] for _, _, raw in rec.calls}) == len(rec.calls)  # one RPC id per call


async def test_full_read_of_230_shifts_across_pages() -> None:
    app = sandbox("shiftboard", records={"shifts": 230, "accounts": 250})
    async with s(app) as sess:
        shifts, pages = await read_all(sess, "shifts")
        accounts, account_pages = await read_all(sess, "accounts")
        workgroups, _ = await read_all(sess, "workgroups")
    assert len(shifts) == 230 and len({r.external_id for r in shifts}) == 230 and len(pages) == 3
    assert [len(p.records) for p in pages] == [100, 100, 30]
    assert [p["page"] for p in rpc_calls(app, "shift.list")] == [{"start": 1, "batch": 100}, {"start": 101, "batch": 100},
                                                                  {"start": 201, "batch": 100}]
    assert (pages[0].checkpoint or {})["page"]["start"] == 101
    assert len({r.external_id for r in accounts}) == 250 and len(account_pages) == 3
    assert accounts[0].updated_at is not None and workgroups[0].data["name"].startswith("Willow Court")
    assert sess.stats.failed_calls == 0


async def test_shifts_are_read_in_a_rolling_window_and_a_checkpoint_resumes_in_it() -> None:
    app = sandbox("shiftboard", records={"shifts": 400, "accounts": 10})
    lo, hi = window()
    async with s(app) as sess:
        shifts, pages = await read_all(sess, "shifts")
        resumed, _ = await read_all(sess, "shifts", pages[0].checkpoint)
    # the rota runs from 27 days ago, three shifts a day: days -27..+56 are in the window, later ones are not
    assert len(shifts) == 84 * 3 == 252
    days = {date.fromisoformat(r.data["start_date"][:10]) for r in shifts}
    assert min(days) >= lo and max(days) == hi
    sent = rpc_calls(app, "shift.list")
    assert {(p["select"]["start_date"], p["select"]["end_date"]) for p in sent} == {(lo.isoformat(), hi.isoformat())}
    assert [r.external_id for r in resumed] == [r.external_id for r in shifts[100:]]

    # an edit made in Shiftboard is in the next read; shifts beyond the window are never asked for
    data = app.state.sandbox.datasets["shifts"]
    first = shifts[0].external_id
    data.put(first, {**(data.get(first) or {}), "covering_member": "100003", "covered": True})
    async with s(app) as sess:
        again, _ = await read_all(sess, "shifts")
    assert len(again) == 252 and next(r for r in again if r.external_id == first).data["covering_member"] == "100003"


async def test_shift_create_is_idempotent_counted_at_the_vendor_and_edits_apply() -> None:
    app = sandbox("shiftboard", records={"shifts": 20, "accounts": 10})
    lossy = LoseFirstCreate(app)
    state = app.state.sandbox
    new = OutboundRecord("carehub-shift-7f1c", {"workgroup": "7002", "location": "8002", "subject": "Senior Care Assistant",
                                                "start_date": "2026-12-24T07:00:00", "end_date": "2026-12-24T15:00:00",
                                                "covering_member": "100004"})
    async with s(app, transport=httpx.ASGITransport(app=lossy)) as sess:
        first = await sess.write("shifts", [new])  # Shiftboard created it, but the reply was lost
        again = await sess.write("shifts", [new])  # the engine sends the same record again
    assert lossy.lost == 1 and first[0].ok and again[0].ok
    assert first[0].external_id == again[0].external_id and state.extra["created"] == 1
    sid = str(first[0].external_id)
    assert state.datasets["shifts"].get(sid)["external_id"] == "carehub-shift-7f1c"

    async with s(app) as sess:
        edited = await sess.write("shifts", [OutboundRecord("carehub-shift-7f1c-v2", {"subject": "Registered Nurse"},
                                                            external_id=sid)])
        bad = await sess.write("shifts", [OutboundRecord("carehub-bad", {
            "workgroup": "7001", "start_date": "2026-12-24T15:00:00", "end_date": "2026-12-24T07:00:00"})])
        missing = await sess.write("shifts", [OutboundRecord("carehub-gone", {"subject": "x"}, external_id="999")])
    assert edited[0].ok and edited[0].external_id == sid and state.extra["updated"] == 1
    assert state.datasets["shifts"].get(sid)["subject"] == "Registered Nurse"
    assert not bad[0].ok and "end_date must be after start_date" in (bad[0].error_message or "")
    assert not missing[0].ok and "Shift 999 was not found" in (missing[0].error_message or "")
    assert state.extra["created"] == 1


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_mid_read_end_with_every_record(storm: str) -> None:
    app = sandbox("shiftboard", records={"shifts": 230, "accounts": 10})
    async with s(app) as sess:
        shifts, _ = await read_all(sess, "shifts", between=storm_starter(app, storm))
    assert len({r.external_id for r in shifts}) == 230
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_json_rpc_errors_become_clear_messages() -> None:
    app = sandbox("shiftboard", records={"shifts": 5, "accounts": 5})
    async with s(app, secrets={"signature_key": "not-the-key"}) as sess:
        result = await sess.test_connection()
        with pytest.raises(AuthFailed, match=r"Shiftboard rejected the credentials: .*signature does not match"):
            await read_all(sess, "shifts")
    assert not result.ok and "did not accept the credentials" in result.reason
    assert "the signature does not match the request" in result.reason
    async with s(app, config={"access_key_id": "someone-else"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and "unknown or disabled access_key_id" in result.reason
    calls_before = app.state.sandbox.calls
    async with s(app, secrets={}) as sess:
        result = await sess.test_connection()
    assert not result.ok and "the connection has no signature key" in result.reason
    assert app.state.sandbox.calls == calls_before  # nothing unsigned was sent

    # on the wire: HTTP 200 with a JSON-RPC error object (Shiftboard's shape: error.data.code / message)
    q = signed_query(sb.ACCESS_KEY_ID, sb.SIGNATURE_KEY, "shift.list", {"page": {"start": 1, "batch": 5}}, 3)
    q["params"] = base64.b64encode(b'{"page":{"start":1,"batch":500}}').decode()  # changed after signing
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sb.sandbox") as c:
        raw = await c.get("/", params=q)
        unknown = await c.get("/api/api.cgi", params=signed_query(sb.ACCESS_KEY_ID, sb.SIGNATURE_KEY, "shift.nuke", {}, 4))
    body = raw.json()
    assert raw.status_code == 200 and body["id"] == "3" and body["error"]["data"]["code"] == sb.ERR_SIGNATURE
    assert unknown.json()["error"]["code"] == -32601 and "Method not found" in unknown.json()["error"]["message"]


async def test_mappings_compile_and_map_sandbox_records() -> None:
    app = sandbox("shiftboard", records={"shifts": 40, "accounts": 40})
    async with s(app) as sess:
        shifts = await sess.sample("shifts", 40)
        accounts = await sess.sample("accounts", 40)
    care_shifts = map_records("shiftboard", "Shift", shifts, stream="shifts")
    raw = shifts[0].data
    assert care_shifts[0]["start"].startswith(raw["start_date"]) and care_shifts[0]["source"] == "shiftboard"
    assert care_shifts[0]["start"][-6:] in ("+00:00", "+01:00")  # local UK time with its offset
    assert care_shifts[0]["employeeRef"] == raw["covering_member"] and care_shifts[0]["role"] == raw["subject"]
    night = next(c for c, r in zip(care_shifts, shifts, strict=True) if r.data["start_date"].endswith("21:30:00"))
    assert night["end"] > night["start"]
    staff = map_records("shiftboard", "Employee", accounts, stream="accounts")
    assert staff[0]["employeeNumber"] == "WC0001" and staff[0]["givenName"] == accounts[0].data["first_name"]
    assert {e["status"] for e in staff} <= {"active", "inactive"}


async def test_care_shift_edit_goes_back_through_the_template_as_local_times() -> None:
    from engine.mapping import compile_design, load_mapping_template_file

    app = sandbox("shiftboard", records={"shifts": 30, "accounts": 10})
    compiled = compile_design(load_mapping_template_file(MAPPINGS / "shiftboard" / "Shift.yaml"))
    rec = Recorder(app)
    async with s(app, transport=httpx.ASGITransport(app=rec)) as sess:
        shift = (await sess.sample("shifts", 1))[0]
        care = dict(compiled.apply(shift.data).values)
        care.update({"start": "2027-07-01T07:00:00+00:00", "end": "2027-07-01T19:00:00Z", "role": "Registered Nurse"})
        payload = compiled.reverse(care)
        out = await sess.write("shifts", [OutboundRecord("wcn-edit-1", payload, external_id=shift.external_id)])
        new = await sess.write("shifts", [OutboundRecord("wcn-new-1", compiled.reverse(care))])
    stored = app.state.sandbox.datasets["shifts"].get(shift.external_id)
    assert out[0].ok, out[0].error_message
    # 07:00 UTC on 1 July is 08:00 British Summer Time: Shiftboard gets the wall-clock time, no offset
    assert (stored["start_date"], stored["end_date"], stored["subject"]) == ("2027-07-01T08:00:00",
                                                                             "2027-07-01T20:00:00", "Registered Nurse")
    sent = json.loads(base64.b64decode(dict(parse_qsl(rec.calls[1][2]))["params"]))
    assert sent["id"] == shift.external_id and sent["start_date"] == "2027-07-01T08:00:00"
    # a care-side shift names no Shiftboard workgroup: without a default Shiftboard's own message comes back ...
    assert not new[0].ok and "Missing required parameter: workgroup" in (new[0].error_message or "")
    # ... and with the connection's default workgroup the shift is created there, once
    async with s(app, config={**CONFIG, "default_workgroup": "7002"}) as sess:
        made = await sess.write("shifts", [OutboundRecord("wcn-new-2", compiled.reverse(care))])
        again = await sess.write("shifts", [OutboundRecord("wcn-new-2", compiled.reverse(care))])
    assert made[0].ok and again[0].external_id == made[0].external_id, made[0].error_message
    created = app.state.sandbox.datasets["shifts"].get(str(made[0].external_id))
    assert created["workgroup"] == "7002" and created["subject"] == "Registered Nurse"


async def test_who_is_clocked_in_now_maps_to_open_timesheets() -> None:
    app = sandbox("shiftboard", records={"shifts": 230, "accounts": 20})
    data = app.state.sandbox.datasets["shifts"]
    now = datetime.now(ZoneInfo("Europe/London")).replace(tzinfo=None)
    running = [r for r in data.iter() if datetime.fromisoformat(r["start_date"]) <= now
               < datetime.fromisoformat(r["end_date"])]
    assert running  # early, late and night shifts cover the whole day
    for k, row in enumerate(running):  # make sure someone is on each shift running now
        data.put(row["id"], {**row, "covering_member": str(sb.FIRST_ACCOUNT + k), "covered": True})
    async with s(app) as sess:
        on, pages = await read_all(sess, "clocked_in")
    assert len(pages) == 1 and sorted(r.data["shift"] for r in on) == sorted(r["id"] for r in running)
    assert rpc_calls(app, "timeclock.whosOn")[0]["page"] == {"start": 1, "batch": 100}
    sheets = map_records("shiftboard", "Timesheet", on, stream="clocked_in")
    by_shift = {r["id"]: r for r in running}
    for rec, sheet in zip(on, sheets, strict=True):
        assert sheet["employeeRef"] == str(sb.FIRST_ACCOUNT + running.index(by_shift[rec.data["shift"]]))
        assert sheet["status"] == "open" and "clockOut" not in sheet and datetime.fromisoformat(sheet["clockIn"]) <= datetime.now(UTC)


@pytest.fixture
def rota() -> Iterator[tuple[str, FastAPI]]:
    app = sb.create_app(SandboxConfig(records={"shifts": 230, "accounts": 60}))
    with serve(app) as url:
        yield url, app


async def test_sync_shifts_and_staff_into_the_care_store(ctx: Any, arq: ArqRedis, redis_url: str,
                                                         rota: tuple[str, FastAPI]) -> None:
    url, app = rota
    designs = {name: yaml.safe_load((MAPPINGS / "shiftboard" / f"{name}.yaml").read_text())
               for name in ("Shift", "Employee")}
    with ctx.db.session() as db:
        integ = Integration(name="Rota (Shiftboard)", connector_id="shiftboard", status="active",
                            operation_mode="external_primary",
                            connection_details={"environment": "sandbox", "base_url": url, **CONFIG},
                            credentials_encrypted=ctx.box.encrypt(dict(SECRETS)), error_handling={})
        db.add(integ)
        db.flush()
        db.add(SyncConfiguration(integration_id=integ.id, sync_direction="inbound", batch_size=100,
                                 retry_policy={"base_seconds": 0.05, "cap_seconds": 0.2, "max_attempts": 3,
                                               "call_deadline_seconds": 10},
                                 error_threshold=1000, max_change_share=1.0, sync_frequency={"kind": "manual"},
                                 streams=[{"stream": "accounts", "care_type": "Employee"},
                                          {"stream": "shifts", "care_type": "Shift"}]))
        db.add(MappingDesign(integration_id=integ.id, stream="accounts", care_type="Employee", design=designs["Employee"]))
        db.add(MappingDesign(integration_id=integ.id, stream="shifts", care_type="Shift", design=designs["Shift"]))
        integ_id = str(integ.id)

    run1 = await enqueue_run(ctx.db, arq, integ_id, "manual", requested_by="test")
    await drain(ctx, redis_url, "shiftboard-test-worker")
    r1 = runrepo.get_run(ctx.db, run1)
    assert r1 is not None
    assert r1.status == "succeeded", r1.error
    assert r1.counts["read"] == 290 and r1.counts["created"] == 290
    assert count_care(ctx, "Shift") == 230 and count_care(ctx, "Employee") == 60

    data = app.state.sandbox.datasets["shifts"]
    sid = str(sb.FIRST_SHIFT + 5)
    data.put(sid, {**(data.get(sid) or {}), "subject": "Registered Nurse"})  # changed in Shiftboard
    run2 = await enqueue_run(ctx.db, arq, integ_id, "manual")
    await drain(ctx, redis_url, "shiftboard-test-worker")
    r2 = runrepo.get_run(ctx.db, run2)
    assert r2 is not None
    assert r2.status == "succeeded", r2.error
    assert r2.counts["created"] == 0 and r2.counts["updated"] == 1 and count_care(ctx, "Shift") == 230
