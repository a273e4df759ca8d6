"""Session fixtures for the real-tap tests: PostgreSQL, the taps' venvs, seeded databases.

* ``pg_server``: one throwaway cluster for the session (installed from Debian's packages
  when missing), its ``TimeZone`` set to ``America/New_York`` so ``timestamptz`` values
  come with offsets that change at daylight saving time.
* ``seed_template``: a database created and filled once; each test gets its own copy
  (``database``, a ``CREATE DATABASE ... TEMPLATE``), so tests may change their rows.
* ``tap_venvs``: both taps installed from PyPI into cached venvs, in parallel.

The emulator comes from ``tests/conftest.py`` (``emulator``).
"""

from __future__ import annotations

import typing as t
import uuid
from concurrent.futures import ThreadPoolExecutor

import pg
import pytest
import seed
import taps
from harness import Database, TapVenvs

if t.TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SERVER_TIMEZONE = "America/New_York"
TEMPLATE_DATABASE = "tsi_seed"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pg.PgServer]:
    """A PostgreSQL server for the whole session."""
    server = pg.start(timezone=SERVER_TIMEZONE)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seed_template(pg_server: pg.PgServer) -> str:
    """The seeded template database's name."""
    pg_server.create_database(TEMPLATE_DATABASE)
    pg_server.psql(seed.SCHEMA_SQL + seed.SEED_SQL, database=TEMPLATE_DATABASE)
    return TEMPLATE_DATABASE


@pytest.fixture
def database(pg_server: pg.PgServer, seed_template: str) -> Iterator[Database]:
    """A fresh copy of the seeded database for one test."""
    name = f"tsi_test_{uuid.uuid4().hex[:12]}"
    pg_server.create_database(name, template=seed_template)
    yield Database(pg_server, name)
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def tap_venvs() -> TapVenvs:
    """Both taps, installed (or found in the cache) in parallel."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        meltanolabs = pool.submit(taps.install, taps.MELTANOLABS)
        singer_io = pool.submit(taps.install, taps.SINGER_IO)
        return TapVenvs(meltanolabs.result(), singer_io.result())


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where a test keeps configs, catalogs, states and the taps' raw output."""
    path = tmp_path / "work"
    path.mkdir()
    return path
