"""The installed target against a misbehaving API (tests/httpstub.py on loopback).

A redirect is never taken for an acknowledgement, a server echoing the token never gets it
printed, and a server trickling its answer is cut at the deadline and retried.
"""

from __future__ import annotations

import typing as t

import pytest
from httpstub import HttpStub, answer, redirect, trickle_headers
from targetrun import record, run_target, schema, state

if t.TYPE_CHECKING:
    from pathlib import Path

TOKEN = "tok-7d1e9b2a4c5f"
STATUS_OK = answer(200, {"name": "pipeline.gate", "status": "OK"})
MESSAGES = [
    schema("orders", {"id": {"type": "integer"}}, ["id"]),
    record("orders", {"id": 1}),
    state({"at": 1}),
]


def config(stub: HttpStub, **extra: t.Any) -> dict[str, t.Any]:
    """A target config pointing at the stub."""
    return {"token": TOKEN, "api_url": stub.url, "max_retry_seconds": 20, **extra}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirected_batch_is_never_acknowledged(tmp_path: Path, status: int) -> None:
    with HttpStub(STATUS_OK, redirect(status, "https://elsewhere.example/v2/import/batch")) as stub:
        result = run_target(config(stub), MESSAGES, tmp_path)
        requests = [(e.method, e.path) for e in stub.requests()]
    assert result.returncode == 1
    assert result.states == []  # the batch was not stored: no STATE may move past it
    assert requests == [("GET", "/v2/import/status"), ("POST", "/v2/import/batch")]  # no GET after
    line = result.last_error_line
    assert f"table 'orders': HTTP {status}" in line
    assert f"{stub.url}/v2/import/batch" in line
    assert "https://elsewhere.example/v2/import/batch" in line
    assert "set api_url" in line


def test_a_redirected_status_check_stops_before_any_post(tmp_path: Path) -> None:
    with HttpStub(redirect(301, "https://elsewhere.example/v2/import/status")) as stub:
        result = run_target(config(stub), MESSAGES, tmp_path)
        posts = stub.requests("POST")
    assert result.returncode == 1
    assert posts == []
    assert "HTTP 301" in result.last_error_line
    assert result.states == []


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"error": f"Bad header Authorization: Bearer {TOKEN}"}),
        (401, {"message": f"Not Authorized (token {TOKEN} unknown)"}),
        (400, f"plain text echo: authorization: bearer {TOKEN}; done".encode()),
    ],
    ids=["400-json", "401-json", "400-text"],
)
def test_an_echoed_token_appears_nowhere(tmp_path: Path, status: int, body: object) -> None:
    with HttpStub(STATUS_OK, answer(status, body)) as stub:
        result = run_target(config(stub), MESSAGES, tmp_path)
    assert result.returncode == 1
    assert TOKEN not in result.stderr
    assert TOKEN not in result.stdout
    assert "[redacted]" in result.last_error_line
    assert f"HTTP {status}" in result.last_error_line


def test_an_echoed_token_stays_out_of_retry_lines(tmp_path: Path) -> None:
    echo = answer(503, {"error": f"overloaded; your request had Bearer {TOKEN}"})
    with HttpStub(STATUS_OK, echo) as stub:
        result = run_target(config(stub, max_retry_seconds=2), MESSAGES, tmp_path)
    assert result.returncode == 1
    assert "retrying in" in result.stderr
    assert TOKEN not in result.stderr
    assert "gave up" in result.last_error_line


def test_a_401_says_what_to_check(tmp_path: Path) -> None:
    with HttpStub(STATUS_OK, answer(401, {"message": "Not Authorized"})) as stub:
        result = run_target(config(stub), MESSAGES, tmp_path)
    assert result.returncode == 1
    line = result.last_error_line
    assert "HTTP 401: Not Authorized" in line
    assert "wrong or revoked" in line
    assert stub.url in line


def test_a_trickled_answer_is_cut_at_the_deadline_and_retried(tmp_path: Path) -> None:
    with HttpStub(STATUS_OK, trickle_headers(0.2), answer(201)) as stub:
        result = run_target(config(stub, request_timeout_seconds=1), MESSAGES, tmp_path, timeout=60)
        posts = len(stub.requests("POST"))
    assert result.returncode == 0, result.stderr
    assert posts == 2
    assert "no complete answer" in result.stderr
    assert result.states == [{"at": 1}]


def test_a_refused_connection_names_the_url(tmp_path: Path) -> None:
    with HttpStub() as stub:
        url = stub.url
    result = run_target(
        {"token": TOKEN, "api_url": url, "max_retry_seconds": 1}, MESSAGES, tmp_path, timeout=60,
    )
    assert result.returncode == 1
    assert f"connection to {url}/v2/import/status failed" in result.last_error_line
    assert result.states == []
