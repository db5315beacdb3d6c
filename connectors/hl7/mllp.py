"""MLLP (Minimal Lower Layer Protocol) over asyncio: a listener that ACKs or NAKs, and a sender.

A frame is ``<VT> message <FS><CR>`` (0x0B ... 0x1C 0x0D). The listener reads frames, parses each as an
ORU^R01 and hands the :class:`~connectors.hl7.oru.LabReport` to a handler. The lab gets:

* ``AA`` once the handler returned (the results are stored: the lab may forget them);
* ``AR`` when the message cannot be parsed or is not a result message (resending will not help);
* ``AE`` when the handler failed (e.g. the store is down): the lab should send it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from connectors.hl7.oru import Hl7Error, LabReport, build_ack, parse_oru

log = logging.getLogger(__name__)

START = b"\x0b"
END = b"\x1c\r"
MAX_FRAME = 4 * 1024 * 1024

Handler = Callable[[LabReport, str], Awaitable[None]]


def frame(message: str | bytes) -> bytes:
    """Wrap one HL7 message in an MLLP block."""
    data = message.encode("utf-8") if isinstance(message, str) else message
    return START + data + END


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next MLLP block's payload; None at a clean end of stream. Bytes before ``<VT>`` are dropped."""
    try:
        chunk = await reader.readuntil(END)
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise ValueError("connection closed in the middle of an MLLP block") from None
        return None
    except asyncio.LimitOverrunError:
        raise ValueError(f"MLLP block larger than {MAX_FRAME} bytes") from None
    start = chunk.find(START)
    if start < 0:
        raise ValueError("MLLP block without a start byte (0x0B)")
    return chunk[start + 1:-len(END)]


@dataclass
class ListenerStats:
    """What the listener has done (for the health page and tests)."""

    accepted: int = 0
    rejected: int = 0
    errored: int = 0
    connections: int = 0
    last_error: str = ""
    control_ids: list[str] = field(default_factory=list)


class MllpListener:
    """An asyncio MLLP server: ``await listener.start()``, then ``listener.port``; ``await listener.stop()``."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.stats = ListenerStats()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind and listen (port 0 picks a free port, read back from ``self.port``)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_FRAME)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting and close the server."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> MllpListener:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def handle(self, payload: bytes) -> str:
        """Process one message; return the ACK to send back."""
        text = payload.decode("utf-8", errors="replace")
        try:
            report = parse_oru(text)
        except Hl7Error as exc:
            self.stats.rejected += 1
            self.stats.last_error = exc.reason
            return build_ack(text, "AR", str(exc), control_id=exc.control_id or "")
        try:
            await self.handler(report, text)
        except Exception as exc:
            self.stats.errored += 1
            self.stats.last_error = repr(exc)
            log.warning("HL7 handler failed for %s: %r", report.control_id, exc)
            return build_ack(text, "AE", "could not store the results; please resend")
        self.stats.accepted += 1
        self.stats.control_ids.append(report.control_id)
        return build_ack(text, "AA")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            while True:
                try:
                    payload = await read_frame(reader)
                except ValueError as exc:
                    writer.write(frame(build_ack("", "AR", str(exc))))
                    await writer.drain()
                    return
                if payload is None:
                    return
                ack = await self.handle(payload)
                writer.write(frame(ack))
                await writer.drain()
        except ConnectionError:
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def send_message(host: str, port: int, message: str, *, timeout: float = 10.0) -> str:
    """Send one message over MLLP and return the ACK's text (a lab-side sender, and our test client)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=MAX_FRAME), timeout)
    try:
        writer.write(frame(message))
        await writer.drain()
        payload = await asyncio.wait_for(read_frame(reader), timeout)
        if payload is None:
            raise ConnectionError("the listener closed the connection without an ACK")
        return payload.decode("utf-8", errors="replace")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def ack_code(ack: str) -> str:
    """MSA-1 of an ACK (``AA``, ``AE``, ``AR``), or '' if there is no MSA segment."""
    for seg in ack.replace("\n", "\r").split("\r"):
        if seg.startswith("MSA|"):
            parts = seg.split("|")
            return parts[1] if len(parts) > 1 else ""
    return ""
