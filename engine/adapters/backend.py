"""The drivers' connection types and failures, named once for the layers above the adapters.

Owns nothing but names: the pool and client types the `Services` container holds, and the tuples
of exceptions that mean "Redis (or PostgreSQL) did not do it" — down, timed out, refused — which
the application maps to 503 `unavailable`. Layers above `engine.adapters` import these instead of
redis or asyncpg, so the drivers stay behind this package (the layering contract in pyproject).
"""

from __future__ import annotations

from typing import Final, TypeAlias

import asyncpg
import redis.asyncio as aioredis
from redis import exceptions as redis_exceptions
from redis.asyncio.cluster import RedisCluster

# The drivers' own exception classes, for code that must tell one failure from another (the
# writer counts Redis and PostgreSQL errors apart and splits a batch only on a refused statement).
RedisError = redis_exceptions.RedisError
PostgresError = asyncpg.PostgresError
InterfaceError = asyncpg.InterfaceError
DataError = asyncpg.exceptions.DataError
PostgresConnectionError = asyncpg.PostgresConnectionError
# The driver's own state went wrong, not the statement: seen after a SIGKILL of PostgreSQL, when
# the pool handed out a connection stuck mid-operation ("cannot switch to state …"). It is no
# PostgresError or InterfaceError, yet it means the same as a dropped connection: retry later.
InternalClientError = asyncpg.InternalClientError

Pool: TypeAlias = asyncpg.Pool
Connection: TypeAlias = asyncpg.Connection
# One Valkey/Redis node, or a cluster (`redis+cluster://…`, `streams.connect`): the commands
# examreg sends are the same on both, every multi-key one within one slot.
Redis: TypeAlias = aioredis.Redis | RedisCluster

REDIS_ERRORS: Final[tuple[type[BaseException], ...]] = (RedisError, OSError, TimeoutError)
"""Redis was unreachable, timed out or refused the command."""

_STREAM_CALLS = frozenset({"write", "writelines", "drain", "read", "readline", "readexactly"})


def dropped_connection(exc: BaseException) -> bool:
    """Whether `exc` is redis-py's asyncio cluster client failing on a connection another task
    closed under it. On CLUSTERDOWN (seen during a failover) the client closes every connection
    of every node, those other tasks are using included, and their next read or write fails
    inside redis-py with AttributeError on the closed stream ("'NoneType' object has no
    attribute 'writelines'"): a dropped connection, to be retried like one. Nothing else is."""
    if not isinstance(exc, AttributeError) or "'NoneType' object has no attribute" not in str(exc):
        return False
    return str(exc).rsplit("'", 2)[-2] in _STREAM_CALLS


POSTGRES_ERRORS: Final[tuple[type[BaseException], ...]] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
"""PostgreSQL was unreachable, timed out, or refused the statement (any SQLSTATE)."""


BACKEND_ERRORS: Final[tuple[type[BaseException], ...]] = (
    RedisError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
"""Either backend failed: the request did not happen and the client may retry (503)."""
