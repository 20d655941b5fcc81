"""Client order ids: one order per ``(account, client_order_id)``, even under concurrent duplicates.

The first request claims ``oms:cid:{account}:{client_order_id}`` in Redis with
``SET NX`` and the new order's id as the value; a duplicate finds the key and
answers with the order stored under that id. Replicas share the Redis, so two
copies of a request arriving at two replicas at once still make one order.
The database's unique ``(account, client_order_id)`` is the backstop when the
key is gone (expired or Redis lost).

A claim whose order never appears (the claiming process died before writing
it) is taken over after a grace period with a compare-and-set, so the client
order id does not stay blocked. A request that fails before it wrote its order
gives the key back (compare-and-delete, WATCH/MULTI) so the client can retry.

The claim is on every order's path: over a plain TCP Redis it goes through
:class:`~sandbox.services.kit.resp.RawRedis` as one write of ``SET NX EX``
and ``GET`` (one round trip, a fraction of redis-py's CPU); the rare
take-over and give-back stay on redis-py.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import WatchError

from sandbox.services.kit.resp import RawRedis

KEY = "oms:cid:{account}:{client_order_id}"

def key_for(account: str, client_order_id: str) -> str:
    """The Redis key of a client order id."""
    return KEY.format(account=account, client_order_id=client_order_id)


class IdempotencyKeys:
    """Claims on client order ids, in Redis."""

    def __init__(self, redis: Any, ttl_s: int) -> None:
        """``redis`` is a redis.asyncio client with ``decode_responses=True``."""
        self.redis = redis
        self.ttl_s = ttl_s
        self.raw = RawRedis.for_client(redis)

    async def claim(self, account: str, client_order_id: str, order_id: str) -> str | None:
        """Claim the id for ``order_id``: None when claimed now, else the order id that holds it."""
        key = key_for(account, client_order_id)
        for _ in range(3):
            if self.raw is not None:
                claimed, holder = await self.raw.execute(("SET", key, order_id, "NX", "EX", self.ttl_s), ("GET", key))
                if claimed is not None:
                    return None
                if holder is not None:
                    return str(holder)
                continue  # expired between SET and GET: try again
            if await self.redis.set(key, order_id, nx=True, ex=self.ttl_s):
                return None
            holder = await self.redis.get(key)
            if holder is not None:
                return str(holder)
            # expired between SET and GET: try again
        raise RuntimeError("could not claim the client order id")  # pragma: no cover - three races in a row

    def close(self) -> None:
        """Close the raw connection, if any (redis-py's client is the app's to close)."""
        if self.raw is not None:
            self.raw.close()

    async def take_over(self, account: str, client_order_id: str, stale: str, order_id: str) -> bool:
        """Replace a claim held by ``stale`` (whose order never appeared) with ``order_id``."""
        return await self._compare_and(key_for(account, client_order_id), stale, order_id)

    async def give_back(self, account: str, client_order_id: str, order_id: str) -> bool:
        """Remove the claim if ``order_id`` still holds it (the order was never written)."""
        return await self._compare_and(key_for(account, client_order_id), order_id, None)

    async def _compare_and(self, key: str, expected: str, new: str | None) -> bool:
        """Set (or with ``new`` None delete) ``key`` only while it holds ``expected`` (WATCH/MULTI)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                if await pipe.get(key) != expected:
                    await pipe.unwatch()
                    return False
                pipe.multi()
                if new is None:
                    pipe.delete(key)
                else:
                    pipe.set(key, new, ex=self.ttl_s)
                await pipe.execute()
            except WatchError:
                return False
        return True
