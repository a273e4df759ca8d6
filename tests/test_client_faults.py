"""The client on a bad day, against real scripted HTTP servers on loopback (tests/httpstub.py).

Redirects, servers echoing the token, servers trickling bytes or never answering, cancel(),
and the lines a user reads.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import ssl
import threading
import time
import typing as t
from pathlib import Path

import pytest
from httpstub import (
    HttpStub,
    answer,
    endless_body,
    read_slowly,
    redirect,
    self_signed,
    stall,
    trickle_body,
    trickle_headers,
    wait_for,
)

from target_stitch_import.client import ImportApiClient
from target_stitch_import.contract import BATCH_PATH, STATUS_PATH
from target_stitch_import.errors import (
    CancelledError,
    FatalApiError,
    RetriableApiError,
    StitchImportError,
)

TOKEN = "tok-3f9a2c7e1b"
OK = answer(200, {"status": "OK"})
BATCH = b'{"table_name": "t"}'


def client(stub: HttpStub, **kwargs: t.Any) -> ImportApiClient:
    kwargs.setdefault("timeout", 5)
    kwargs.setdefault("max_retry_seconds", 30)
    kwargs.setdefault("sleep", lambda _: None)
    return ImportApiClient(stub.url, TOKEN, **kwargs)


def methods(stub: HttpStub) -> list[tuple[str, str]]:
    return [(e.method, e.path) for e in stub.requests()]


def watchdogs() -> list[threading.Thread]:
    return [th for th in threading.enumerate() if th.name == "import-api-watchdog"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Pushed:
    """``push`` run in a thread: its result or error, and when it ended."""

    def __init__(self, api: ImportApiClient, table: str = "t", **kwargs: t.Any) -> None:
        self.error: BaseException | None = None
        self.ended = 0.0
        self.started = time.monotonic()

        def run() -> None:
            try:
                api.push(table, BATCH, **kwargs)
            except BaseException as exc:  # noqa: BLE001
                self.error = exc
            self.ended = time.monotonic()

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def join(self, seconds: float) -> float:
        self.thread.join(seconds)
        assert not self.thread.is_alive(), "push still running"
        return self.ended - self.started


# 1. Redirects are never followed


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirected_post_is_fatal_and_never_followed(status: int) -> None:
    with HttpStub(OK, redirect(status, "https://elsewhere.example/v2/import/batch"), answer(201)) as stub:
        with client(stub) as api, pytest.raises(FatalApiError) as caught:
            api.push("t", BATCH)
        assert methods(stub) == [("GET", STATUS_PATH), ("POST", BATCH_PATH)]
    message = str(caught.value)
    assert caught.value.status == status
    assert f"redirected POST {stub.url}{BATCH_PATH} to https://elsewhere.example/v2/import/batch" in message
    assert "nothing was stored" in message
    assert "set api_url to the final URL (https://elsewhere.example)" in message
    assert "\n" not in message


def test_a_relative_redirect_names_the_full_location() -> None:
    with HttpStub(redirect(302, "/other/place"), answer(201)) as stub:
        with client(stub) as api, pytest.raises(FatalApiError) as caught:
            api.push("t", BATCH, validate_only=True)
        assert len(stub.requests()) == 1
    assert f"to {stub.url}/other/place;" in str(caught.value)
    assert f"check api_url ({stub.url})" in str(caught.value)


def test_a_redirected_status_check_is_fatal() -> None:
    with HttpStub(redirect(301, "https://elsewhere.example/v2/import/status"), OK) as stub:
        with client(stub) as api, pytest.raises(FatalApiError) as caught:
            api.push("t", BATCH)
        assert methods(stub) == [("GET", STATUS_PATH)]
    assert "HTTP 301" in str(caught.value)
    assert f"redirected GET {stub.url}{STATUS_PATH}" in str(caught.value)


# 2. The token never appears in any message


def test_an_echoed_token_is_redacted_from_fatal_errors() -> None:
    body = {"error": f"bad header Authorization: Bearer {TOKEN}"}
    with HttpStub(answer(400, body)) as stub, client(stub) as api, pytest.raises(FatalApiError) as caught:
        api.push("t", BATCH, validate_only=True)
    assert TOKEN not in str(caught.value)
    assert "bad header Authorization: Bearer [redacted]" in str(caught.value)


def test_an_echoed_token_is_redacted_from_retry_lines_and_the_give_up(caplog: pytest.LogCaptureFixture) -> None:
    body = f"upstream said:\nAuthorization: bearer {TOKEN}\nand {TOKEN}".encode()
    caplog.set_level(logging.WARNING, logger="target_stitch_import.client")
    with (
        HttpStub(answer(503, body, {"Content-Type": "text/plain"})) as stub,
        client(stub, max_retry_seconds=0.5, backoff_factor=0.01, sleep=time.sleep) as api,
        pytest.raises(FatalApiError) as caught,
    ):
        api.push("t", BATCH, validate_only=True)
    assert caplog.records, "no retry was logged"
    for line in [*caplog.messages, str(caught.value)]:
        assert TOKEN not in line
        assert "\n" not in line
    assert "Authorization: Bearer [redacted] and [redacted]" in str(caught.value)


# 3. Every try has an overall deadline


def test_trickled_headers_end_the_try_at_the_deadline_and_a_later_answer_is_taken(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="target_stitch_import.client")
    with HttpStub(trickle_headers(0.2), answer(201, {"status": "OK", "message": "Batch Accepted!"})) as stub:
        with client(stub, timeout=1) as api:
            started = time.monotonic()
            assert api.push("t", BATCH, validate_only=True) == {"status": "OK", "message": "Batch Accepted!"}
            assert time.monotonic() - started < 3
            assert api.retries == 1
        assert len(stub.requests("POST")) == 2
    assert f"no complete answer from {stub.url}/v2/import/validate within 1 s" in caplog.text


def test_a_trickled_error_body_ends_the_try_at_the_deadline() -> None:
    with HttpStub(trickle_body(503, 0.2), answer(201)) as stub, client(stub, timeout=1) as api:
        started = time.monotonic()
        api.push("t", BATCH, validate_only=True)
        assert time.monotonic() - started < 3
        assert len(stub.requests("POST")) == 2


def test_a_2xx_whose_body_trickles_is_an_acknowledgement(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="target_stitch_import.client")
    with HttpStub(trickle_body(201, 0.2), answer(500)) as stub, client(stub, timeout=1) as api:
        started = time.monotonic()
        assert api.push("t", BATCH, validate_only=True) == {}
        assert time.monotonic() - started < 3
        assert len(stub.requests("POST")) == 1
    assert "HTTP 201 (acknowledged)" in caplog.text


def test_an_endless_2xx_answer_is_an_acknowledgement_read_no_further() -> None:
    with HttpStub(endless_body(201), answer(500)) as stub, client(stub, timeout=30) as api:
        started = time.monotonic()
        assert api.push("t", BATCH, validate_only=True) == {}
        assert time.monotonic() - started < 10  # a megabyte, not until the deadline
        assert len(stub.requests("POST")) == 1


def test_an_endless_5xx_answer_is_retried_and_a_huge_4xx_is_one_short_line() -> None:
    with HttpStub(endless_body(503), answer(201)) as stub, client(stub, timeout=30) as api:
        started = time.monotonic()
        api.push("t", BATCH, validate_only=True)
        assert time.monotonic() - started < 10
        assert len(stub.requests("POST")) == 2
    with HttpStub(endless_body(400)) as stub, client(stub, timeout=30) as api:
        with pytest.raises(FatalApiError) as raised:
            api.push("t", BATCH, validate_only=True)
        assert raised.value.status == 400
        assert len(str(raised.value)) < 1_000


def test_a_server_reading_the_upload_slowly_ends_the_try_at_the_deadline() -> None:
    body = b"x" * 4_000_000
    with HttpStub(read_slowly(0.2), answer(201), receive_buffer=4096) as stub, client(stub, timeout=1) as api:
        started = time.monotonic()
        api.push("t", body, validate_only=True)
        assert time.monotonic() - started < 3
        posts = stub.requests("POST")
        assert len(posts) == 2
        assert posts[1].body == body


def test_a_server_that_never_answers_is_cut_at_the_deadline() -> None:
    with HttpStub(stall) as stub, client(stub, timeout=0.5) as api:
        started = time.monotonic()
        with pytest.raises(RetriableApiError) as caught:
            api.status()
        assert time.monotonic() - started < 2
    assert f"no complete answer from {stub.url}{STATUS_PATH} within 0.5 s" in str(caught.value)


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server TLS context whose self-signed certificate the client trusts."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, context = self_signed(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    return context


def test_over_https_a_trickling_answer_is_cut_and_keep_alive_works(tls: ssl.SSLContext) -> None:
    with HttpStub(OK, trickle_headers(0.2), answer(201), tls=tls) as stub, client(stub, timeout=1) as api:
        started = time.monotonic()
        api.push("t", BATCH)
        assert time.monotonic() - started < 3
        for _ in range(3):
            api.push("t", BATCH)
        assert stub.connections == 2
        assert len(stub.requests("POST")) == 5


def assert_cancel_aborts_the_stalled_post(stub: HttpStub, api: ImportApiClient) -> None:
    """A push whose answer stalls ends within a second of ``cancel()``, as CancelledError."""
    pushed = Pushed(api)
    assert wait_for(lambda: len(stub.requests("POST")) == 1)
    cancelled = time.monotonic()
    api.cancel()
    pushed.join(5)
    assert pushed.ended - cancelled < 1
    assert isinstance(pushed.error, CancelledError)


def test_over_https_cancel_aborts_a_stalled_request(tls: ssl.SSLContext) -> None:
    with HttpStub(OK, stall, tls=tls) as stub, client(stub, timeout=30) as api:
        assert_cancel_aborts_the_stalled_post(stub, api)


def test_keep_alive_still_reuses_one_connection() -> None:
    with HttpStub(OK, answer(201)) as stub, client(stub) as api:
        for _ in range(5):
            api.push("t", BATCH)
        assert stub.connections == 1
        assert len(stub.requests()) == 6


def test_after_a_cut_the_next_connection_is_reused_again() -> None:
    with HttpStub(OK, trickle_headers(0.2), answer(201)) as stub, client(stub, timeout=1) as api:
        for _ in range(4):
            api.push("t", BATCH)
        assert stub.connections == 2  # the cut one, then one for everything after it
        assert len(stub.requests("POST")) == 5


FDS = Path("/proc/self/fd")


def open_fds() -> int:
    return sum(1 for _ in FDS.iterdir())


@pytest.mark.skipif(not FDS.is_dir(), reason="needs /proc")
def test_no_thread_or_socket_is_left_behind_per_request() -> None:
    with HttpStub(OK, trickle_headers(0.05), answer(201), trickle_headers(0.05), answer(201)) as stub:
        before = open_fds()
        api = client(stub, timeout=0.3)
        for _ in range(10):
            api.push("t", BATCH)
        assert len(watchdogs()) == 1
        # One pooled client socket and its server side remain; the cut ones are closed.
        assert wait_for(lambda: open_fds() <= before + 2), (before, open_fds())
        api.close()
        assert watchdogs() == []
        assert wait_for(lambda: open_fds() <= before), (before, open_fds())


# 4. Stopping


def test_cancel_ends_a_retry_after_wait_at_once() -> None:
    with HttpStub(answer(503, {"error": "down"}, {"Retry-After": "30"})) as stub:
        api = client(stub, max_retry_seconds=120, sleep=None)
        pushed = Pushed(api, "orders", validate_only=True)
        time.sleep(0.3)
        api.cancel()
        assert pushed.join(5) < 1.3
        assert isinstance(pushed.error, CancelledError)
        assert isinstance(pushed.error, StitchImportError)
        assert str(pushed.error) == "stopped before the Import API acknowledged table 'orders'"
        assert len(stub.requests()) == 1
        api.close()


def test_cancel_aborts_a_stalled_request_at_once() -> None:
    with HttpStub(OK, stall) as stub:
        api = client(stub, timeout=30)
        assert_cancel_aborts_the_stalled_post(stub, api)
        api.close()


def test_cancel_aborts_a_stalled_status_check_and_names_the_table() -> None:
    with HttpStub(stall) as stub:
        api = client(stub, timeout=30)
        pushed = Pushed(api, "users")
        assert wait_for(lambda: len(stub.requests()) == 1)
        api.cancel()
        assert pushed.join(5) < 2
        assert str(pushed.error) == "stopped before the Import API acknowledged table 'users'"
        api.close()


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_cancel_from_a_signal_handler_aborts_the_main_threads_request() -> None:
    with HttpStub(OK, stall) as stub, client(stub, timeout=30) as api:
        previous = signal.signal(signal.SIGALRM, lambda *_: api.cancel())
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            started = time.monotonic()
            with pytest.raises(CancelledError):
                api.push("t", BATCH)
            assert time.monotonic() - started < 1.3
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        assert len(stub.requests("POST")) == 1


def test_cancel_from_many_threads_is_idempotent_and_no_new_try_starts() -> None:
    with HttpStub(OK, answer(201)) as stub, client(stub) as api:
        api.push("t", BATCH)
        cancellers = [threading.Thread(target=api.cancel) for _ in range(8)]
        for th in cancellers:
            th.start()
        for th in cancellers:
            th.join()
        api.cancel()
        with pytest.raises(CancelledError):
            api.push("t", BATCH)
        with pytest.raises(CancelledError):
            api.status()
        assert len(stub.requests()) == 2


def test_a_given_sleep_is_still_followed_by_the_cancel_check() -> None:
    with HttpStub(answer(503)) as stub:
        api: ImportApiClient

        def sleep(_: float) -> None:
            api.cancel()

        api = client(stub, sleep=sleep)
        with pytest.raises(CancelledError):
            api.push("t", BATCH, validate_only=True)
        assert len(stub.requests()) == 1
        api.close()


# 5. Lines a user can act on


def test_401_says_what_may_be_wrong_with_the_token() -> None:
    with (
        HttpStub(answer(401, {"message": "Not Authorized"})) as stub,
        client(stub) as api,
        pytest.raises(FatalApiError) as caught,
    ):
        api.push("t", BATCH, validate_only=True)
    assert str(caught.value) == (
        "table 't': HTTP 401: Not Authorized; the token is wrong or revoked, or belongs to "
        f"another region than region/api_url ({stub.url})"
    )


def test_403_keeps_stitchs_message_and_adds_a_hint() -> None:
    body = {"error": "Forbidden", "errors": {"error": "Connection is not active."}}
    with HttpStub(answer(403, body)) as stub, client(stub) as api, pytest.raises(FatalApiError) as caught:
        api.push("t", BATCH, validate_only=True)
    message = str(caught.value)
    assert message.startswith("table 't': HTTP 403: Forbidden: Connection is not active.; ")
    assert "integration is active" in message


def test_a_refused_connection_names_the_url_and_the_give_up_keeps_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        ImportApiClient(url, TOKEN, timeout=1, max_retry_seconds=0) as api,
        pytest.raises(FatalApiError) as caught,
    ):
        api.push("t", BATCH, validate_only=True)
    message = str(caught.value)
    assert message.startswith(f"table 't': no response: connection to {url}/v2/import/validate failed (ConnectionError)")
    assert f"gave up on POST {url}/v2/import/validate after 1 try within" in message
    assert TOKEN not in message


def test_the_give_up_after_5xx_names_the_url() -> None:
    with (
        HttpStub(OK, answer(502, {"error": "Bad Gateway"})) as stub,
        client(stub, max_retry_seconds=0) as api,
        pytest.raises(FatalApiError) as caught,
    ):
        api.push("t", BATCH)
    assert str(caught.value) == (
        f"table 't': HTTP 502: Bad Gateway (gave up on POST {stub.url}{BATCH_PATH} after 1 try "
        "within max_retry_seconds=0)"
    )
