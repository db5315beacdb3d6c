"""Operation modes, default ownership per mode, and the inbound/outbound decisions that follow from it.

Systems are named ``"writecarenotes"`` (the hub's care record store) and ``"external"`` (the vendor).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

WCN = "writecarenotes"
EXTERNAL = "external"


class Mode(StrEnum):
    """The spec's hybrid operation modes (values equal ``storage.models.OperationMode``)."""

    FULL_WRITECARENOTES = "full_writecarenotes"
    HYBRID_EQUAL = "hybrid_equal"
    HYBRID_WRITECARENOTES_PRIMARY = "hybrid_writecarenotes_primary"
    HYBRID_EXTERNAL_PRIMARY = "hybrid_external_primary"
    EXTERNAL_PRIMARY = "external_primary"


class Strategy(StrEnum):
    """Conflict strategies (values equal ``storage.models.ConflictResolution``)."""

    PRIMARY_WINS = "primary_wins"
    LAST_WRITE_WINS = "last_write_wins"
    FIELD_LEVEL = "field_level"
    MANUAL_REVIEW = "manual_review"


class Direction(StrEnum):
    """Which way records of a care type flow."""

    BIDIRECTIONAL = "bidirectional"
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class DeletePolicy(StrEnum):
    """What a vendor-side delete does to the care record."""

    ARCHIVE = "archive"  # keep the data, mark the record archived
    TOMBSTONE = "tombstone"  # clear the current data (history keeps it), mark deleted
    IGNORE = "ignore"  # unlink only; the care record stays as it is


@dataclass(frozen=True)
class OwnershipRule:
    """Who owns one care type for one integration, and how conflicts settle."""

    primary_system: str = EXTERNAL
    direction: Direction = Direction.INBOUND
    update_permissions: frozenset[str] = frozenset({EXTERNAL})
    strategy: Strategy = Strategy.PRIMARY_WINS
    field_owners: Mapping[str, str] = field(default_factory=dict)
    delete_policy: DeletePolicy = DeletePolicy.ARCHIVE

    @property
    def reads(self) -> bool:
        """True when vendor records flow into WriteCareNotes."""
        return self.direction in (Direction.INBOUND, Direction.BIDIRECTIONAL)

    @property
    def writes(self) -> bool:
        """True when WriteCareNotes records flow out to the vendor."""
        return self.direction in (Direction.OUTBOUND, Direction.BIDIRECTIONAL)


_MODE_DEFAULTS: dict[Mode, tuple[str, Direction, frozenset[str], Strategy]] = {
    Mode.FULL_WRITECARENOTES: (WCN, Direction.OUTBOUND, frozenset({WCN}), Strategy.PRIMARY_WINS),
    Mode.HYBRID_WRITECARENOTES_PRIMARY: (WCN, Direction.BIDIRECTIONAL, frozenset({WCN, EXTERNAL}),
                                         Strategy.PRIMARY_WINS),
    Mode.HYBRID_EQUAL: (EXTERNAL, Direction.BIDIRECTIONAL, frozenset({WCN, EXTERNAL}), Strategy.LAST_WRITE_WINS),
    Mode.HYBRID_EXTERNAL_PRIMARY: (EXTERNAL, Direction.BIDIRECTIONAL, frozenset({WCN, EXTERNAL}),
                                   Strategy.PRIMARY_WINS),
    Mode.EXTERNAL_PRIMARY: (EXTERNAL, Direction.INBOUND, frozenset({EXTERNAL}), Strategy.PRIMARY_WINS),
}


def default_ownership(mode: str) -> OwnershipRule:
    """The ownership a care type gets from the integration's operation mode alone."""
    primary, direction, perms, strategy = _MODE_DEFAULTS[Mode(mode)]
    return OwnershipRule(primary_system=primary, direction=direction, update_permissions=perms, strategy=strategy)


def effective_ownership(mode: str, override: Mapping[str, Any] | None = None,
                        direction: str | None = None) -> OwnershipRule:
    """Mode defaults, overridden field by field by a DataOwnership row (as a dict) when there is one.

    ``direction`` (the SyncConfiguration's) narrows the mode's direction when no row overrides it.
    """
    base = default_ownership(mode)
    if override is None:
        if direction is not None and base.direction == Direction.BIDIRECTIONAL:
            return OwnershipRule(base.primary_system, Direction(direction), base.update_permissions, base.strategy)
        return base
    perms = override.get("update_permissions")
    return OwnershipRule(
        primary_system=str(override.get("primary_system") or base.primary_system),
        direction=Direction(override.get("sync_direction") or base.direction),
        update_permissions=frozenset(perms) if perms else base.update_permissions,
        strategy=Strategy(override.get("conflict_resolution") or base.strategy),
        field_owners=dict(override.get("field_owners") or {}),
        delete_policy=DeletePolicy(override.get("delete_policy") or DeletePolicy.ARCHIVE),
    )


class Action(StrEnum):
    """What to do with one incoming change."""

    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    SKIP = "skip"  # refused by direction or permissions, or lost the conflict
    REVIEW = "review"  # manual review: goes to the errors inbox with both versions


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide_inbound`: the values to store (for create/update) and why."""

    action: Action
    values: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    conflict: bool = False


@dataclass(frozen=True)
class LocalState:
    """What the store holds for a linked record, as the rules need it."""

    values: Mapping[str, Any]
    content_hash: str
    synced_hash: str  # the record hash both sides agreed on at the last sync of this link
    updated_at: datetime | None  # source timestamp of the last write
    archived: bool = False
    vendor_hash: str = ""  # hash of the vendor's own (mapped) view at the last sync


def _merge_by_owner(rule: OwnershipRule, local: Mapping[str, Any], incoming: Mapping[str, Any],
                    default_owner: str) -> dict[str, Any]:
    merged = dict(local)
    for key in set(local) | set(incoming):
        owner = rule.field_owners.get(key, default_owner)
        if owner == EXTERNAL:
            if key in incoming:
                merged[key] = incoming[key]
            else:
                merged.pop(key, None)
    return merged


def decide_inbound(rule: OwnershipRule, incoming: Mapping[str, Any], incoming_hash: str,
                   incoming_at: datetime | None, local: LocalState | None,
                   hasher: Any = None) -> Decision:
    """Apply direction, update permissions and the conflict strategy to one incoming record.

    A conflict is a record changed on both sides since their last agreed state (``synced_hash``).
    ``hasher`` hashes merged values (field-level ownership); required for that strategy.
    """
    if not rule.reads:
        return Decision(Action.SKIP, reason=f"direction is {rule.direction.value}: vendor changes are not read")
    if local is None:
        return Decision(Action.CREATE, dict(incoming))
    if incoming_hash == local.content_hash:
        return Decision(Action.UNCHANGED)
    if incoming_hash in (local.synced_hash, local.vendor_hash) and not local.archived:
        # The vendor still holds what we last agreed: the change is ours, not theirs (echo).
        return Decision(Action.UNCHANGED, reason="no vendor change since the last sync")
    if EXTERNAL not in rule.update_permissions:
        return Decision(Action.SKIP, reason="update refused: the external system may not update this data type")
    local_changed = local.content_hash != local.synced_hash
    if rule.strategy == Strategy.FIELD_LEVEL:
        merged = _merge_by_owner(rule, local.values, incoming, rule.primary_system)
        h = hasher(merged) if hasher is not None else None
        if h is not None and h == local.content_hash:
            return Decision(Action.UNCHANGED, reason="only fields owned by WriteCareNotes differ")
        return Decision(Action.UPDATE, merged, reason="field-level ownership", conflict=local_changed)
    if not local_changed:
        return Decision(Action.UPDATE, dict(incoming))
    if rule.strategy == Strategy.PRIMARY_WINS:
        if rule.primary_system == EXTERNAL:
            return Decision(Action.UPDATE, dict(incoming), reason="conflict: external system is primary",
                            conflict=True)
        return Decision(Action.SKIP, reason="conflict: WriteCareNotes is primary", conflict=True)
    if rule.strategy == Strategy.LAST_WRITE_WINS:
        if incoming_at is not None and (local.updated_at is None or incoming_at > local.updated_at):
            return Decision(Action.UPDATE, dict(incoming), reason="conflict: vendor change is newer", conflict=True)
        return Decision(Action.SKIP, reason="conflict: WriteCareNotes change is newer", conflict=True)
    return Decision(Action.REVIEW, dict(incoming), reason="conflict: waiting for manual review", conflict=True)


@dataclass(frozen=True)
class OutboundDecision:
    """Whether a care record goes out, and why not when it does not."""

    send: bool
    reason: str = ""


def decide_outbound(rule: OwnershipRule, *, linked: bool, content_hash: str, synced_hash: str | None,
                    last_writer_integration: str, integration_id: str, local_at: datetime | None = None,
                    vendor_at: datetime | None = None, vendor_changed: bool = False) -> OutboundDecision:
    """Direction, echo suppression, update permissions and conflict strategy for one outgoing record."""
    if not rule.writes:
        return OutboundDecision(False, f"direction is {rule.direction.value}: nothing is written to the vendor")
    if synced_hash is not None and synced_hash == content_hash:
        return OutboundDecision(False, "unchanged since the last sync")
    if last_writer_integration == integration_id:
        return OutboundDecision(False, "echo: this change came from the same system")
    if linked and WCN not in rule.update_permissions:
        return OutboundDecision(False, "update refused: WriteCareNotes may not update this data type at the vendor")
    if linked and vendor_changed:
        if rule.strategy == Strategy.PRIMARY_WINS and rule.primary_system == EXTERNAL:
            return OutboundDecision(False, "conflict: external system is primary")
        if rule.strategy == Strategy.LAST_WRITE_WINS and vendor_at is not None and local_at is not None \
                and vendor_at >= local_at:
            return OutboundDecision(False, "conflict: vendor change is newer")
        if rule.strategy == Strategy.MANUAL_REVIEW:
            return OutboundDecision(False, "conflict: waiting for manual review")
    return OutboundDecision(True)
