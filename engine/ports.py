"""Small Protocols ("ports") that connectors and storage satisfy for the engine.

The engine never imports httpx, SQL or Redis. The sync orchestration talks to a
vendor through :class:`StreamReader` / :class:`StreamWriter` and to the care
record store through the storage side's repository objects; ``app`` wires the
concrete implementations together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record as read from a vendor stream, before mapping."""

    external_id: str
    data: JSON
    updated_at: datetime | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class ReadPage:
    """A page of records plus the checkpoint that is safe to commit once they are stored.

    ``checkpoint`` is opaque to the engine (a cursor, an ``updated_since`` timestamp,
    a page token); it is handed back to :meth:`StreamReader.read` to resume.
    """

    records: Sequence[SourceRecord]
    checkpoint: JSON | None = None


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """A payload to create or update at the vendor, with a deterministic idempotency key."""

    idempotency_key: str
    payload: JSON
    external_id: str | None = None  # None: create; otherwise update that vendor record
    delete: bool = False  # delete (or archive, per the connector) the vendor record ``external_id``


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """Per-element result of a write; a batch reply may mix successes and failures."""

    idempotency_key: str
    ok: bool
    external_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool = False
    data: JSON = field(default_factory=dict)


@runtime_checkable
class StreamReader(Protocol):
    """Reads one vendor stream incrementally, page by page, from a checkpoint."""

    def read(self, stream: str, checkpoint: JSON | None = None) -> AsyncIterator[ReadPage]: ...


@runtime_checkable
class StreamWriter(Protocol):
    """Writes records to a vendor stream, honouring the vendor's idempotency mechanism."""

    async def write(self, stream: str, records: Sequence[OutboundRecord]) -> list[WriteOutcome]: ...


@runtime_checkable
class TokenStore(Protocol):
    """Persists OAuth tokens of a connection; ``save`` must be atomic (rotating refresh tokens)."""

    async def load(self, connection_id: str) -> Mapping[str, Any] | None: ...

    async def save(self, connection_id: str, tokens: Mapping[str, Any]) -> None: ...
