"""Unit tests of the client's pure helpers: Stitch's message and Retry-After."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests

from target_stitch_import.client import api_message, redact, retry_after_seconds


def response(status: int, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    made = requests.Response()
    made.status_code = status
    made._content = body
    made.headers.update(headers or {})
    made.reason = "Reason"
    return made


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": "Record 0 did not conform to schema: #/n: expected: Integer, found: String"}',
         "Record 0 did not conform to schema: #/n: expected: Integer, found: String"),
        (b'{"message": "Not Authorized"}', "Not Authorized"),
        (b'{"error": "Forbidden", "errors": {"error": "Connection is not active."}}',
         "Forbidden: Connection is not active."),
        (b'{"status": "ERROR", "message": "Request rejected: request size (5 bytes) exceeds the maximum"}',
         "Request rejected: request size (5 bytes) exceeds the maximum"),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "Reason"),
        (b'"just text"', "just text"),
        (b"x" * 5000, "x" * 500),
    ],
)
def test_api_message(body: bytes, message: str) -> None:
    assert api_message(response(400, body)) == message


def test_retry_after_seconds() -> None:
    assert retry_after_seconds(response(429, b"", {"Retry-After": "7"})) == 7
    assert retry_after_seconds(response(429, b"", {"Retry-After": "-3"})) == 0
    assert retry_after_seconds(response(429, b"")) is None
    assert retry_after_seconds(response(429, b"", {"Retry-After": "soon"})) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    waited = retry_after_seconds(response(503, b"", {"Retry-After": later}))
    assert waited is not None
    assert 25 <= waited <= 31


TOKEN = "tok-3f9a2c7e1b"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (f"bad header Authorization: Bearer {TOKEN}", "bad header Authorization: Bearer [redacted]"),
        (f"token {TOKEN} is unknown", "token [redacted] is unknown"),
        (f"{TOKEN}{TOKEN}", "[redacted][redacted]"),
        ("authorization: BEARER abc.def-ghi_jkl/+=", "authorization: Bearer [redacted]"),
        ('{"h": "Bearer other-credential"}', '{"h": "Bearer [redacted]"}'),
        ("bearer\tX1 and Bearer Y2", "Bearer [redacted] and Bearer [redacted]"),
        ("Bearer [redacted]", "Bearer [redacted]"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redact(text: str, redacted: str) -> None:
    assert redact(text, TOKEN) == redacted


def test_redact_with_an_empty_token_still_hides_bearer_values() -> None:
    assert redact("Bearer abc and plain", "") == "Bearer [redacted] and plain"


@pytest.mark.parametrize(
    "body",
    [
        f'{{"error": "bad header Authorization: Bearer {TOKEN}"}}'.encode(),
        f"plain text echoing {TOKEN} back".encode(),
        f'{{"message": "{"x" * 490} {TOKEN}"}}'.encode(),  # the token straddles the 500-character cut
        f'["echo", "{TOKEN}"]'.encode(),
    ],
)
def test_api_message_never_contains_the_token(body: bytes) -> None:
    message = api_message(response(401, body), TOKEN)
    assert TOKEN not in message
    assert TOKEN[:6] not in message
    assert len(message) <= 500


def test_api_message_is_one_line() -> None:
    assert api_message(response(502, b"<html>\n<h1>Bad\r\nGateway</h1>\n</html>")) == "<html> <h1>Bad Gateway</h1> </html>"
