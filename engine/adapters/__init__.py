"""The only importers of redis, asyncpg, argon2 and prometheus-client."""
