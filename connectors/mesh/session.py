"""A MESH mailbox as a connector: lab results read from the inbox, messages sent through the outbox.

Reading is at least once and loses nothing: a message is acknowledged (and so leaves the inbox) only
after the page that carried its records has been stored. The engine reads ahead while it stores, so a
read never acknowledges anything of its own: each page's checkpoint names every message read so far
(``pending_ack``), and the next read (the next run, or this run resumed after a crash) acknowledges the
messages of the last checkpoint that was committed, before listing the inbox. Redelivered messages parse
to the same FHIR ids, so the store's upsert absorbs duplicates. A message that is not a readable ORU^R01 is left in the inbox
(never acknowledged) and reported in :attr:`MeshSession.rejected` with its reason.

Sending uses ``mex-localid`` = the record's idempotency key and looks it up in outbox tracking first, so
a retried send does not post the same message twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import platform
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.auth import AuthContext, Authenticator, OutgoingRequest, register_auth
from connectors.errors import AuthFailed, ConnectorError, RateLimited, VendorError
from connectors.hl7.oru import Hl7Error, parse_oru, split_messages
from connectors.manifest import CustomAuth
from connectors.mesh.tls import use_client_certificate
from connectors.runtime import ConnectionTest, ConnectorSession
from engine.ports import OutboundRecord, ReadPage, SourceRecord, WriteOutcome

CLIENT_VERSION = "CareHub-MESH-Client/1.0"
ACCEPT_V2 = "application/vnd.mesh.v2+json"


def nhsmesh_header(mailbox: str, password: str, shared_key: str, *, nonce: str | None = None,
                   nonce_count: int = 0, when: datetime | None = None) -> str:
    """``NHSMESH mailbox:nonce:count:timestamp:hex(HMAC-SHA256(shared_key, mailbox:nonce:count:password:ts))``."""
    nonce = nonce or str(uuid.uuid4())
    timestamp = (when or datetime.now(UTC)).strftime("%Y%m%d%H%M")
    message = f"{mailbox}:{nonce}:{nonce_count}:{password}:{timestamp}"
    digest = hmac.new(shared_key.encode(), message.encode(), hashlib.sha256).hexdigest()
    return f"NHSMESH {mailbox}:{nonce}:{nonce_count}:{timestamp}:{digest}"


class MeshAuthenticator(Authenticator):
    """Signs every MESH call with a fresh nonce and sends the ``mex-*`` client headers."""

    def __init__(self, spec: CustomAuth, ctx: AuthContext) -> None:
        super().__init__(spec, ctx)

    async def apply(self, request: OutgoingRequest) -> None:
        """Add ``Authorization: NHSMESH ...`` and the client identification headers."""
        mailbox = str(self.ctx.config.get("mailbox_id", ""))
        password = str(self.ctx.secrets.get("mailbox_password", ""))
        shared_key = str(self.ctx.secrets.get("shared_key", ""))
        request.headers["Authorization"] = nhsmesh_header(mailbox, password, shared_key)
        request.headers.setdefault("Accept", ACCEPT_V2)
        request.headers.setdefault("mex-ClientVersion", CLIENT_VERSION)
        request.headers.setdefault("mex-OSName", platform.system() or "Linux")
        request.headers.setdefault("mex-OSVersion", platform.release() or "unknown")


register_auth("mesh", lambda spec, ctx: MeshAuthenticator(spec, ctx))


@dataclass
class RejectedMessage:
    """A message left in the inbox because it could not be read."""

    message_id: str
    reason: str


@dataclass
class _BinaryRequest(OutgoingRequest):
    content: bytes | None = None

    def build(self) -> httpx.Request:
        if self.content is None:
            return super().build()
        return httpx.Request(self.method, self.url, params=self.params or None, headers=dict(self.headers),
                             content=self.content)


class MeshSession(ConnectorSession):
    """:class:`ConnectorSession` for the ``mesh`` manifest: inbox reads, acknowledgements and sends."""

    rejected: list[RejectedMessage]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        use_client_certificate(self, self.secrets, float(kwargs.get("timeout", 30.0)), kwargs.get("transport"))
        self.rejected = []
        self.acknowledged: list[str] = []

    @property
    def mailbox(self) -> str:
        """The mailbox id of this connection."""
        return str(self.config.get("mailbox_id", ""))

    def _mx(self, suffix: str = "") -> str:
        return f"{self.base_url}/messageexchange/{self.mailbox}{suffix}"

    async def handshake(self) -> dict[str, Any]:
        """``GET /messageexchange/{mailbox}``: proves the credentials and the client headers."""
        resp = await self.request(lambda: OutgoingRequest("GET", self._mx()))
        body: dict[str, Any] = resp.json()
        return body

    async def list_inbox(self, page_size: int = 500) -> list[str]:
        """Every message id waiting in the inbox, following ``links.next``."""
        ids: list[str] = []
        url = self._mx("/inbox")
        params: dict[str, str] = {"max_results": str(page_size)}
        while True:
            resp = await self.request(lambda u=url, p=dict(params): OutgoingRequest("GET", u, p))  # type: ignore[misc]
            body = resp.json()
            ids.extend(str(m) for m in body.get("messages") or [])
            nxt = (body.get("links") or {}).get("next")
            if not nxt:
                return ids
            url = nxt if "://" in nxt else self.base_url + nxt
            params = {}

    async def download(self, message_id: str) -> tuple[bytes, dict[str, str]]:
        """The whole message (every chunk, in order) and the first chunk's ``mex-*`` headers."""
        url = self._mx(f"/inbox/{message_id}")
        resp = await self.request(lambda: OutgoingRequest("GET", url))
        headers = {k.lower(): v for k, v in resp.headers.items() if k.lower().startswith("mex-")}
        parts = [resp.content]
        total = 1
        rng = headers.get("mex-chunk-range", "1:1")
        try:
            total = int(rng.split(":")[1])
        except (IndexError, ValueError):
            total = 1
        for n in range(2, total + 1):
            chunk_url = self._mx(f"/inbox/{message_id}/{n}")
            part = await self.request(lambda u=chunk_url: OutgoingRequest("GET", u))  # type: ignore[misc]
            parts.append(part.content)
        return b"".join(parts), headers

    async def acknowledge(self, message_ids: Sequence[str]) -> None:
        """Acknowledge messages (they leave the inbox); an already-gone message is not an error."""
        for mid in message_ids:
            url = self._mx(f"/inbox/{mid}/status/acknowledged")
            try:
                await self.request(lambda u=url: OutgoingRequest("PUT", u))  # type: ignore[misc]
            except VendorError as exc:
                if exc.status != 404:
                    raise
            self.acknowledged.append(mid)

    async def read(self, stream: str, checkpoint: dict[str, Any] | None = None) -> AsyncIterator[ReadPage]:
        """Lab results from the inbox, one page per message; see the module docstring for acknowledgements."""
        spec = self.stream(stream)
        workflows = {w.strip() for w in str(spec.params.get("workflow_ids", "")).split(",") if w.strip()}
        await self.acknowledge(list((checkpoint or {}).get("pending_ack") or []))
        ids = await self.list_inbox()
        self.rejected = []
        pending: list[str] = []
        emitted = False
        for mid in ids:
            body, headers = await self.download(mid)
            if workflows and headers.get("mex-workflowid") not in workflows:
                continue  # someone else's business on a shared mailbox: leave it there
            try:
                reports = [parse_oru(m) for m in split_messages(body)] or [parse_oru(body)]
            except Hl7Error as exc:
                self.rejected.append(RejectedMessage(mid, exc.reason))
                continue
            pending.append(mid)
            records = []
            for report in reports:
                for obs in report.observations:
                    data = {**obs, "meshMessageId": mid, "labControlId": report.control_id,
                            "sendingApplication": report.sending_application, "mexFrom": headers.get("mex-from", "")}
                    updated = _instant(obs.get("issued") or report.sent_at)
                    records.append(SourceRecord(external_id=str(obs["id"]), data=data, updated_at=updated))
            emitted = True
            yield ReadPage(records, {"pending_ack": list(pending)})
        if not emitted:
            yield ReadPage([], {"pending_ack": []})

    async def sample(self, stream: str, n: int = 10) -> list[SourceRecord]:
        """A preview that never acknowledges anything."""
        out: list[SourceRecord] = []
        for mid in (await self.list_inbox())[: max(1, n)]:
            body, _ = await self.download(mid)
            try:
                report = parse_oru(body)
            except Hl7Error:
                continue
            out += [SourceRecord(external_id=str(o["id"]), data={**o, "meshMessageId": mid}) for o in report.observations]
            if len(out) >= n:
                break
        return out[:n]

    async def test_connection(self) -> ConnectionTest:
        """Handshake with the mailbox and count what is waiting."""
        try:
            await self.handshake()
            waiting = len(await self.list_inbox())
        except AuthFailed as exc:
            return ConnectionTest(False, f"MESH refused the mailbox credentials: {exc}")
        except VendorError as exc:
            reason = "the mailbox id, password or shared key is wrong" if exc.status in (401, 403) else exc.vendor_message
            return ConnectionTest(False, f"MESH answered with an error: {reason}", {"status": exc.status})
        except RateLimited as exc:
            return ConnectionTest(False, f"MESH is limiting requests; try again in {int(exc.retry_after)} seconds.")
        except ConnectorError as exc:
            return ConnectionTest(False, f"Could not reach MESH: {exc}")
        return ConnectionTest(True, f"Connected to MESH mailbox {self.mailbox}: {waiting} message(s) waiting.",
                              {"waiting": waiting})

    async def track_local_id(self, local_id: str) -> dict[str, Any] | None:
        """Outbox tracking by our local id (None when nothing was sent with it)."""
        url = self._mx("/outbox/tracking")
        try:
            resp = await self.request(lambda: OutgoingRequest("GET", url, {"localId": local_id}))
        except VendorError as exc:
            if exc.status == 404:
                return None
            raise
        found: dict[str, Any] = resp.json()
        return found

    async def write(self, stream: str, records: Sequence[OutboundRecord]) -> list[WriteOutcome]:
        """Send each record as one MESH message (``payload``: to, workflow_id, content, filename, subject)."""
        spec = self.stream(stream)
        if spec.write is None:
            raise ConnectorError(f"{self.manifest.id}.{stream} is read-only")
        outcomes: list[WriteOutcome] = []
        for rec in records:
            p = rec.payload
            try:
                existing = await self.track_local_id(rec.idempotency_key)
                if existing is not None:
                    outcomes.append(WriteOutcome(rec.idempotency_key, True, external_id=str(existing["message_id"]),
                                                 data={"duplicate": True, **existing}))
                    continue
                content = p.get("content", "")
                raw = base64.b64decode(str(p["content_base64"])) if p.get("content_base64") else str(content).encode()
                headers = {"mex-from": self.mailbox, "mex-to": str(p.get("to", "")),
                           "mex-workflowid": str(p.get("workflow_id", spec.params.get("send_workflow_id", ""))),
                           "mex-localid": rec.idempotency_key, "mex-filename": str(p.get("filename", "")),
                           "mex-subject": str(p.get("subject", "")), "Content-Type": "application/octet-stream"}
                url = self._mx("/outbox")
                resp = await self.request(lambda h=headers, u=url, c=raw: _BinaryRequest(  # type: ignore[misc]
                    "POST", u, {}, dict(h), content=c))
                mid = str(resp.json().get("message_id"))
                outcomes.append(WriteOutcome(rec.idempotency_key, True, external_id=mid, data={"message_id": mid}))
            except AuthFailed:
                raise
            except (VendorError, RateLimited, ConnectorError) as exc:
                code = exc.code if isinstance(exc, VendorError) else type(exc).__name__
                msg = exc.vendor_message if isinstance(exc, VendorError) else str(exc)
                outcomes.append(WriteOutcome(rec.idempotency_key, False, error_code=code, error_message=msg,
                                             retryable=exc.retryable))
        return outcomes


def _instant(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
