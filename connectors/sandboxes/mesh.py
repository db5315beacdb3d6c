"""NHS MESH sandbox (Message Exchange for Social care and Health), after ``NHSDigital/mesh-api-specification``
and the behaviour of ``NHSDigital/mesh-sandbox``:

* ``Authorization: NHSMESH {mailbox}:{nonce}:{nonce_count}:{timestamp}:{hmac}`` checked on every call
  (HMAC-SHA256 keyed with the environment's shared key over ``mailbox:nonce:count:password:timestamp``);
  a nonce is accepted once; timestamps more than 2 hours away are refused;
* ``GET/POST /messageexchange/{mailbox}`` handshake;
* ``GET /messageexchange/{mailbox}/inbox`` (v2: ``{messages, links.next, approx_inbox_count}``, ``max_results``,
  ``continue_from``);
* ``GET .../inbox/{id}`` (first chunk; ``206`` + ``Mex-Chunk-Range: 1:n`` when chunked), ``GET .../inbox/{id}/{n}``;
* ``PUT .../inbox/{id}/status/acknowledged`` (the message leaves the inbox);
* ``POST .../outbox`` with ``mex-to``, ``mex-workflowid``, ``mex-localid`` ... → ``202 {message_id}``; the message
  lands in the recipient's inbox when that mailbox is hosted here;
* ``GET .../outbox/tracking?localId=`` and ``.../outbox/tracking/{id}``.

The seed inbox holds HL7 v2 ORU^R01 lab results for the care home's residents (NHS numbers from the 999
test range), as a trust's pathology interface engine would drop them.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    BASE_TIME,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
    nhs_number,
    pools,
    rng_for,
)

MAILBOX = "X26HC001"  # the care home's mailbox
PASSWORD = "password"
SHARED_KEY = "TestKey"
LAB_MAILBOX = "X26LAB01"  # the trust pathology lab's mailbox
GP_MAILBOX = "X26GP001"
WORKFLOW_RESULTS = "PATH_HL7V2_ORU_R01"
V2 = "application/vnd.mesh.v2+json"

TESTS = [  # (local code, name, LOINC, LOINC display, unit, low, high)
    ("HB", "Haemoglobin", "718-7", "Hemoglobin [Mass/volume] in Blood", "g/L", 115, 165),
    ("WBC", "White cell count", "6690-2", "Leukocytes [#/volume] in Blood", "10*9/L", 4.0, 11.0),
    ("NA", "Sodium", "2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 133, 146),
    ("K", "Potassium", "2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.3),
    ("CREA", "Creatinine", "2160-0", "Creatinine [Moles/volume] in Serum or Plasma", "umol/L", 45, 84),
    ("CRP", "C reactive protein", "1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 0, 5),
    ("HBA1C", "HbA1c", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "mmol/mol", 20, 41),
]


def lab_result_message(seed: int, i: int) -> str:
    """A deterministic ORU^R01 for resident ``i`` (three to five results, some out of range)."""
    r = rng_for(seed, "mesh-results", i)
    p = pools(seed)
    at = BASE_TIME + timedelta(hours=6 * i)
    nhs = nhs_number(rng_for(seed, "residents", i % 40))
    family, given = r.choice(p.last_names).upper(), r.choice(p.first_names).upper()
    control = f"WP{at:%Y%m%d}-{i:05d}"
    segs = [
        f"MSH|^~\\&|WINPATH|RXX01^LEEDS PATHOLOGY|CAREHUB|{MAILBOX}|{at:%Y%m%d%H%M%S}||ORU^R01|{control}|P|2.4",
        f"PID|1||{nhs}^^^NHS^NH||{family}^{given}||19{r.randrange(25, 50)}0{r.randrange(1, 9)}1{r.randrange(0, 9)}|"
        f"{r.choice('MF')}",
        f"OBR|1|ICE{900000 + i}|WP{700000 + i}|PROFILE^Blood profile^WINPATH|||{at:%Y%m%d%H%M%S}",
    ]
    for n, (code, name, loinc, ldisp, unit, low, high) in enumerate(r.sample(TESTS, r.randrange(3, 6)), 1):
        span = high - low
        value = round(r.uniform(low - span * 0.3, high + span * 0.3), 1)
        flag = "H" if value > high else "L" if value < low else "N"
        segs.append(f"OBX|{n}|NM|{code}^{name}^WINPATH^{loinc}^{ldisp}^LN||{value}|{unit}|{low}-{high}|{flag}|||F")
    return "\r".join(segs) + "\r"


@dataclass
class MeshMessage:
    """One message in a mailbox."""

    message_id: str
    sender: str
    recipient: str
    workflow_id: str
    body: bytes
    local_id: str = ""
    subject: str = ""
    filename: str = ""
    created: float = field(default_factory=time.time)
    status: str = "accepted"  # accepted -> acknowledged
    content_type: str = "application/octet-stream"


@dataclass
class MeshWorld:
    """All mailboxes of the sandbox."""

    inboxes: dict[str, list[str]] = field(default_factory=dict)
    messages: dict[str, MeshMessage] = field(default_factory=dict)
    nonces: set[str] = field(default_factory=set)
    passwords: dict[str, str] = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)


def mesh_auth_header(mailbox: str, password: str, shared_key: str = SHARED_KEY, *, nonce: str | None = None,
                     nonce_count: int = 0, timestamp: str | None = None) -> str:
    """The ``NHSMESH`` Authorization header value (the same algorithm as ``connectors.mesh.auth``)."""
    nonce = nonce or str(uuid.uuid4())
    timestamp = timestamp or datetime.now(UTC).strftime("%Y%m%d%H%M")
    message = f"{mailbox}:{nonce}:{nonce_count}:{password}:{timestamp}"
    digest = hmac.new(shared_key.encode(), message.encode(), hashlib.sha256).hexdigest()
    return f"NHSMESH {mailbox}:{nonce}:{nonce_count}:{timestamp}:{digest}"


def _error(status: int, code: str, msg: str, message_id: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"message_id": message_id, "internal_id": uuid.uuid4().hex,
                            "detail": [{"event": "SEND" if code.startswith("0") else "AUTH", "code": code,
                                        "msg": msg}]}
    return JSONResponse(body, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = _error(429, "TOO_MANY_REQUESTS", "Too many requests; slow down")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The MESH sandbox app; ``config.records`` is the number of seeded lab result messages."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "NHS MESH")
    world = MeshWorld(passwords={MAILBOX: PASSWORD, LAB_MAILBOX: PASSWORD, GP_MAILBOX: PASSWORD})
    for box in world.passwords:
        world.inboxes[box] = []
    n = cfg.count("lab_results")
    for i in range(n):
        mid = f"{datetime(2025, 1, 1) + timedelta(hours=i):%Y%m%d%H%M%S}{i:06d}_{uuid.UUID(int=i + 1).hex[:6].upper()}"
        world.messages[mid] = MeshMessage(mid, LAB_MAILBOX, MAILBOX, WORKFLOW_RESULTS,
                                          lab_result_message(cfg.seed, i).encode(), local_id=f"lab-{i}",
                                          filename=f"result_{i:05d}.hl7", subject="Pathology results")
        world.inboxes[MAILBOX].append(mid)
    state.extra["world"] = world
    state.extra["chunk_size"] = 0
    app = FastAPI(title="NHS MESH sandbox (CareHub)")
    app.state.sandbox = state
    app.state.world = world
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def authorised(request: Request, mailbox: str) -> Response | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("NHSMESH "):
            return _error(401, "EPL-151", "Authorization header missing or not NHSMESH")
        try:
            box, nonce, count, stamp, digest = header[8:].split(":")
        except ValueError:
            return _error(401, "EPL-151", "Malformed NHSMESH authorization header")
        password = world.passwords.get(box)
        if password is None or box != mailbox:
            return _error(403, "EPL-153", "Mailbox id does not match the authenticated mailbox")
        expected = mesh_auth_header(box, password, SHARED_KEY, nonce=nonce, nonce_count=int(count or 0),
                                    timestamp=stamp).rsplit(":", 1)[1]
        if not hmac.compare_digest(expected, digest):
            return _error(403, "EPL-151", "Authentication failed: invalid hash")
        try:
            when = datetime.strptime(stamp, "%Y%m%d%H%M").replace(tzinfo=UTC)
        except ValueError:
            return _error(403, "EPL-151", "Authentication failed: invalid timestamp")
        if abs((datetime.now(UTC) - when).total_seconds()) > 7200:
            return _error(403, "EPL-151", "Authentication failed: timestamp out of range")
        if f"{box}:{nonce}:{count}" in world.nonces:
            return _error(403, "EPL-151", "Authentication failed: nonce already used")
        world.nonces.add(f"{box}:{nonce}:{count}")
        return None

    def chunks_of(msg: MeshMessage) -> list[bytes]:
        size = int(state.extra.get("chunk_size") or 0)
        if not size or len(msg.body) <= size:
            return [msg.body]
        return [msg.body[i:i + size] for i in range(0, len(msg.body), size)]

    def headers_of(msg: MeshMessage, chunk: int, total: int) -> dict[str, str]:
        return {"mex-messageid": msg.message_id, "mex-from": msg.sender, "mex-to": msg.recipient,
                "mex-workflowid": msg.workflow_id, "mex-localid": msg.local_id, "mex-subject": msg.subject,
                "mex-filename": msg.filename, "mex-messagetype": "DATA", "mex-chunk-range": f"{chunk}:{total}",
                "content-type": msg.content_type}

    @app.api_route("/messageexchange/{mailbox}", methods=["GET", "POST"])
    async def handshake(mailbox: str, request: Request) -> Response:
        denied = authorised(request, mailbox)
        if denied:
            return denied
        return JSONResponse({"mailbox_id": mailbox})

    @app.get("/messageexchange/{mailbox}/inbox")
    async def inbox(mailbox: str, request: Request) -> Response:
        denied = authorised(request, mailbox)
        if denied:
            return denied
        q = request.query_params
        max_results = max(1, min(500, int(q.get("max_results") or 500)))
        ids = world.inboxes.get(mailbox, [])
        start = 0
        after = q.get("continue_from")
        if after:
            start = next((k + 1 for k, mid in enumerate(ids) if mid == after), len(ids))
        page = ids[start:start + max_results]
        links: dict[str, str] = {"self": str(request.url)}
        if start + max_results < len(ids) and page:
            links["next"] = (f"/messageexchange/{mailbox}/inbox?max_results={max_results}"
                             f"&continue_from={page[-1]}")
        return JSONResponse({"messages": page, "links": links, "approx_inbox_count": len(ids)})

    def _find(mailbox: str, message_id: str) -> MeshMessage | None:
        msg = world.messages.get(message_id)
        if msg is None or msg.recipient != mailbox or msg.status == "acknowledged":
            return None
        return msg

    @app.get("/messageexchange/{mailbox}/inbox/{message_id}")
    async def download(mailbox: str, message_id: str, request: Request) -> Response:
        denied = authorised(request, mailbox)
        if denied:
            return denied
        msg = _find(mailbox, message_id)
        if msg is None:
            return _error(404, "20", "Message does not exist", message_id)
        parts = chunks_of(msg)
        return Response(parts[0], status_code=206 if len(parts) > 1 else 200,
                        headers=headers_of(msg, 1, len(parts)))

    @app.get("/messageexchange/{mailbox}/inbox/{message_id}/{chunk}")
    async def download_chunk(mailbox: str, message_id: str, chunk: int, request: Request) -> Response:
        denied = authorised(request, mailbox)
        if denied:
            return denied
        msg = _find(mailbox, message_id)
        if msg is None:
            return _error(404, "20", "Message does not exist", message_id)
        parts = chunks_of(msg)
        if not 1 <= chunk <= len(parts):
            return _error(404, "20", f"Chunk {chunk} does not exist", message_id)
        return Response(parts[chunk - 1], status_code=206 if chunk < len(parts) else 200,
                        headers=headers_of(msg, chunk, len(parts)))

    @app.put("/messageexchange/{mailbox}/inbox/{message_id}/status/acknowledged")
    async def acknowledge(mailbox: str, message_id: str, request: Request) -> Response:
        denied = authorised(request, mailbox)
        if denied:
            return denied
        msg = world.messages.get(message_id)
        if msg is None or msg.recipient != mailbox:
            return _error(404, "20", "Message does not exist", message_id)
        msg.status = "acknowledged"
        if message_id in world.inboxes.get(mailbox, []):
            world.inboxes[mailbox].remove(message_id)
        return JSONResponse({"message_id": message_id})

    @app.post("/messageexchange/{mailbox}/outbox")
    async def send(mailbox: str, request: Request) -> Response:
        denied = authorised(request, mailbox)
        if denied:
            return denied
        h = request.headers
        to, workflow = h.get("mex-to", ""), h.get("mex-workflowid", "")
        if not to:
            return _error(417, "12", "Recipient mailbox (mex-to) is missing")
        if not workflow:
            return _error(400, "11", "Workflow id (mex-workflowid) is missing")
        if to not in world.passwords:
            return _error(417, "12", f"Unregistered to address: {to}")
        body = await request.body()
        if not body:
            return _error(400, "02", "Data file is missing or inaccessible.")
        mid = f"{datetime.now(UTC):%Y%m%d%H%M%S}{len(world.messages):06d}_{uuid.uuid4().hex[:6].upper()}"
        msg = MeshMessage(mid, mailbox, to, workflow, body, local_id=h.get("mex-localid", ""),
                          subject=h.get("mex-subject", ""), filename=h.get("mex-filename", ""),
                          content_type=h.get("content-type", "application/octet-stream"))
        world.messages[mid] = msg
        world.inboxes.setdefault(to, []).append(mid)
        world.sent.append(mid)
        return JSONResponse({"message_id": mid}, status_code=202)

    def tracking(msg: MeshMessage) -> dict[str, Any]:
        return {"message_id": msg.message_id, "local_id": msg.local_id, "sender": msg.sender,
                "recipient": msg.recipient, "workflow_id": msg.workflow_id, "filename": msg.filename,
                "status": msg.status, "status_success": True,
                "upload_timestamp": datetime.fromtimestamp(msg.created, tz=UTC).strftime("%Y%m%d%H%M%S")}

    @app.get("/messageexchange/{mailbox}/outbox/tracking")
    async def track_local(mailbox: str, request: Request) -> Response:
        denied = authorised(request, mailbox)
        if denied:
            return denied
        local_id = request.query_params.get("localId", "")
        found = [m for m in world.messages.values() if m.sender == mailbox and local_id and m.local_id == local_id]
        if not found:
            return _error(404, "20", f"No message with local id {local_id}")
        if len(found) > 1:
            return _error(300, "MULTIPLE", "Multiple messages with this local id")
        return JSONResponse(tracking(found[0]))

    @app.get("/messageexchange/{mailbox}/outbox/tracking/{message_id}")
    async def track(mailbox: str, message_id: str, request: Request) -> Response:
        denied = authorised(request, mailbox)
        if denied:
            return denied
        msg = world.messages.get(message_id)
        if msg is None or msg.sender != mailbox:
            return _error(404, "20", "Message does not exist", message_id)
        return JSONResponse(tracking(msg))

    @app.post("/_sandbox/mesh/deliver")
    async def deliver(request: Request) -> dict[str, Any]:
        """Drop a message into a mailbox as if another organisation had sent it (tests, demos)."""
        body = await request.json()
        mid = f"{datetime.now(UTC):%Y%m%d%H%M%S}{len(world.messages):06d}_{uuid.uuid4().hex[:6].upper()}"
        msg = MeshMessage(mid, body.get("from", LAB_MAILBOX), body.get("to", MAILBOX),
                          body.get("workflow_id", WORKFLOW_RESULTS), str(body.get("content", "")).encode(),
                          local_id=body.get("local_id", ""), filename=body.get("filename", ""))
        world.messages[mid] = msg
        world.inboxes.setdefault(msg.recipient, []).append(mid)
        return {"message_id": mid}

    @app.post("/_sandbox/mesh/chunk-size")
    async def set_chunk_size(request: Request) -> dict[str, int]:
        """Serve messages in chunks of this many bytes (0 turns chunking off)."""
        state.extra["chunk_size"] = int((await request.json()).get("bytes", 0))
        return {"chunk_size": int(state.extra["chunk_size"])}

    return app
