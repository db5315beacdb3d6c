"""Token buckets per (connector, tenant), shared by every worker through Redis, with an in-process fallback.

The Redis side is two Lua scripts, so a take is atomic across processes and hosts and uses the Redis
server's clock (no skew between workers):

* ``TAKE``: refill a bucket at ``rate`` tokens/s up to ``capacity``, take one or say how long to wait;
  also counts the per-day budget (``-1`` when it is spent).
* ``LEASE``: a concurrency slot as a member of a sorted set scored by its expiry, so a crashed worker's
  slot frees itself.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from connectors.errors import RateLimited
from connectors.manifest import RateLimits

TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local day_limit = tonumber(ARGV[3])
if day_limit > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used >= day_limit then
    return -1
  end
end
if rate > 0 then
  local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
  local tokens = tonumber(b[1]) or capacity
  local ts = tonumber(b[2]) or now
  tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
  if tokens < 1 then
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
    redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
    return math.ceil((1 - tokens) / rate * 1000)
  end
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
end
if day_limit > 0 then
  local n = redis.call('INCR', KEYS[2])
  if n == 1 then redis.call('EXPIRE', KEYS[2], 86400) end
end
return 0
"""

LEASE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]) + 60)
  return 1
end
return 0
"""


def _bucket_shape(limits: RateLimits) -> tuple[float, float]:
    """Tokens per second and burst capacity from the declared limits (the tighter one wins)."""
    rates: list[tuple[float, float]] = []
    if limits.per_second:
        rates.append((limits.per_second, max(1.0, limits.per_second)))
    if limits.per_minute:
        rates.append((limits.per_minute / 60.0, max(1.0, limits.per_minute / 6.0)))
    if not rates:
        return 0.0, 0.0
    rate, burst = min(rates, key=lambda r: r[0])
    return rate, float(limits.burst) if limits.burst else burst


@dataclass
class _LocalState:
    tokens: float
    ts: float
    day_count: int = 0
    day_start: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    concurrency: asyncio.Semaphore | None = None


# Per event loop: asyncio locks and semaphores belong to the loop that made them, and a slot left
# taken by a task cancelled on a finished loop must not starve sessions on a new one.
_LOCAL: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _LocalState]] = weakref.WeakKeyDictionary()


class RateLimiter:
    """Plans calls to one vendor tenant: per-second/minute bucket, per-day budget, concurrent slots.

    With ``redis`` (a ``redis.asyncio.Redis``) the state is shared by every process; without it, by every
    session in this process.
    """

    def __init__(self, connector: str, tenant: str, limits: RateLimits, *, redis: Any = None,
                 prefix: str = "carehub:rl", lease_seconds: float = 120.0) -> None:
        self.key = f"{prefix}:{connector}:{tenant}"
        self.limits = limits
        self.redis = redis
        self.rate, self.capacity = _bucket_shape(limits)
        self.lease_seconds = lease_seconds
        self._take: Any = None
        self._lease: Any = None
        if redis is not None:
            self._take = redis.register_script(TAKE_LUA)
            self._lease = redis.register_script(LEASE_LUA)

    @property
    def enabled(self) -> bool:
        """Whether any limit is declared."""
        return bool(self.rate or self.limits.per_day or self.limits.concurrent)

    async def take(self) -> None:
        """Wait for one token; raise :class:`RateLimited` when the day's budget is spent."""
        while True:
            wait = await (self._take_redis() if self.redis is not None else self._take_local())
            if wait < 0:
                raise RateLimited(3600.0, "daily request budget spent", problem="day")
            if wait == 0:
                return
            await asyncio.sleep(wait)

    async def _take_redis(self) -> float:
        day_limit = self.limits.per_day or 0
        ms = int(await self._take(keys=[f"{self.key}:bucket", f"{self.key}:day"],
                                  args=[self.rate, self.capacity, day_limit]))
        return -1.0 if ms < 0 else ms / 1000.0

    def _local(self) -> _LocalState:
        states = _LOCAL.setdefault(asyncio.get_running_loop(), {})
        state = states.get(self.key)
        if state is None:
            state = _LocalState(tokens=self.capacity, ts=time.monotonic())
            if self.limits.concurrent:
                state.concurrency = asyncio.Semaphore(self.limits.concurrent)
            states[self.key] = state
        return state

    async def _take_local(self) -> float:
        state = self._local()
        async with state.lock:
            now = time.monotonic()
            if self.limits.per_day:
                if now - state.day_start >= 86400:
                    state.day_start, state.day_count = now, 0
                if state.day_count >= self.limits.per_day:
                    return -1.0
            if self.rate:
                state.tokens = min(self.capacity, state.tokens + (now - state.ts) * self.rate)
                state.ts = now
                if state.tokens < 1:
                    return (1 - state.tokens) / self.rate
                state.tokens -= 1
            state.day_count += 1
            return 0.0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the tenant's concurrent-request slots (if a limit is declared) and one token."""
        await self.take()
        if not self.limits.concurrent:
            yield
            return
        if self.redis is None:
            sem = self._local().concurrency
            assert sem is not None
            async with sem:
                yield
            return
        lease = uuid.uuid4().hex
        while not int(await self._lease(keys=[f"{self.key}:conc"],
                                        args=[self.limits.concurrent, self.lease_seconds, lease])):
            await asyncio.sleep(0.05)
        try:
            yield
        finally:
            await self.redis.zrem(f"{self.key}:conc", lease)
