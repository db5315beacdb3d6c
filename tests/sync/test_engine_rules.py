"""Pure rules of the sync engine: modes and ownership, conflict decisions, echo suppression, valves,
full-jitter backoff, the circuit breaker and schedules. No database, Redis or network."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.sync.keys import content_hash, idempotency_key
from engine.sync.ownership import (
    EXTERNAL,
    WCN,
    Action,
    Direction,
    LocalState,
    Strategy,
    decide_inbound,
    decide_outbound,
    default_ownership,
    effective_ownership,
)
from engine.sync.resilience import BreakerState, CircuitBreaker, RetryPolicy, full_jitter
from engine.sync.schedule import ScheduleError, is_due, next_run_at
from engine.sync.valves import change_limit, empty_read, mass_change

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("mode", "primary", "direction"), [
    ("full_writecarenotes", WCN, Direction.OUTBOUND),
    ("hybrid_writecarenotes_primary", WCN, Direction.BIDIRECTIONAL),
    ("hybrid_equal", EXTERNAL, Direction.BIDIRECTIONAL),
    ("hybrid_external_primary", EXTERNAL, Direction.BIDIRECTIONAL),
    ("external_primary", EXTERNAL, Direction.INBOUND),
])
def test_modes_set_default_ownership(mode, primary, direction):
    rule = default_ownership(mode)
    assert rule.primary_system == primary and rule.direction == direction


def test_data_ownership_overrides_mode_defaults():
    rule = effective_ownership("external_primary", {"primary_system": WCN, "sync_direction": "bidirectional",
                                                    "update_permissions": [WCN], "conflict_resolution": "manual_review",
                                                    "field_owners": {"email": EXTERNAL}, "delete_policy": "tombstone"})
    assert rule.primary_system == WCN and rule.writes and rule.reads
    assert rule.update_permissions == {WCN} and rule.strategy == Strategy.MANUAL_REVIEW
    assert rule.delete_policy.value == "tombstone"
    assert effective_ownership("hybrid_equal", None, "inbound").direction == Direction.INBOUND


def _local(values, synced_values, at=T0):
    return LocalState(values, content_hash(values), content_hash(synced_values), at)


def test_no_conflict_vendor_change_applies():
    base = {"name": "A"}
    rule = default_ownership("hybrid_external_primary")
    d = decide_inbound(rule, {"name": "B"}, content_hash({"name": "B"}), T0, _local(base, base))
    assert d.action == Action.UPDATE and not d.conflict


def test_inbound_refused_without_permission_and_outbound_only_direction():
    base = {"name": "A"}
    rule = effective_ownership("external_primary", {"update_permissions": [WCN]})
    d = decide_inbound(rule, {"name": "B"}, content_hash({"name": "B"}), T0, _local(base, base))
    assert d.action == Action.SKIP and "refused" in d.reason
    rule = default_ownership("full_writecarenotes")
    assert decide_inbound(rule, {"name": "B"}, "h", T0, None).action == Action.SKIP


@pytest.mark.parametrize(("strategy", "primary", "incoming_at", "expected"), [
    ("primary_wins", EXTERNAL, T0, Action.UPDATE),
    ("primary_wins", WCN, T0, Action.SKIP),
    ("last_write_wins", EXTERNAL, T0 + timedelta(minutes=1), Action.UPDATE),
    ("last_write_wins", EXTERNAL, T0 - timedelta(minutes=1), Action.SKIP),
    ("manual_review", EXTERNAL, T0, Action.REVIEW),
])
def test_conflict_strategies(strategy, primary, incoming_at, expected):
    synced = {"name": "A", "email": "a@x"}
    local = {"name": "Local", "email": "a@x"}
    incoming = {"name": "Vendor", "email": "a@x"}
    rule = effective_ownership("hybrid_equal", {"primary_system": primary, "conflict_resolution": strategy,
                                                "update_permissions": [WCN, EXTERNAL]})
    d = decide_inbound(rule, incoming, content_hash(incoming), incoming_at, _local(local, synced))
    assert d.action == expected and d.conflict


def test_field_level_merges_by_owner():
    synced = {"name": "A", "email": "a@x"}
    local = {"name": "Local", "email": "a@x"}
    incoming = {"name": "Vendor", "email": "vendor@x"}
    rule = effective_ownership("hybrid_equal", {"conflict_resolution": "field_level", "primary_system": EXTERNAL,
                                                "field_owners": {"name": WCN}, "update_permissions": [WCN, EXTERNAL]})
    d = decide_inbound(rule, incoming, content_hash(incoming), T0, _local(local, synced), hasher=content_hash)
    assert d.action == Action.UPDATE and d.values == {"name": "Local", "email": "vendor@x"}


def test_echo_is_suppressed_both_ways():
    rule = default_ownership("hybrid_equal")
    v = {"name": "A"}
    # Inbound: the vendor still shows what we last agreed -> no vendor change.
    local = LocalState({"name": "B"}, content_hash({"name": "B"}), content_hash(v), T0)
    assert decide_inbound(rule, v, content_hash(v), T0, local).action == Action.UNCHANGED
    # Outbound: a record last written by this integration is never sent back to it.
    d = decide_outbound(rule, linked=True, content_hash="h2", synced_hash="h1", last_writer_integration="i1",
                        integration_id="i1")
    assert not d.send and "echo" in d.reason
    d = decide_outbound(rule, linked=True, content_hash="h2", synced_hash="h1", last_writer_integration="",
                        integration_id="i1")
    assert d.send


@settings(max_examples=200, deadline=None)
@given(st.permutations([1, 2, 3, 4, 5, 6]))
def test_out_of_order_vendor_events_never_overwrite_newer(order):
    """REL-8 on the rule: applying events in any order under last-write-wins ends at the newest one."""
    rule = effective_ownership("hybrid_equal", {"conflict_resolution": "last_write_wins",
                                                "update_permissions": [WCN, EXTERNAL]})
    state: LocalState | None = None
    for n in order:
        values = {"v": n}
        at = T0 + timedelta(minutes=n)
        if state is None:
            state = LocalState(values, content_hash(values), content_hash(values), at)
            continue
        # Every event conflicts with the stored state (treat stored state as a local change).
        local = LocalState(state.values, state.content_hash, "other", state.updated_at)
        d = decide_inbound(rule, values, content_hash(values), at, local)
        if d.action == Action.UPDATE:
            state = LocalState(values, content_hash(values), content_hash(values), at)
    assert state is not None and state.values == {"v": 6}


def test_valves():
    assert empty_read(0, [120, 118, 130]) is not None
    assert empty_read(0, [2, 3]) is None and empty_read(5, [120]) is None and empty_read(0, []) is None
    assert empty_read(0, [120], enabled=False) is None
    assert change_limit(100, 0.5) == 50 and change_limit(5, 0.5) is None
    assert mass_change(51, 100, 0.5) is not None and mass_change(50, 100, 0.5) is None
    assert mass_change(40, 50, 0.5, kind="mass_delete").kind == "mass_delete"


def test_full_jitter_spreads_a_thundering_herd():
    """RATE-6: 200 failing jobs retry with full jitter; the busiest 1 s bucket holds <= 25%."""
    rng = random.Random(7)
    arrivals = [full_jitter(4, base=1.0, cap=60.0, rng=rng) for _ in range(200)]
    assert all(0 <= a <= 8 for a in arrivals)
    busiest = Counter(int(a) for a in arrivals).most_common(1)[0][1]
    assert busiest <= 50
    policy = RetryPolicy(base_seconds=1, cap_seconds=60)
    assert policy.delay(3, retry_after=12.5) == 12.5  # Retry-After wins over the backoff
    assert RetryPolicy.from_config({"maxAttempts": 3, "cap_seconds": 5}).max_attempts == 3


def test_circuit_breaker_state_machine():
    b = CircuitBreaker(threshold=5, reset_seconds=60)
    for i in range(4):
        b.failure(float(i))
        assert b.allow(float(i)) and b.state == BreakerState.CLOSED
    b.failure(4.0)
    assert b.state == BreakerState.OPEN and not b.allow(10.0) and b.retry_in(10.0) == pytest.approx(54.0)
    assert b.allow(64.0) and b.state == BreakerState.HALF_OPEN  # one probe after the reset time
    assert not b.allow(64.5)  # only one probe at a time
    b.failure(65.0)
    assert b.state == BreakerState.OPEN and not b.allow(100.0)
    assert b.allow(125.0)
    b.success()
    assert b.state == BreakerState.CLOSED and b.failures == 0
    restored = CircuitBreaker.from_dict(b.to_dict())
    assert restored.state == BreakerState.CLOSED


def test_schedules():
    assert next_run_at({"kind": "manual"}, T0) is None
    assert next_run_at({"kind": "minutes", "every": 15}, T0 + timedelta(minutes=1)) == T0 + timedelta(minutes=15)
    assert next_run_at({"kind": "hourly", "minute": 5}, T0) == T0.replace(minute=5)
    assert next_run_at({"kind": "hourly", "minute": 5}, T0.replace(minute=6)) == T0.replace(hour=13, minute=5)
    assert next_run_at({"kind": "daily", "at": "02:30"}, T0) == datetime(2026, 3, 2, 2, 30, tzinfo=UTC)
    assert next_run_at({"kind": "daily", "at": "02:30", "timezone": "Europe/London"},
                       datetime(2026, 7, 1, 12, tzinfo=UTC)) == datetime(2026, 7, 2, 1, 30, tzinfo=UTC)
    assert next_run_at({"kind": "cron", "expression": "*/10 * * * *"}, T0 + timedelta(minutes=1)) == \
        T0 + timedelta(minutes=10)
    with pytest.raises(ScheduleError):
        next_run_at({"kind": "cron", "expression": "not cron"}, T0)
    with pytest.raises(ScheduleError):
        next_run_at({"kind": "fortnightly"}, T0)
    assert is_due({"kind": "minutes", "every": 5}, None, T0)
    assert not is_due({"kind": "minutes", "every": 5}, T0 + timedelta(minutes=1), T0)
    assert not is_due({"kind": "manual"}, None, T0)


def test_keys_are_deterministic():
    assert idempotency_key("i", "r", 3) == idempotency_key("i", "r", 3) != idempotency_key("i", "r", 4)
    assert len(idempotency_key("i", "r", 3)) <= 50
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
