"""The SQLite storage on its own: exact values, batch rules, conflicts, errors (no server)."""

from __future__ import annotations

import json
import sqlite3
import typing as t
from decimal import Decimal

import pytest

from target_stitch_import.emulator.storage import (
    BatchRejectedError,
    Storage,
    StorageError,
    UnknownTableError,
    decode_value,
    encode_value,
)
from target_stitch_import.emulator.validation import Batch, BatchValidator

if t.TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NOW = "2024-05-01T12:00:00.000000Z"


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    """A new emulator database."""
    with Storage(tmp_path / "db.sqlite", create=True) as created:
        yield created


def parsed(document: dict[str, t.Any]) -> Batch:
    """A validated batch (validation is the emulator's own)."""
    batch = BatchValidator().validate(json.dumps(document).encode(), "application/json")
    assert isinstance(batch, Batch), batch
    return batch


def upserts(
    table: str, *records: tuple[int, dict[str, t.Any]], version: int | None = None, **extra: t.Any
) -> Batch:
    """A batch of ``(sequence, data)`` upserts keyed on ``id``."""
    document: dict[str, t.Any] = {
        "table_name": table,
        "schema": {"properties": {"id": {}}},
        "key_names": ["id"],
        "messages": [{"action": "upsert", "sequence": s, "data": d} for s, d in records],
        **extra,
    }
    if version is not None:
        document["table_version"] = version
    return parsed(document)


@pytest.mark.parametrize(
    ("value", "storage_class"),
    [
        ("text ü 🎉", str),
        ("", str),
        (0, int),
        (2**63 - 1, int),
        (-(2**63), int),
        (2**63, bytes),
        (-(2**63) - 1, bytes),
        (True, bytes),
        (False, bytes),
        (None, type(None)),
        (Decimal("12345678901234567890.123456789"), bytes),
        (Decimal("1E-9"), bytes),
        (Decimal("-0.10"), bytes),
        (Decimal("1E+3"), bytes),
        ({"a": [1, Decimal("2.50"), {"b": None}], "ü": "x"}, bytes),
        ([], bytes),
    ],
)
def test_values_round_trip_exactly(value: object, storage_class: type) -> None:
    stored = encode_value(value)
    assert type(stored) is storage_class
    decoded = decode_value(stored)
    assert decoded == value
    assert type(decoded) is type(value)
    assert str(decoded) == str(value)


def test_values_survive_sqlite(storage: Storage) -> None:
    record = {"id": 1, "d": "1E-9", "nested": {"x": [True, None]}}
    storage.apply(upserts("t", (1, record)), received_at=NOW, body_bytes=10)
    assert storage.rows("t") == [record]
    system = storage.rows("t", system=True)[0]
    assert system["_sdc_received_at"] == NOW
    assert system["_sdc_primary_key"] == "[1]"


def test_rows_keep_insertion_order_when_a_column_is_named_rowid(storage: Storage) -> None:
    records = [(1, {"id": 1, "rowid": 9}), (1, {"id": 2, "rowid": 5, "oid": 1}), (1, {"id": 3})]
    storage.apply(upserts("t", *records), received_at=NOW, body_bytes=1)
    assert [row["id"] for row in storage.rows("t")] == [1, 2, 3]


def test_rules_inside_one_batch_follow_message_order(storage: Storage) -> None:
    document = {
        "table_name": "t",
        "schema": {"properties": {"id": {}, "v": {}}},
        "key_names": ["id"],
        "table_version": 2,
        "messages": [
            {"action": "upsert", "sequence": 5, "data": {"id": 1, "v": "a"}},
            {"action": "upsert", "sequence": 4, "data": {"id": 1, "v": "stale"}},
            {"action": "upsert", "sequence": 5, "data": {"id": 1, "v": "tie"}},
            {"action": "activate_version", "sequence": 6},
            {"action": "upsert", "sequence": 7, "data": {"id": 2, "v": "b"}},
        ],
    }
    outcome = storage.apply(parsed(document), received_at=NOW, body_bytes=1)
    assert (outcome.stale_ignored, outcome.ties) == (1, 1)
    assert storage.rows("t") == [{"id": 1, "v": "tie"}, {"id": 2, "v": "b"}]
    assert storage.table_info("t") == {
        "key_names": ["id"],
        "active_version": 2,
        "created_at": NOW,
        "staged": [],
    }


def test_activation_replaces_older_and_unversioned_rows(storage: Storage) -> None:
    storage.apply(upserts("t", (1, {"id": 1})), received_at=NOW, body_bytes=1)
    storage.apply(upserts("t", (1, {"id": 2}), version=1), received_at=NOW, body_bytes=1)
    storage.apply(upserts("t", (1, {"id": 3}), version=3), received_at=NOW, body_bytes=1)
    assert storage.rows("t") == [{"id": 1}]

    def activation(version: int) -> Batch:
        return parsed(
            {
                "table_name": "t",
                "schema": {"properties": {"id": {}}},
                "key_names": ["id"],
                "table_version": version,
                "messages": [{"action": "activate_version", "sequence": 1}],
            },
        )

    # Version 2 has no rows: activating it empties the table and discards version 1.
    storage.apply(activation(2), received_at=NOW, body_bytes=1)
    assert storage.rows("t") == []
    assert storage.table_info("t")["staged"] == [{"version": 3, "rows": 1}]
    storage.apply(activation(3), received_at=NOW, body_bytes=1)
    assert storage.rows("t") == [{"id": 3}]
    assert storage.table_info("t")["staged"] == []


def test_conflicts_roll_back_the_whole_batch(storage: Storage) -> None:
    storage.apply(upserts("t", (1, {"id": 1, "name": "a"})), received_at=NOW, body_bytes=1)
    with pytest.raises(BatchRejectedError, match="only by case"):
        storage.check(upserts("t", (2, {"id": 2, "other": 1}), (2, {"id": 3, "NAME": "b"})))
    with pytest.raises(BatchRejectedError, match="only by case"):
        storage.apply(
            upserts("t", (2, {"id": 2, "other": 1}), (2, {"id": 3, "NAME": "b"})),
            received_at=NOW,
            body_bytes=1,
        )
    with pytest.raises(BatchRejectedError, match="only by case"):
        storage.apply(upserts("T", (2, {"id": 2})), received_at=NOW, body_bytes=1)
    with pytest.raises(BatchRejectedError, match="only by case"):
        storage.apply(upserts("new", (2, {"id": 2, "x": 1, "X": 2})), received_at=NOW, body_bytes=1)
    assert storage.tables() == {"t": 1}
    assert list(storage.rows("t")[0]) == ["id", "name"]
    assert storage.stats()["batches"] == 1


def test_more_columns_than_sqlite_allows_is_a_rejection(storage: Storage) -> None:
    wide = {"id": 1, **{f"c{i}": i for i in range(1_990)}}
    storage.apply(upserts("wide", (1, wide)), received_at=NOW, body_bytes=1)
    wider = upserts("wide", (2, {"id": 2, **{f"d{i}": i for i in range(10)}}))
    with pytest.raises(
        BatchRejectedError, match="would have 2005 columns, more than SQLite's 2000"
    ):
        storage.check(wider)
    with pytest.raises(BatchRejectedError, match="would have 2005 columns"):
        storage.apply(wider, received_at=NOW, body_bytes=1)
    assert storage.tables() == {"wide": 1}


def test_check_stores_nothing(storage: Storage) -> None:
    storage.check(upserts("t", (1, {"id": 1})))
    assert storage.tables() == {}
    assert storage.stats() == {
        "batches": 0,
        "messages": 0,
        "bytes": 0,
        "stale_ignored": 0,
        "ties": 0,
        "tables": {},
    }


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no emulator database"):
        Storage(tmp_path / "missing.sqlite")
    plain = tmp_path / "plain.sqlite"
    sqlite3.connect(plain).execute("CREATE TABLE x (y)").connection.close()
    with pytest.raises(StorageError, match="not an emulator database"):
        Storage(plain)
    with Storage(tmp_path / "named.sqlite", create=True, schema_name="crm") as named:
        assert named.schema_name == "crm"
    with Storage(tmp_path / "named.sqlite", create=True) as again:
        assert again.schema_name == "crm"
    with pytest.raises(StorageError, match="holds the schema 'crm', not 'erp'"):
        Storage(tmp_path / "named.sqlite", create=True, schema_name="erp")


def test_unknown_tables(storage: Storage) -> None:
    for name in ("nope", "_emulator_batches", "sqlite_master"):
        with pytest.raises(UnknownTableError):
            storage.rows(name)
    with pytest.raises(UnknownTableError):
        storage.table_info("nope")
