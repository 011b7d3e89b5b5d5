"""Real storages for the multi-worker tests: a fresh PostgreSQL database, a fresh Redis database.

Both servers run on 127.0.0.1 on this machine and in CI; a test that needs one fails (it
does not skip) when the server is unreachable.
"""

from __future__ import annotations

import os
import uuid

import pytest

POSTGRES = os.environ.get("AUTOPRUNE_TEST_POSTGRES_SERVER", "postgresql+psycopg2://postgres@127.0.0.1:5432")
REDIS = os.environ.get("AUTOPRUNE_TEST_REDIS", "redis://127.0.0.1:6379")


@pytest.fixture
def postgres_db():
    """URL of a new, empty PostgreSQL database, dropped after the test."""
    import sqlalchemy

    name = f"autoprune_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.OperationalError as e:
        pytest.fail(f"PostgreSQL must run at {POSTGRES} for this test: {e}")
    yield f"{POSTGRES}/{name}"
    with admin.connect() as c:
        c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def redis_db():
    """URL of an empty Redis database (one of 1-15), flushed after the test."""
    import redis

    for db in range(15, 0, -1):
        client = redis.Redis.from_url(f"{REDIS}/{db}")
        try:
            empty = client.dbsize() == 0
        except redis.exceptions.ConnectionError as e:
            pytest.fail(f"Redis must run at {REDIS} for this test: {e}")
        if empty:
            break
    else:
        pytest.fail(f"no empty Redis database at {REDIS} (1-15)")
    yield f"{REDIS}/{db}"
    client.flushdb()
    client.close()
