"""The sync engine's pure core: ownership and conflict rules, echo suppression, safety valves,
backoff, the circuit breaker, schedules, and the inbound/outbound orchestration over ports."""
