"""The emulator over real HTTP: endpoints, auth, limits, storage rules, faults, load, garbage."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import random
import re
import sqlite3
import time
import typing as t
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests

from target_stitch_import.__version__ import __version__
from target_stitch_import.contract import BATCH_PATH, STATUS_PATH, VALIDATE_PATH

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from conftest import Emulator

TOKEN = "test-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
JSON = "application/json"
ACCEPTED = {"status": "OK", "message": "Batch Accepted!"}
NOT_AUTHORIZED = {"message": "Not Authorized"}
SCHEMA: dict[str, t.Any] = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {}}}


def up(sequence: int, **data: object) -> dict[str, object]:
    """An upsert message."""
    return {"action": "upsert", "sequence": sequence, "data": data}


def activate(sequence: int) -> dict[str, object]:
    """An activate_version message."""
    return {"action": "activate_version", "sequence": sequence}


def batch(
    table: str,
    *messages: dict[str, object],
    keys: t.Sequence[str] | None = ("id",),
    version: int | None = None,
    schema: dict[str, t.Any] | None = None,
) -> dict[str, object]:
    """A batch body for ``table`` (``keys=None`` leaves ``key_names`` out)."""
    document: dict[str, object] = {
        "table_name": table,
        "schema": schema or SCHEMA,
        "messages": list(messages),
    }
    if keys is not None:
        document["key_names"] = list(keys)
    if version is not None:
        document["table_version"] = version
    return document


def post(
    emulator: Emulator,
    document: object,
    *,
    path: str = BATCH_PATH,
    headers: dict[str, str] | None = None,
    session: requests.Session | None = None,
    timeout: float = 30,
) -> requests.Response:
    """POST a body (a document, or bytes as they are) to the emulator."""
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    sender = session or requests
    return sender.post(
        emulator.url + path,
        data=data,
        headers=HEADERS if headers is None else headers,
        timeout=timeout,
    )


def accepted(response: requests.Response) -> bool:
    """Tell whether a /batch answer is exactly Stitch's 201."""
    return (response.status_code, response.json()) == (201, ACCEPTED)


def storage_classes(emulator: Emulator, table: str) -> list[dict[str, str]]:
    """SQLite's storage class (typeof) of every data value, row by row."""
    with sqlite3.connect(emulator.database) as conn:
        columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
        data = [c for c in columns if not c.startswith("_sdc_")]
        select = ", ".join(f'typeof("{c}")' for c in data)
        rows = conn.execute(f'SELECT {select} FROM "{table}"')
        return [dict(zip(data, row, strict=True)) for row in rows]


@pytest.fixture(scope="module")
def shared(shared_emulator: Emulator) -> Emulator:
    """The emulator shared by this module's tests; each test writes to its own table."""
    return shared_emulator


@pytest.fixture
def table(request: pytest.FixtureRequest) -> str:
    """A table name of this test's own (the shared emulator outlives the test)."""
    return re.sub(r"\W", "_", request.node.name)


@pytest.fixture
def connection(shared: Emulator) -> Iterator[http.client.HTTPConnection]:
    """A raw keep-alive connection to the emulator."""
    parts = urlsplit(shared.url)
    conn = http.client.HTTPConnection(t.cast("str", parts.hostname), parts.port, timeout=30)
    yield conn
    conn.close()


def exchange(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, t.Any], http.client.HTTPResponse]:
    """One request on a raw connection; returns status, JSON body and the response."""
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, json.loads(response.read()), response


# Status


def test_status_ok_needs_no_token(shared: Emulator) -> None:
    response = requests.get(shared.url + STATUS_PATH, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON
    assert response.json() == {
        "name": "pipeline.gate",
        "version": __version__,
        "revision": "emulator",
        "status": "OK",
        "reason": None,
    }


def test_status_503_for_the_first_requests(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator("--status-503", "2", "--retry-after", "3")
    answers = [requests.get(emulator.url + STATUS_PATH, timeout=10) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].json()["status"] == "ERROR"
    assert answers[0].headers["Retry-After"] == "3"
    always = start_emulator("--status-503", "-1")
    assert {requests.get(always.url + STATUS_PATH, timeout=10).status_code for _ in range(5)} == {
        503
    }
    assert accepted(post(always, batch("t", up(1, id=1))))


# Auth, content type, size, routing


def test_auth(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator("--inactive-token", "paused")
    body = batch("t", up(1, id=1))
    for path in (BATCH_PATH, VALIDATE_PATH):
        for authorization in (None, "Bearer wrong", "Bearer ", f"Basic {TOKEN}", TOKEN):
            headers = {"Content-Type": JSON}
            if authorization is not None:
                headers["Authorization"] = authorization
            response = post(emulator, body, path=path, headers=headers)
            assert (response.status_code, response.json()) == (401, NOT_AUTHORIZED)
            assert response.headers["Content-Type"] == JSON
        paused = post(
            emulator, body, path=path, headers={**HEADERS, "Authorization": "Bearer paused"}
        )
        assert (paused.status_code, paused.json()) == (
            403,
            {"error": "Forbidden", "errors": {"error": "Connection is not active."}},
        )
    lower = post(emulator, body, headers={**HEADERS, "Authorization": f"bearer {TOKEN}"})
    assert accepted(lower)
    assert emulator.tables() == {"t": 1}


def test_any_token_without_token_option(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator(token=None)
    assert accepted(
        post(emulator, batch("t", up(1, id=1)), headers={**HEADERS, "Authorization": "Bearer x"})
    )
    missing = post(emulator, batch("t", up(1, id=1)), headers={"Content-Type": JSON})
    assert (missing.status_code, missing.json()) == (401, NOT_AUTHORIZED)
    assert "any non-empty bearer token" in emulator.stderr()


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_content_type_must_be_json(shared: Emulator, table: str, content_type: str | None) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    for path in (BATCH_PATH, VALIDATE_PATH):
        response = post(shared, batch(table, up(1, id=1)), path=path, headers=headers)
        assert (response.status_code, response.json()) == (
            415,
            {"error": "Content-Type must be application/json"},
        )
    charset = {**HEADERS, "Content-Type": "application/json; charset=utf-8"}
    assert accepted(post(shared, batch(table, up(1, id=1)), headers=charset))


def test_oversized_body_413_keeps_the_connection(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator("--max-body-bytes", "1000")
    parts = urlsplit(emulator.url)
    conn = http.client.HTTPConnection(t.cast("str", parts.hostname), parts.port, timeout=30)
    big = json.dumps(batch("t", *(up(i, id=i, name="x" * 50) for i in range(30)))).encode()
    assert len(big) > 1000
    try:
        status, answer, response = exchange(conn, "POST", BATCH_PATH, big, HEADERS)
        assert (status, answer) == (
            413,
            {
                "status": "ERROR",
                "message": f"Request rejected: request size ({len(big)} bytes) exceeds the maximum",
            },
        )
        assert not response.will_close
        sock = conn.sock
        status, answer, _ = exchange(
            conn, "POST", BATCH_PATH, json.dumps(batch("t", up(1, id=1))).encode(), HEADERS
        )
        assert (status, answer) == (201, ACCEPTED)
        assert conn.sock is sock, "the connection was reopened"
        # Auth and Content-Type are checked before the size.
        status, answer, _ = exchange(conn, "POST", BATCH_PATH, big, {"Content-Type": JSON})
        assert (status, answer) == (401, NOT_AUTHORIZED)
        status, _, _ = exchange(
            conn, "POST", BATCH_PATH, big, {**HEADERS, "Content-Type": "text/plain"}
        )
        assert status == 415
        assert conn.sock is sock
    finally:
        conn.close()
    assert emulator.rows("t") == [{"id": 1}]


def test_length_required(
    shared: Emulator, table: str, connection: http.client.HTTPConnection
) -> None:
    connection.putrequest("POST", BATCH_PATH)
    for name, value in HEADERS.items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 411
    assert response.getheader("Content-Type") == JSON
    assert "error" in json.loads(response.read())
    status, answer, _ = exchange(
        connection, "POST", BATCH_PATH, json.dumps(batch(table, up(1, id=1))).encode(), HEADERS
    )
    assert (status, answer) == (201, ACCEPTED)
    chunked = requests.post(
        shared.url + BATCH_PATH,
        data=iter([json.dumps(batch(table, up(2, id=2))).encode()]),
        headers=HEADERS,
        timeout=10,
    )
    assert chunked.status_code == 411
    assert shared.tables()[table] == 1


def test_unknown_path_and_wrong_method(
    connection: http.client.HTTPConnection,
) -> None:
    cases = [
        ("GET", "/v2/import/nope", 404),
        ("POST", "/v1/import/batch", 404),
        ("GET", BATCH_PATH, 405),
        ("PUT", VALIDATE_PATH, 405),
        ("POST", STATUS_PATH, 405),
        ("DELETE", STATUS_PATH, 405),
    ]
    for method, path, expected in cases:
        status, answer, response = exchange(connection, method, path, b"{}", HEADERS)
        assert status == expected, (method, path)
        assert response.getheader("Content-Type") == JSON
        assert "error" in answer
    assert exchange(connection, "GET", STATUS_PATH + "?x=1")[0] == 200
    assert exchange(connection, "GET", STATUS_PATH, b'{"a body": "ignored"}')[0] == 200
    assert exchange(connection, "GET", STATUS_PATH)[0] == 200


# Storage rules


def test_validate_stores_nothing(shared: Emulator, table: str) -> None:
    response = post(shared, batch(table, up(1, id=1)), path=VALIDATE_PATH)
    assert (response.status_code, response.json()) == (
        200,
        {"status": "OK", "message": "Batch is valid!"},
    )
    assert table not in shared.tables()
    assert table not in shared.stats()["tables"]


def test_higher_sequence_wins_whatever_the_arrival_order(shared: Emulator, table: str) -> None:
    assert accepted(post(shared, batch(table, up(10, id=1, name="new"), up(1, id=2, name="b"))))
    assert accepted(post(shared, batch(table, up(5, id=1, name="old"))))
    assert shared.rows(table) == [{"id": 1, "name": "new"}, {"id": 2, "name": "b"}]
    assert accepted(
        post(
            shared,
            batch(table, up(3, id=3, name="a"), up(2, id=3, name="b"), up(4, id=3, name="c")),
        )
    )
    assert accepted(post(shared, batch(table, up(11, id=1, name="newer"))))
    rows = {row["id"]: row for row in shared.rows(table, system=True)}
    assert rows[1]["name"] == "newer"
    assert rows[1]["_sdc_sequence"] == 11
    assert rows[1]["_sdc_primary_key"] == "[1]"
    assert rows[1]["_sdc_table_version"] is None
    assert rows[1]["_sdc_received_at"].endswith("Z")
    assert rows[3]["name"] == "c"
    stats = shared.stats()["tables"][table]
    assert (stats["stale_ignored"], stats["ties"], stats["batches"], stats["messages"]) == (
        2,
        0,
        4,
        7,
    )


def test_equal_sequence_is_a_tie_and_the_later_row_stays(shared: Emulator, table: str) -> None:
    assert accepted(post(shared, batch(table, up(7, id=1, name="first"))))
    assert accepted(
        post(shared, batch(table, up(7, id=1, name="second"), up(7, id=1, name="third")))
    )
    assert shared.rows(table) == [{"id": 1, "name": "third"}]
    assert shared.stats()["tables"][table]["ties"] == 2


def test_composite_and_string_keys(shared: Emulator, table: str) -> None:
    schema = {"properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "v": {}}}
    first = batch(
        table, up(1, a="x", b=1, v=1), up(1, a="x", b=2, v=2), keys=["a", "b"], schema=schema
    )
    assert accepted(post(shared, first))
    again = batch(table, up(2, a="x", b=1, v=3), keys=["a", "b"], schema=schema)
    assert accepted(post(shared, again))
    assert sorted(row["v"] for row in shared.rows(table)) == [2, 3]


def test_key_names_must_match_the_table(shared: Emulator, table: str) -> None:
    assert accepted(post(shared, batch(table, up(1, id=1))))
    expected = f'key_names ["name"] do not match the primary key ["id"] of table {table}'
    for path in (BATCH_PATH, VALIDATE_PATH):
        response = post(shared, batch(table, up(2, id=2, name="x"), keys=["name"]), path=path)
        assert (response.status_code, response.json()) == (400, {"error": expected})
    response = post(shared, batch(table, up(2, id=2), keys=None))
    assert response.json() == {
        "error": f'key_names [] do not match the primary key ["id"] of table {table}'
    }
    assert shared.rows(table) == [{"id": 1}]


def test_append_without_keys(shared: Emulator, table: str) -> None:
    keys: list[str] | None
    for keys in ([], None, []):
        assert accepted(
            post(
                shared, batch(table, up(1, id=1, name="same"), up(1, id=1, name="same"), keys=keys)
            )
        )
    assert shared.rows(table) == [{"id": 1, "name": "same"}] * 6
    assert "_sdc_primary_key" not in shared.rows(table, system=True)[0]


@pytest.mark.parametrize("keys", [["id"], []], ids=["keyed", "append"])
def test_activate_version_drops_older_versions(
    shared: Emulator, table: str, keys: list[str]
) -> None:
    assert accepted(post(shared, batch(table, up(1, id=0, name="unversioned"), keys=keys)))
    assert accepted(
        post(
            shared,
            batch(table, up(1, id=1, name="v1"), up(2, id=2, name="v1"), keys=keys, version=1),
        )
    )
    assert accepted(post(shared, batch(table, up(3, id=1, name="v2"), keys=keys, version=2)))
    # Versions 1 and 2 are staged out of sight: the table still shows the unversioned row.
    assert shared.rows(table) == [{"id": 0, "name": "unversioned"}]
    assert accepted(post(shared, batch(table, activate(4), keys=keys, version=2)))
    assert shared.rows(table) == [{"id": 1, "name": "v2"}]
    # Older versions (and unversioned upserts) arriving later are stale; so is an older activation.
    assert accepted(post(shared, batch(table, up(9, id=2, name="late v1"), keys=keys, version=1)))
    assert accepted(post(shared, batch(table, up(9, id=2, name="late"), keys=keys)))
    assert accepted(post(shared, batch(table, activate(9), keys=keys, version=1)))
    assert accepted(post(shared, batch(table, up(5, id=3, name="v2"), keys=keys, version=2)))
    assert shared.rows(table) == [{"id": 1, "name": "v2"}, {"id": 3, "name": "v2"}]
    assert shared.stats()["tables"][table]["stale_ignored"] == 3
    with sqlite3.connect(shared.database) as conn:
        assert conn.execute(
            "SELECT active_version FROM _emulator_tables WHERE name = ?", (table,)
        ).fetchall() == [(2,)]
    assert {row["_sdc_table_version"] for row in shared.rows(table, system=True)} == {2}


def test_nested_values_are_kept_as_json(shared: Emulator, table: str) -> None:
    record = {
        "id": 1,
        "obj": {"a": [1, {"b": None}], "c": "ü"},
        "arr": [1, "x", True],
        "flag": True,
        "none": None,
    }
    schema = {"properties": {"id": {}, "obj": {"type": "object"}, "arr": {"type": "array"}}}
    assert accepted(post(shared, batch(table, up(1, **record), schema=schema)))
    assert shared.rows(table) == [record]
    assert storage_classes(shared, table) == [
        {"id": "integer", "obj": "blob", "arr": "blob", "flag": "blob", "none": "null"},
    ]


def test_a_new_property_adds_a_column(shared: Emulator, table: str) -> None:
    assert accepted(post(shared, batch(table, up(1, id=1, name="a"))))
    assert accepted(post(shared, batch(table, up(2, id=2, email="b@example.com"))))
    assert shared.rows(table) == [
        {"id": 1, "name": "a", "email": None},
        {"id": 2, "name": None, "email": "b@example.com"},
    ]


def test_exact_numbers_round_trip(shared: Emulator, table: str) -> None:
    raw = (
        b'{"table_name": "TABLE", "key_names": ["id"], "schema": {"properties": {'
        b'"id": {"type": "integer"}, "price": {"type": "number", "multipleOf": 0.01}, '
        b'"tenth": {"multipleOf": 0.1}, "tiny": {"multipleOf": 1E-38}}}, "messages": ['
        b'{"action": "upsert", "sequence": 1, "data": {"id": 9223372036854775807, '
        b'"price": -2341.62, "tenth": 0.3, "tiny": 12345678901234567890.123456789, '
        b'"small": 1E-9, "big": 1180591620717411303424, "trailing": 2.50, '
        b'"neg": -9223372036854775808}}]}'
    )
    raw = raw.replace(b"TABLE", table.encode())
    assert accepted(post(shared, raw))
    (row,) = shared.rows(table)
    assert row == {
        "id": 2**63 - 1,
        "price": Decimal("-2341.62"),
        "tenth": Decimal("0.3"),
        "tiny": Decimal("12345678901234567890.123456789"),
        "small": Decimal("1E-9"),
        "big": 2**70,
        "trailing": Decimal("2.50"),
        "neg": -(2**63),
    }
    texts = {name: str(value) for name, value in row.items()}
    assert texts["tiny"] == "12345678901234567890.123456789"
    assert texts["small"] == "1E-9"
    assert texts["trailing"] == "2.50"
    assert storage_classes(shared, table)[0]["big"] == "blob"
    assert storage_classes(shared, table)[0]["neg"] == "integer"
    inexact = raw.replace(b"-2341.62", b"-2341.625")
    response = post(shared, inexact)
    assert response.json() == {
        "error": "Record 0 did not conform to schema: #/price: -2341.625 is not a multiple of 0.01",
    }


def test_unicode_names_and_values(shared: Emulator, table: str) -> None:
    schema = {"properties": {"id": {}, "naïve 名前": {"type": "string"}}}
    names = [f"{table} Kunden ü 客户", f'{table} we"ird', f"{table}.b c"]
    for name in names:
        document = batch(
            name, up(1, **{"id": "ключ", "naïve 名前": "Zoë 🎉\n\t\"'"}), schema=schema
        )
        assert accepted(post(shared, document))
        assert shared.rows(name) == [{"id": "ключ", "naïve 名前": "Zoë 🎉\n\t\"'"}]
    assert set(names) <= set(shared.tables())


def test_names_differing_by_case_are_refused(shared: Emulator, table: str) -> None:
    assert accepted(post(shared, batch(table, up(1, id=1, name="a"))))
    response = post(shared, batch(table, up(2, id=2, Name="b")))
    assert response.status_code == 400
    assert "only by case" in response.json()["error"]
    response = post(shared, batch(table.upper(), up(2, id=2)))
    assert response.status_code == 400
    assert "only by case" in response.json()["error"]
    assert shared.tables()[table] == 1
    assert table.upper() not in shared.tables()


def test_system_named_properties_are_ignored(shared: Emulator, table: str) -> None:
    assert accepted(post(shared, batch(table, up(5, id=1, _sdc_sequence=99, _SDC_TABLE_VERSION=3))))
    assert shared.rows(table, system=True)[0]["_sdc_sequence"] == 5
    assert shared.rows(table) == [{"id": 1}]


def test_accepted_rows_survive_a_restart(emulator: Emulator) -> None:
    assert accepted(post(emulator, batch("t", *(up(i, id=i, name=f"n{i}") for i in range(100)))))
    emulator.restart()
    assert emulator.tables() == {"t": 100}
    assert accepted(post(emulator, batch("t", up(1000, id=0, name="after restart"))))
    assert emulator.rows("t")[-1] == {"id": 0, "name": "after restart"}
    assert emulator.stats()["batches"] == 2


def test_message_count_limits(shared: Emulator, table: str) -> None:
    many = [up(i, id=i) for i in range(20_001)]
    assert accepted(post(shared, batch(table, many[0])))
    assert accepted(post(shared, batch(table, *many[:20_000])))
    assert post(shared, batch(table, *many)).status_code == 400
    assert (
        post(
            shared,
            batch(
                table,
            ),
        ).status_code
        == 400
    )
    assert shared.tables()[table] == 20_000


def test_sequence_limits(shared: Emulator, table: str) -> None:
    assert accepted(post(shared, batch(table, up(2**63 - 1, id=1))))
    response = post(shared, batch(table, up(2**63, id=2)))
    assert response.json() == {
        "error": "Request failed validation:#: sequence can not be above 9223372036854775807"
    }
    assert shared.rows(table, system=True)[0]["_sdc_sequence"] == 2**63 - 1


# Faults


@pytest.mark.parametrize("kind", ["500", "502", "503", "429"])
def test_http_faults(start_emulator: Callable[..., Emulator], kind: str) -> None:
    emulator = start_emulator("--fault", f"{kind}:1", "--fault-limit", "1", "--retry-after", "7")
    faulted = post(emulator, batch("t", up(1, id=1)))
    assert faulted.status_code == int(kind)
    assert faulted.headers["Content-Type"] == JSON
    assert faulted.json()["error"].startswith("Injected fault")
    assert faulted.headers.get("Retry-After") == ("7" if kind in ("429", "503") else None)
    assert emulator.tables() == {}
    assert accepted(post(emulator, batch("t", up(2, id=2))))
    assert emulator.rows("t") == [{"id": 2}]


def test_fault_limit_fails_exactly_the_first_requests(
    start_emulator: Callable[..., Emulator],
) -> None:
    emulator = start_emulator("--fault", "503:1", "--fault-limit", "2")
    with requests.Session() as session:
        statuses = [
            post(emulator, batch("t", up(i, id=i)), session=session).status_code for i in range(4)
        ]
    assert statuses == [503, 503, 201, 201]
    assert emulator.rows("t") == [{"id": 2}, {"id": 3}]


def test_drop_closes_without_an_answer(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator("--fault", "drop:1", "--fault-limit", "1")
    with pytest.raises(requests.ConnectionError):
        post(emulator, batch("t", up(1, id=1)))
    assert emulator.tables() == {}
    assert accepted(post(emulator, batch("t", up(2, id=2))))
    assert emulator.rows("t") == [{"id": 2}]


def test_stall_delays_then_handles_normally(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator("--fault", "stall:1", "--fault-limit", "1", "--stall-seconds", "1")
    with pytest.raises(requests.Timeout):
        post(emulator, batch("t", up(1, id=1)), timeout=0.3)
    started = time.monotonic()
    assert accepted(post(emulator, batch("t", up(2, id=2))))
    assert time.monotonic() - started < 0.5
    deadline = time.monotonic() + 5
    while emulator.tables().get("t") != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(row["id"] for row in emulator.rows("t")) == [1, 2]


def test_latency_adds_time(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator("--latency", "300")
    started = time.monotonic()
    assert accepted(post(emulator, batch("t", up(1, id=1))))
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert requests.get(emulator.url + STATUS_PATH, timeout=10).status_code == 200
    assert time.monotonic() - started < 0.3
    ranged = start_emulator("--latency", "200-250", "--seed", "3")
    started = time.monotonic()
    assert post(ranged, batch("t", up(1, id=1)), path=VALIDATE_PATH).status_code == 200
    assert time.monotonic() - started >= 0.2


# Load, garbage, lifecycle


def _big_batch(table: str, number: int) -> bytes:
    filler = "x" * 360
    messages = [up(i, id=number * 100_000 + i, name=filler) for i in range(8_900)]
    return json.dumps(batch(f"{table}{number % 2}", *messages)).encode()


def test_eight_concurrent_batches_of_4_mb(shared: Emulator, table: str) -> None:
    bodies = [_big_batch(table, number) for number in range(8)]
    assert all(3_800_000 < len(body) < 4_000_000 for body in bodies)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda body: post(shared, body, timeout=120), bodies))
    assert [a.status_code for a in answers] == [201] * 8
    tables = shared.stats()["tables"]
    assert [tables[f"{table}{n}"]["rows"] for n in (0, 1)] == [4 * 8_900] * 2
    assert sum(tables[f"{table}{n}"]["bytes"] for n in (0, 1)) == sum(len(body) for body in bodies)


def _garbage(table: str) -> list[bytes]:
    rng = random.Random(20240501)  # noqa: S311 - reproducible garbage
    bodies = [bytes(rng.getrandbits(8) for _ in range(size)) for size in (1, 10, 1000, 100_000)]
    bodies += [
        b"[" * 200_000,
        b'{"a":' * 50_000,
        b"\x00" * 100,
        b"\xef\xbb\xbf{}",
        b"null",
        b"1e999999",
    ]
    base = batch(table, up(1, id=1))
    message = up(1, id=1)
    wrong: dict[str, list[object]] = {
        "table_name": [None, True, 1.5, -1, "", [], {}],
        "schema": [None, True, 1.5, "x", [], {}, {"properties": []}, {"properties": {"id": 5}}],
        "messages": [None, True, 1.5, "x", [], {}, [None], [[]], [{}]],
        "key_names": [None, True, "id", {}, [None], ["nope"], [["id"]]],
        "table_version": [None, True, 1.5, -1, "1", [], {}],
        "bookmark_names": [None, True, "x", {}, [None], [1]],
    }
    for field, values in wrong.items():
        bodies += [json.dumps({**base, field: value}).encode() for value in values]
    wrong_in_message: dict[str, list[object]] = {
        "action": [None, True, 1, "", "x", [], {}],
        "sequence": [None, True, 1.5, -1, "1", [], {}, 2**64],
        "data": [None, True, 1.5, "x", [], {"id": "1"}, {"id": None}, {}],
    }
    for field, values in wrong_in_message.items():
        bodies += [
            json.dumps({**base, "messages": [{**message, field: value}]}).encode()
            for value in values
        ]
    schemas = [
        {"type": 5},
        {"type": "x"},
        {"minimum": "x"},
        {"$ref": "#/nowhere"},
        {"items": 5},
        {"enum": []},
    ]
    bodies += [
        json.dumps({**base, "schema": {"properties": {"id": schema}}}).encode()
        for schema in schemas
    ]
    return bodies


def test_garbage_gets_4xx_and_the_server_keeps_serving(shared: Emulator, table: str) -> None:
    before = shared.tables()
    with requests.Session() as session:
        for body in _garbage(table):
            for path in (BATCH_PATH, VALIDATE_PATH):
                response = post(shared, body, path=path, session=session)
                assert 400 <= response.status_code < 500, (body[:80], response.text)
                assert "error" in response.json()
        assert session.get(shared.url + STATUS_PATH, timeout=10).status_code == 200
    assert "Traceback" not in shared.stderr()
    assert shared.tables() == before


def test_access_log_without_secrets(shared: Emulator, table: str) -> None:
    assert accepted(post(shared, batch(table, up(1, id=1, name="secret-value"))))
    post(shared, b"{secret-garbage")
    log = shared.stderr()
    assert f"POST /v2/import/batch 201 table={table} messages=1 bytes=" in log
    assert "POST /v2/import/batch 400" in log
    assert TOKEN not in log
    assert "secret-" not in log


def test_sigterm_stops_cleanly(emulator: Emulator) -> None:
    assert accepted(post(emulator, batch("t", up(1, id=1))))
    emulator.stop()
    assert emulator.returncode == 0
    assert emulator.rows("t") == [{"id": 1}]
