"""Backoff with full jitter, a circuit breaker state machine and the run-level retry plan."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


def full_jitter(attempt: int, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): uniform(0, min(cap, base * 2**(attempt-1)))."""
    r = rng or random
    return r.uniform(0.0, min(cap, base * (2 ** max(0, attempt - 1))))


@dataclass(frozen=True)
class RetryPolicy:
    """Run-level retry policy (from ``SyncConfiguration.retry_policy``)."""

    max_attempts: int = 12
    base_seconds: float = 1.0
    cap_seconds: float = 60.0
    call_deadline_seconds: float = 120.0
    defer_over_seconds: float = 15.0  # a wait longer than this reschedules the job instead of sleeping
    budget_seconds: float = 24 * 3600.0

    @classmethod
    def from_config(cls, raw: Mapping[str, Any] | None) -> RetryPolicy:
        """Build from a stored dict, ignoring unknown keys (camelCase or snake_case)."""
        raw = raw or {}
        names = {
            "max_attempts": ("max_attempts", "maxAttempts", "maxRetries", "max_retries"),
            "base_seconds": ("base_seconds", "baseSeconds", "initialDelaySeconds"),
            "cap_seconds": ("cap_seconds", "capSeconds", "maxDelaySeconds"),
            "call_deadline_seconds": ("call_deadline_seconds", "callDeadlineSeconds", "timeoutSeconds"),
            "defer_over_seconds": ("defer_over_seconds", "deferOverSeconds"),
            "budget_seconds": ("budget_seconds", "budgetSeconds"),
        }
        values: dict[str, Any] = {}
        for attr, keys in names.items():
            for k in keys:
                if k in raw and raw[k] is not None:
                    values[attr] = type(getattr(cls(), attr))(raw[k])
                    break
        return cls(**values)

    def delay(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """The wait before the next attempt: ``Retry-After`` when the vendor gave one, else full jitter."""
        if retry_after is not None:
            return max(0.0, retry_after)
        return full_jitter(attempt, self.base_seconds, self.cap_seconds, rng)


class BreakerState(StrEnum):
    """Circuit breaker states."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Per (vendor, tenant) breaker: opens after ``threshold`` consecutive failures, lets one probe
    through after ``reset_seconds``, closes on its success and reopens on its failure.

    Pure: the caller passes the clock and persists :meth:`to_dict` (shared through Redis).
    """

    threshold: int = 5
    reset_seconds: float = 60.0
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probe_at: float = 0.0

    def allow(self, now: float) -> bool:
        """May a call go out now? In half-open, only one probe is allowed until it reports."""
        if self.state == BreakerState.CLOSED:
            return True
        if self.state == BreakerState.OPEN:
            if now - self.opened_at >= self.reset_seconds:
                self.state = BreakerState.HALF_OPEN
                self.probe_at = now
                return True
            return False
        # half-open: one probe at a time; a probe that never reported frees the slot after reset_seconds
        if now - self.probe_at >= self.reset_seconds:
            self.probe_at = now
            return True
        return False

    def retry_in(self, now: float) -> float:
        """Seconds until the breaker lets a call through (0 when closed)."""
        if self.state == BreakerState.CLOSED:
            return 0.0
        start = self.opened_at if self.state == BreakerState.OPEN else self.probe_at
        return max(0.0, start + self.reset_seconds - now)

    def success(self) -> None:
        """A call succeeded: close."""
        self.state = BreakerState.CLOSED
        self.failures = 0

    def failure(self, now: float) -> None:
        """A call failed (after the connector's own retries)."""
        if self.state == BreakerState.HALF_OPEN:
            self.state, self.opened_at = BreakerState.OPEN, now
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self.state, self.opened_at = BreakerState.OPEN, now

    def to_dict(self) -> dict[str, Any]:
        """Serialisable state."""
        d = asdict(self)
        d["state"] = self.state.value
        return d

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, threshold: int = 5, reset_seconds: float = 60.0) -> CircuitBreaker:
        """Restore from :meth:`to_dict` output (missing: a fresh closed breaker)."""
        if not raw:
            return cls(threshold=threshold, reset_seconds=reset_seconds)
        return cls(threshold=threshold, reset_seconds=reset_seconds, state=BreakerState(str(raw.get("state", "closed"))),
                   failures=int(raw.get("failures", 0)), opened_at=float(raw.get("opened_at", 0.0)),
                   probe_at=float(raw.get("probe_at", 0.0)))
