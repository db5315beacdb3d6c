"""Ports the sync runner talks through: the care store, the mapper, run reporting, breaker state
and error classification. ``storage`` and ``app`` provide the implementations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import orjson

from engine.ports import WriteOutcome
from engine.sync.ownership import OwnershipRule
from engine.sync.resilience import CircuitBreaker


@dataclass(frozen=True)
class MappedItem:
    """One source record after mapping: values to store, or why it was skipped or failed.

    ``values_json`` is the canonical JSON the content hash was taken of. An item pickled to another process
    (the store writer) travels as that text alone, and a new record is stored from it unparsed; read the
    values through :meth:`data`.
    """

    external_id: str
    values: dict[str, Any] | None
    content_hash: str = ""
    source_updated_at: datetime | None = None
    deleted: bool = False
    error: str | None = None
    skipped_reason: str | None = None
    values_json: bytes | None = None

    def data(self) -> dict[str, Any] | None:
        """The mapped values, decoded from ``values_json`` when they travelled without the dict."""
        if self.values is None and self.values_json is not None:
            decoded: dict[str, Any] = orjson.loads(self.values_json)
            return decoded
        return self.values

    def __reduce__(self) -> tuple[Any, ...]:
        # One bytes object pickles and unpickles many times faster than the nested dict it encodes.
        values = None if self.values_json is not None else self.values
        return (MappedItem, (self.external_id, values, self.content_hash, self.source_updated_at, self.deleted,
                             self.error, self.skipped_reason, self.values_json))


@dataclass
class Counts:
    """Per-run record counts (also per page); ``add`` sums them."""

    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int = 0
    conflicts: int = 0
    written: int = 0

    def add(self, other: Counts) -> None:
        """Add ``other`` into this one."""
        for k, v in other.as_dict().items():
            setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, int]:
        """Plain dict for JSON columns."""
        return dict(self.__dict__)

    @property
    def changes(self) -> int:
        """Updates plus deletes (what the change-share valve counts)."""
        return self.updated + self.deleted


@dataclass
class PageResult:
    """What the store did with one inbound page (nothing at all when ``tripped``)."""

    counts: Counts = field(default_factory=Counts)
    tripped: bool = False
    would_change: int = 0


@dataclass(frozen=True)
class OutboundCandidate:
    """A care record version that may go to the vendor."""

    record_id: str
    version: int
    values: dict[str, Any]
    content_hash: str
    external_id: str | None
    synced_hash: str | None
    last_writer_integration: str
    idempotency_key: str
    updated_at: datetime | None = None
    in_review: bool = False
    deleted: bool = False
    vendor_deleted: bool = False  # the vendor record is already deleted (by us or at the vendor)


@dataclass(frozen=True)
class OutboundBatch:
    """Candidates plus the checkpoint that is safe once they are all settled."""

    candidates: Sequence[OutboundCandidate]
    checkpoint: dict[str, Any] | None
    exhausted: bool


class SyncStore(Protocol):
    """The care record store as the runner needs it (one integration, one run)."""

    async def load_checkpoint(self, stream: str, direction: str) -> dict[str, Any] | None: ...

    async def population(self, stream: str) -> int: ...

    async def previous_full_reads(self, stream: str) -> list[int]: ...

    async def apply_inbound(self, stream: str, care_type: str, rule: OwnershipRule, items: Sequence[MappedItem],
                            checkpoint: dict[str, Any] | None, change_budget: int | None) -> PageResult: ...

    async def unseen_links(self, stream: str) -> list[str]: ...

    async def apply_deletes(self, stream: str, rule: OwnershipRule, external_ids: Sequence[str]) -> Counts: ...

    async def save_checkpoint(self, stream: str, direction: str, value: dict[str, Any] | None) -> None: ...

    async def outbound_batch(self, stream: str, care_type: str, checkpoint: dict[str, Any] | None,
                             limit: int) -> OutboundBatch: ...

    async def failed_outbound(self, stream: str, care_type: str, limit: int,
                              record_ids: Sequence[str] | None = None) -> OutboundBatch: ...

    async def mark_pending(self, stream: str, candidates: Sequence[OutboundCandidate]) -> None: ...

    async def commit_outbound(self, stream: str, care_type: str,
                              results: Sequence[tuple[OutboundCandidate, WriteOutcome]],
                              skipped: Sequence[tuple[OutboundCandidate, str]],
                              checkpoint: dict[str, Any] | None,
                              vendor_hashes: Mapping[str, str] | None = None) -> Counts: ...

    async def stream_reads(self, stream: str) -> int: ...


class Mapper(Protocol):
    """A compiled mapping design: ``apply`` (source -> care values) and ``reverse``."""

    def apply(self, record: dict[str, Any]) -> Any: ...

    def reverse(self, values: dict[str, Any]) -> dict[str, Any]: ...


class Reporter(Protocol):
    """Where run events go (the run's timeline)."""

    async def event(self, kind: str, message: str = "", data: Mapping[str, Any] | None = None) -> None: ...


class BreakerStore(Protocol):
    """Shared circuit breaker state per (vendor, tenant)."""

    async def load(self) -> CircuitBreaker: ...

    async def save(self, breaker: CircuitBreaker) -> None: ...


class FailureKind(StrEnum):
    """How the runner treats an exception from a connector call."""

    TRANSIENT = "transient"  # network, 5xx: back off and retry
    THROTTLED = "throttled"  # rate limited: wait Retry-After
    AUTH = "auth"  # credentials revoked or refresh failed: stop, ask to reconnect
    FATAL = "fatal"  # anything else: fail the run


@dataclass(frozen=True)
class Failure:
    """A classified connector failure."""

    kind: FailureKind
    message: str
    retry_after: float | None = None
    status: int | None = None


class Classifier(Protocol):
    """Turns a connector exception into a :class:`Failure`."""

    def __call__(self, exc: BaseException) -> Failure: ...
