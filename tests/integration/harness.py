"""Small pieces the real-tap tests and their fixtures share (no fixtures here)."""

from __future__ import annotations

import json
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

import seed

if t.TYPE_CHECKING:
    import pg
    import taps


class Emulator(t.Protocol):
    """What the tests use of ``tests/conftest.py``'s emulator fixture."""

    url: str
    token: str | None

    def rows(self, table: str) -> list[dict[str, t.Any]]:
        """A table's rows with exact values."""
        ...

    def stats(self) -> dict[str, t.Any]:
        """Batch statistics, overall and per table."""
        ...


@dataclass(frozen=True)
class Database:
    """One test's copy of the seeded database."""

    server: pg.PgServer
    name: str

    def execute(self, sql: str) -> str:
        """Run SQL in this database."""
        return self.server.psql(sql, database=self.name)

    def rows(self, table: str) -> list[dict[str, t.Any]]:
        """The table's rows, exactly (``row_to_json``, non-integers as ``Decimal``)."""
        return seed.read_rows(self.server, self.name, table)

    def columns(self, table: str) -> list[str]:
        """The table's column names."""
        return seed.read_columns(self.server, self.name, table)


@dataclass(frozen=True)
class TapVenvs:
    """Both installed taps."""

    meltanolabs: taps.Tap
    singer_io: taps.Tap


def target_command(config: Path) -> list[str]:
    """The installed ``target-stitch-import`` (next to this Python) with ``config``."""
    script = Path(sys.executable).parent / "target-stitch-import"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "target_stitch_import.cli"]
    return [*base, "--config", str(config)]


def write_json(path: Path, value: object) -> Path:
    """Write ``value`` as JSON to ``path`` and return the path."""
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")
    return path
