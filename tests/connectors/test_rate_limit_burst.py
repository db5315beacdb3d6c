"""A manifest's ``burst`` sizes the token bucket: that many calls go back to back, then the steady rate."""

from __future__ import annotations

import os
import time
import uuid

import pytest
import redis.asyncio as aioredis

from connectors.manifest import RateLimits
from connectors.ratelimit import RateLimiter


async def immediate_calls(limiter: RateLimiter, attempts: int) -> int:
    """How many of ``attempts`` calls are granted within 0.2 s from a full bucket."""
    t0 = time.monotonic()
    granted = 0
    for _ in range(attempts):
        await limiter.take()
        if time.monotonic() - t0 > 0.2:
            break
        granted += 1
    return granted


@pytest.mark.parametrize("shared", [False, True])
async def test_burst_field_sizes_the_bucket(shared: bool) -> None:
    client = aioredis.Redis.from_url(os.environ.get("CAREHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379")) \
        if shared else None
    tenant = uuid.uuid4().hex
    try:
        # 600 a minute is 10 a second: without a burst, ten seconds' worth (100) may go at once.
        default = RateLimiter("burst_test", tenant + "a", RateLimits(per_minute=600), redis=client)
        assert default.capacity == 100
        tight = RateLimiter("burst_test", tenant + "b", RateLimits(per_minute=600, burst=3), redis=client)
        assert tight.capacity == 3
        # Three at once, then one every 0.1 s: within 0.2 s at most 3 + 2 calls.
        assert 3 <= await immediate_calls(tight, 20) <= 5
        assert await immediate_calls(default, 20) == 20
    finally:
        if client is not None:
            await client.aclose()


def test_burst_must_be_positive() -> None:
    with pytest.raises(ValueError, match="burst"):
        RateLimits(per_minute=60, burst=0)
