"""The harness's own pure parts: row normalization, comparison, catalog selection, cache keys.

These run in milliseconds; a wrong comparison would make every real-tap test meaningless.
"""

from __future__ import annotations

import decimal

import pg
import pytest
import seed
import taps

D = decimal.Decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-09T16:00:00.5-05:00", "2024-03-09T21:00:00.500000Z"),
        ("2024-03-09T16:00:00.500000-05:00", "2024-03-09T21:00:00.500000Z"),
        ("2024-03-09T21:00:00.500000Z", "2024-03-09T21:00:00.500000Z"),
        ("2024-02-29T23:59:59.123456", "2024-02-29T23:59:59.123456Z"),  # naive: UTC
        ("2024-02-29T23:59:59.123456+00:00", "2024-02-29T23:59:59.123456Z"),
        ("1999-12-31T23:59:59.999999-08:00", "2000-01-01T07:59:59.999999Z"),
        ("not a time", "not a time"),
        (None, None),
    ],
)
def test_timestamps_normalize_to_one_utc_form(text: str | None, expected: str | None) -> None:
    assert seed.normalize_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    ["2024-02-29", "2024-02-29T00:00:00+00:00", "2024-02-29T00:00:00Z"],
)
def test_dates_normalize_to_the_day(text: str) -> None:
    assert seed.normalize_date(text) == "2024-02-29"


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        (D("1.500"), D("1.5"), True),
        (5, D("5.00"), True),
        (D("12345678901234567890.123456789"), D("12345678901234567890.12345678"), False),
        (D("1E-9"), D("0.000000001"), True),
        (True, 1, False),
        (None, [], False),
        ({"a": [1, None]}, {"a": [D("1.0"), None]}, True),
        ([None], [], False),
        ("1", 1, False),
    ],
)
def test_canonical_compares_json_values_exactly(left: object, right: object, equal: bool) -> None:
    assert (seed.canonical(left) == seed.canonical(right)) is equal


COLUMNS = ["id", "updated_at", "tags", "doc", "amount"]


def test_keyed_differences_are_empty_for_equal_rows() -> None:
    database = [{"id": 1, "updated_at": "2024-01-01T00:00:01+00:00", "tags": ["a", None],
                 "doc": {"x": D("0.50")}, "amount": D("1E-9")}]  # fmt: skip
    emulator = [{"id": 1, "updated_at": "2023-12-31T19:00:01.000000-05:00", "tags": ["a", None],
                 "doc": '{"x": 0.5}', "amount": D("0.000000001")}]  # fmt: skip
    assert seed.keyed_differences(seed.ITEMS, database, emulator, COLUMNS, ["doc"]) == []


def test_keyed_differences_name_every_problem() -> None:
    database: list[dict[str, object]] = [{"id": 1, "amount": D("1.1")}, {"id": 2}, {"id": 3}]
    emulator: list[dict[str, object]] = [
        {"id": 1, "amount": D("1.10000001")},
        {"id": 3},
        {"id": 3},
        {"id": 4, "x": 1},
    ]
    problems = seed.keyed_differences(seed.ITEMS, database, emulator, COLUMNS)
    text = "\n".join(problems)
    assert 'row [{"#number": "1"}] differs' in text
    assert 'missing row [{"#number": "2"}]' in text
    assert "loaded twice" in text
    assert 'unexpected row [{"#number": "4"}]' in text
    assert "columns the table lacks: ['x']" in text


def test_multiset_differences_count_equal_rows() -> None:
    columns = ["kind", "qty"]
    database = [{"kind": "a", "qty": D("1.500")}, {"kind": "a", "qty": D("1.5")}]
    once = [{"kind": "a", "qty": D("1.5")}] * 2
    assert seed.multiset_differences(seed.EVENTS, database, once, columns) == []
    assert seed.multiset_differences(seed.EVENTS, database, once, columns, times=2)
    assert seed.multiset_differences(seed.EVENTS, database, once * 2, columns, times=2) == []
    assert seed.multiset_differences(seed.EVENTS, database, once[:1], columns)


def _catalog() -> dict[str, object]:
    return {
        "streams": [
            {
                "tap_stream_id": "tsi-public-items",
                "table_name": "items",
                "stream": "items",
                "schema": {"properties": {"id": {}, "updated_at": {}}},
                "metadata": [{"breadcrumb": [], "metadata": {"table-key-properties": ["id"]}}],
            },
            {
                "tap_stream_id": "public-events_nopk",
                "stream": "public-events_nopk",
                "schema": {"properties": {"kind": {}}},
                "metadata": [],
            },
        ],
    }


def test_select_marks_streams_columns_and_replication() -> None:
    catalog = _catalog()
    chosen = taps.select(catalog, {"items": ("INCREMENTAL", "updated_at")})
    assert [s["tap_stream_id"] for s in chosen["streams"]] == ["tsi-public-items"]
    stream = chosen["streams"][0]
    top = next(m["metadata"] for m in stream["metadata"] if m["breadcrumb"] == [])
    assert top == {
        "table-key-properties": ["id"],
        "selected": True,
        "replication-method": "INCREMENTAL",
        "replication-key": "updated_at",
    }
    selected = {tuple(m["breadcrumb"]) for m in stream["metadata"] if m["metadata"].get("selected")}
    assert {("properties", "id"), ("properties", "updated_at")} <= selected
    assert catalog == _catalog(), "select() must not change its input"


def test_find_stream_by_table_or_stream_id_suffix() -> None:
    catalog = _catalog()
    assert taps.find_stream(catalog, "events_nopk")["stream"] == "public-events_nopk"
    with pytest.raises(KeyError, match="nothing"):
        taps.find_stream(catalog, "nothing")


def test_cache_key_follows_the_pins() -> None:
    spec = taps.MELTANOLABS
    same = taps.TapSpec(spec.name, tuple(reversed(spec.pins)))
    other = taps.TapSpec(spec.name, (*spec.pins[:-1], "zipp==0.0.1"))
    assert spec.cache_key() == same.cache_key()
    assert spec.cache_key() != other.cache_key()


def test_postgres_is_found_after_ensure_installed() -> None:
    bindir = pg.ensure_installed()
    assert (bindir / "initdb").is_file()
    assert pg.find_bindir() == bindir
