"""PostgreSQL: the asyncpg pool, the schema migrations and the registry's queries.

PostgreSQL is the source of truth for the registry and (with the fan-out) for every message
and batch.  Every query is parameterized; each API call is one statement where the data
allows it, and where it does not (personalize) a short transaction holding a row lock.
"""
