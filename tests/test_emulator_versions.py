"""Full-table versions in the emulator: staged out of sight, swapped in atomically on activation.

Storage-level tests apply batches to :class:`Storage` directly; the HTTP tests post bodies to a
real ``stitch-import-emulator serve`` subprocess.
"""

from __future__ import annotations

import json
import sqlite3
import typing as t
from decimal import Decimal

import pytest
import requests
import simplejson

from target_stitch_import.contract import BATCH_PATH
from target_stitch_import.emulator.storage import (
    BatchOutcome,
    BatchRejectedError,
    Storage,
    stage_name,
)
from target_stitch_import.emulator.validation import Batch, BatchValidator

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from conftest import Emulator

NOW = "2024-05-01T12:00:00.000000Z"
HEADERS = {"Authorization": "Bearer test-token", "Content-Type": "application/json"}
ACTIVATE = "activate"


def body(
    table: str,
    *messages: tuple[int, dict[str, t.Any]] | tuple[int, str],
    version: int | None = None,
    keys: t.Sequence[str] = ("id",),
) -> dict[str, t.Any]:
    """A batch body: ``(sequence, data)`` upserts, ``(sequence, ACTIVATE)`` activations."""
    document: dict[str, t.Any] = {
        "table_name": table,
        "schema": {"properties": {"id": {}}},
        "key_names": list(keys),
        "messages": [
            {"action": "activate_version", "sequence": sequence}
            if data == ACTIVATE
            else {"action": "upsert", "sequence": sequence, "data": data}
            for sequence, data in messages
        ],
    }
    if version is not None:
        document["table_version"] = version
    return document


def parsed(document: dict[str, t.Any]) -> Batch:
    """A validated batch (validation is the emulator's own)."""
    text = simplejson.dumps(document, use_decimal=True)
    batch = BatchValidator().validate(text.encode(), "application/json")
    assert isinstance(batch, Batch), batch
    return batch


def send(storage: Storage, *args: t.Any, **kwargs: t.Any) -> BatchOutcome:
    """Apply ``body(*args, **kwargs)`` to the storage."""
    return storage.apply(parsed(body(*args, **kwargs)), received_at=NOW, body_bytes=1)


def columns(path: Path, table: str) -> list[str]:
    """A SQL table's columns, read with plain sqlite3."""
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def sql_tables(path: Path) -> set[str]:
    """Every SQL table in the file."""
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """The emulator database's file."""
    return tmp_path / "db.sqlite"


@pytest.fixture
def storage(path: Path) -> Iterator[Storage]:
    """A new emulator database."""
    with Storage(path, create=True) as created:
        yield created


# Storage


def test_a_staged_version_is_invisible_until_activated(storage: Storage, path: Path) -> None:
    send(storage, "t", (1, {"id": 1, "v": "old"}), (1, {"id": 2, "v": "old"}))
    send(storage, "t", (5, {"id": 2, "v": "new"}), (5, {"id": 3, "v": "new"}), version=7)
    assert storage.rows("t") == [{"id": 1, "v": "old"}, {"id": 2, "v": "old"}]
    assert storage.tables() == {"t": 2}
    info = storage.table_info("t")
    assert (info["active_version"], info["staged"]) == (None, [{"version": 7, "rows": 2}])
    table_stats = storage.stats()["tables"]["t"]
    assert (table_stats["rows"], table_stats["active_version"]) == (2, None)
    assert table_stats["staged"] == [{"version": 7, "rows": 2}]

    outcome = send(storage, "t", (6, ACTIVATE), version=7)
    assert (outcome.stale_ignored, outcome.ties) == (0, 0)
    assert storage.rows("t") == [{"id": 2, "v": "new"}, {"id": 3, "v": "new"}]
    assert {row["_sdc_table_version"] for row in storage.rows("t", system=True)} == {7}
    info = storage.table_info("t")
    assert (info["active_version"], info["staged"]) == (7, [])
    assert stage_name("t", 7) not in sql_tables(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM _emulator_versions").fetchone() == (0,)


def test_a_new_table_shows_nothing_before_its_first_activation(
    storage: Storage, path: Path
) -> None:
    send(storage, "t", (1, {"id": 1, "name": "a"}), version=1)
    assert storage.tables() == {"t": 0}
    assert storage.rows("t") == []
    assert "name" not in columns(path, "t")
    # The staged rows are plain SQL too.
    with sqlite3.connect(path) as conn:
        (stage,) = conn.execute(
            "SELECT stage FROM _emulator_versions WHERE table_name = 't' AND version = 1"
        ).fetchone()
        assert stage == stage_name("t", 1) == "_emulator_version_1_t"
        assert conn.execute(f'SELECT id, name FROM "{stage}"').fetchall() == [(1, "a")]
    send(storage, "t", (2, ACTIVATE), version=1)
    assert storage.rows("t") == [{"id": 1, "name": "a"}]


def test_a_load_continues_over_batches_and_restarts(path: Path) -> None:
    with Storage(path, create=True) as storage:
        send(storage, "t", (1, {"id": 1, "v": "v1"}), (1, ACTIVATE), version=1)
        send(storage, "t", (10, {"id": 1, "v": "a"}), (10, {"id": 2, "v": "a"}), version=2)
    with Storage(path) as storage:
        assert storage.table_info("t")["staged"] == [{"version": 2, "rows": 2}]
        outcome = send(
            storage,
            "t",
            (9, {"id": 1, "v": "stale"}),
            (10, {"id": 2, "v": "tie"}),
            (11, {"id": 3, "v": "b"}),
            version=2,
        )
        assert (outcome.stale_ignored, outcome.ties) == (1, 1)
        assert storage.rows("t") == [{"id": 1, "v": "v1"}]
    with Storage(path, create=True) as storage:
        send(storage, "t", (12, ACTIVATE), version=2)
        assert storage.rows("t") == [
            {"id": 1, "v": "a"},
            {"id": 2, "v": "tie"},
            {"id": 3, "v": "b"},
        ]
        assert storage.stats()["tables"]["t"]["stale_ignored"] == 1


def test_activation_keeps_newer_staged_versions_and_drops_older(
    storage: Storage, path: Path
) -> None:
    for version in (2, 3, 5):
        send(storage, "t", (1, {"id": version}), version=version)
    send(storage, "t", (2, ACTIVATE), version=3)
    assert storage.rows("t") == [{"id": 3}]
    assert storage.table_info("t")["staged"] == [{"version": 5, "rows": 1}]
    assert {stage_name("t", v) for v in (2, 3, 5)} & sql_tables(path) == {stage_name("t", 5)}


def test_the_active_version_and_older_ones(storage: Storage) -> None:
    send(storage, "t", (1, {"id": 1, "v": "v3"}), (2, ACTIVATE), version=3)
    send(storage, "t", (1, {"id": 9, "v": "v4"}), version=4)
    # Upserts of the active version go straight to the table; older or unversioned are stale.
    send(storage, "t", (3, {"id": 2, "v": "v3"}), version=3)
    assert send(storage, "t", (9, {"id": 1, "v": "v2"}), version=2).stale_ignored == 1
    assert send(storage, "t", (9, {"id": 1, "v": "none"})).stale_ignored == 1
    # Activating an older version is stale; activating the active one again changes nothing.
    assert send(storage, "t", (9, ACTIVATE), version=2).stale_ignored == 1
    assert send(storage, "t", (9, ACTIVATE), version=3).stale_ignored == 0
    assert storage.rows("t") == [{"id": 1, "v": "v3"}, {"id": 2, "v": "v3"}]
    info = storage.table_info("t")
    assert (info["active_version"], info["staged"]) == (3, [{"version": 4, "rows": 1}])


def test_a_retried_load_and_activation_batch_changes_nothing(storage: Storage) -> None:
    load = body("t", (1, {"id": 1}), (1, {"id": 2}), (2, ACTIVATE), version=1)
    for _ in range(2):
        storage.apply(parsed(load), received_at=NOW, body_bytes=1)
        assert storage.rows("t") == [{"id": 1}, {"id": 2}]
    assert storage.stats()["tables"]["t"]["ties"] == 2


def test_activating_a_version_without_rows_empties_the_table(storage: Storage, path: Path) -> None:
    send(storage, "t", (1, {"id": 1, "name": "a"}))
    send(storage, "t", (2, ACTIVATE), version=1)
    assert storage.rows("t") == []
    assert "name" in columns(path, "t")
    send(storage, "t", (3, {"id": 2}), version=1)
    assert storage.rows("t") == [{"id": 2, "name": None}]
    assert storage.table_info("t")["active_version"] == 1


def test_keyless_loads_append_in_staging(storage: Storage) -> None:
    send(storage, "log", (1, {"e": "old"}), keys=[])
    for _ in range(2):
        send(storage, "log", (1, {"e": "x"}), (1, {"e": "x"}), version=1, keys=[])
    assert storage.rows("log") == [{"e": "old"}]
    assert storage.table_info("log")["staged"] == [{"version": 1, "rows": 4}]
    send(storage, "log", (1, ACTIVATE), version=1, keys=[])
    assert storage.rows("log") == [{"e": "x"}] * 4


def test_new_columns_of_a_staged_version(storage: Storage, path: Path) -> None:
    send(storage, "t", (1, {"id": 1, "a": 1}))
    send(storage, "t", (1, {"id": 2, "b": Decimal("1E-9")}), version=1)
    assert "b" not in columns(path, "t")
    assert list(storage.rows("t")[0]) == ["id", "a"]
    # A column the visible table gains also goes to the staged versions...
    send(storage, "t", (2, {"id": 3, "c": True}))
    assert columns(path, stage_name("t", 1))[-2:] == ["b", "c"]
    # ...and a property that differs from any of them only by case is refused.
    for name in ("B", "C"):
        with pytest.raises(BatchRejectedError, match="only by case"):
            send(storage, "t", (3, {"id": 4, name: 1}))
        with pytest.raises(BatchRejectedError, match="only by case"):
            storage.check(parsed(body("t", (3, {"id": 4, name: 1}), version=2)))
    send(storage, "t", (2, {"id": 4, "a": {"x": [1, None]}, "c": False}), (3, ACTIVATE), version=1)
    assert storage.rows("t") == [
        {"id": 2, "a": None, "b": Decimal("1E-9"), "c": None},
        {"id": 4, "a": {"x": [1, None]}, "b": None, "c": False},
    ]
    assert str(storage.rows("t")[0]["b"]) == "1E-9"


def test_a_rejected_batch_leaves_the_staged_version_as_it_was(storage: Storage) -> None:
    send(storage, "t", (1, {"id": 1, "name": "x"}), version=1)
    with pytest.raises(BatchRejectedError):
        send(storage, "t", (2, {"id": 2}), (2, ACTIVATE), (3, {"id": 3, "NAME": "y"}), version=1)
    assert storage.rows("t") == []
    assert storage.table_info("t")["staged"] == [{"version": 1, "rows": 1}]


# HTTP


def test_a_full_table_load_over_http_and_a_restart(
    start_emulator: Callable[..., Emulator],
) -> None:
    emulator = start_emulator()

    def post(document: dict[str, t.Any]) -> None:
        response = requests.post(
            emulator.url + BATCH_PATH, data=json.dumps(document), headers=HEADERS, timeout=30
        )
        assert (response.status_code, response.json()) == (
            201,
            {"status": "OK", "message": "Batch Accepted!"},
        )

    post(body("t", *((1, {"id": i, "v": "v1"}) for i in range(3)), (2, ACTIVATE), version=1))
    assert emulator.rows("t") == [{"id": i, "v": "v1"} for i in range(3)]
    post(body("t", (3, {"id": 5, "v": "v2"}), version=2))
    emulator.restart()
    post(body("t", (3, {"id": 6, "v": "v2"}), version=2))
    assert emulator.rows("t") == [{"id": i, "v": "v1"} for i in range(3)]
    assert emulator.tables() == {"t": 3}
    assert emulator.stats()["tables"]["t"]["staged"] == [{"version": 2, "rows": 2}]
    post(body("t", (4, ACTIVATE), version=2))
    assert emulator.rows("t") == [{"id": 5, "v": "v2"}, {"id": 6, "v": "v2"}]
    assert emulator.stats()["tables"]["t"]["staged"] == []
