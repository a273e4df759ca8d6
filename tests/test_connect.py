"""``target-stitch-import connect`` (Connect API credentials) and the emulator's ``/v4``.

The commands run as a user runs them (the installed CLI, a subprocess, the Connect token in
``STITCH_CONNECT_TOKEN``) against a real emulator started with ``--connect-token``; the
tokens they create load records through the target. What the emulator can not be made to
do (echo a token, answer HTML, redirect, fail a revocation) comes from a small scripted
Connect API in this file.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import typing as t
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from targetrun import COMMAND, record, run_target, schema

from target_stitch_import.contract import BATCH_PATH, VALIDATE_PATH
from target_stitch_import.emulator.app import schema_name
from target_stitch_import.emulator.storage import Storage, token_digest

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from conftest import Emulator

CONNECT_TOKEN = "connect-secret-0123456789"
PREFIX = "target-stitch-import connect: error: "
EMULATOR_COMMAND = [sys.executable, "-m", "target_stitch_import.emulator.cli"]
BODY = {
    "table_name": "things",
    "key_names": ["id"],
    "schema": {"properties": {"id": {"type": "integer"}}},
    "messages": [{"action": "upsert", "sequence": 1, "data": {"id": 1}}],
}


@dataclass
class Done:
    """What one ``connect`` command printed and returned."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def document(self) -> dict[str, t.Any]:
        """The one JSON object of ``--json`` on stdout."""
        lines = self.stdout.splitlines()
        assert len(lines) == 1, self.stdout
        value = json.loads(lines[0])
        assert isinstance(value, dict)
        return value

    @property
    def error_line(self) -> str:
        """The one error line (exit 1, no traceback, nothing else on stderr)."""
        assert self.returncode == 1, self
        assert "Traceback" not in self.output
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith(PREFIX), lines[0]
        return lines[0]


def connect(*args: object, token: str | None = CONNECT_TOKEN, timeout: float = 60) -> Done:
    """Run ``target-stitch-import connect ARGS`` with the Connect token in the environment."""
    env = {k: v for k, v in os.environ.items() if k != "STITCH_CONNECT_TOKEN"}
    if token is not None:
        env["STITCH_CONNECT_TOKEN"] = token
    done = subprocess.run(
        [*COMMAND, "connect", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    return Done(done.returncode, done.stdout, done.stderr)


def batch(url: str, token: str, path: str = BATCH_PATH) -> int:
    """POST a one-record batch with ``token``; return the status."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return requests.post(url + path, json=BODY, headers=headers, timeout=30).status_code


def v4(url: str, method: str, path: str, body: object = None, token: str = CONNECT_TOKEN) -> requests.Response:
    """One Connect API request to the emulator."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, url + "/v4" + path, json=body, headers=headers, timeout=30)


def closed_port_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_no_secret(done: Done, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in done.output


@pytest.fixture
def connect_emulator(start_emulator: Callable[..., Emulator]) -> Emulator:
    """An emulator serving /v4 with ``CONNECT_TOKEN`` (and accepting ``test-token`` on /v2)."""
    return start_emulator("--connect-token", CONNECT_TOKEN)


def new_source(emulator: Emulator, display_name: str = "Import API") -> int:
    done = connect("create-source", "--display-name", display_name, "--api-url", emulator.url, "--json")
    assert done.returncode == 0, done
    return int(done.document["source_id"])


def new_token(emulator: Emulator, source_id: int) -> tuple[int, str]:
    done = connect("create-token", source_id, "--api-url", emulator.url, "--json")
    assert done.returncode == 0, done
    return int(done.document["token_id"]), str(done.document["token"])


def token_ids(emulator: Emulator, source_id: int) -> list[int]:
    done = connect("list-tokens", source_id, "--api-url", emulator.url, "--json")
    assert done.returncode == 0, done
    return [item["id"] for item in done.document["tokens"]]


def config_file(tmp_path: Path) -> Path:
    """A config file's path in a directory of its own (the emulator's files are elsewhere)."""
    directory = tmp_path / "configs"
    directory.mkdir(exist_ok=True)
    return directory / "config.json"


def write_json(path: Path, value: dict[str, t.Any]) -> None:
    path.write_text(json.dumps(value), encoding="utf-8")
    path.chmod(0o644)


# The commands against the emulator


def test_create_source_and_token_then_load_a_record(connect_emulator: Emulator, tmp_path: Path) -> None:
    url = connect_emulator.url
    created = connect("create-source", "--display-name", "Import API", "--api-url", url)
    assert created.returncode == 0, created
    lines = created.stdout.splitlines()
    assert lines[0].startswith("source id: ")
    assert lines[1] == "schema: import_api"
    source_id = int(lines[0].removeprefix("source id: "))

    made = connect("create-token", source_id, "--api-url", url)
    assert made.returncode == 0, made
    token_id_line, token_line = made.stdout.splitlines()
    token = token_line.removeprefix("token: ")
    assert token_id_line.startswith("token id: ")
    assert token
    assert token != token_line
    assert "shown this once" in made.stderr
    assert_no_secret(created, CONNECT_TOKEN)
    assert_no_secret(made, CONNECT_TOKEN)

    result = run_target(
        {"token": token, "api_url": url},
        [schema("things", {"id": {"type": "integer"}}, ["id"]), record("things", {"id": 7})],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert connect_emulator.rows("things") == [{"id": 7}]
    assert batch(url, "test-token") == 201  # the --token ones stay accepted
    assert batch(url, "any-other-token") == 401


def test_create_source_json_and_errors(connect_emulator: Emulator) -> None:
    url = connect_emulator.url
    done = connect("create-source", "--display-name", "Shop Orders (EU)", "--api-url", url, "--json")
    assert done.returncode == 0, done
    assert done.document["name"] == "shop_orders__eu_"
    assert done.document["display_name"] == "Shop Orders (EU)"
    assert done.document["current_step_type"] == "fully_configured"
    again = connect("create-source", "--display-name", "Shop Orders (EU)", "--api-url", url)
    assert "HTTP 400" in again.error_line
    assert "already exists" in again.error_line


def test_create_token_writes_the_config(connect_emulator: Emulator, tmp_path: Path) -> None:
    url = connect_emulator.url
    source_id = new_source(connect_emulator)
    config = config_file(tmp_path)
    write_json(config, {"api_url": url, "max_batch_age_seconds": 5})

    done = connect("create-token", source_id, "--write-config", config, "--api-url", url)
    assert done.returncode == 0, done
    written = json.loads(config.read_text(encoding="utf-8"))
    assert set(written) == {"api_url", "max_batch_age_seconds", "token", "connect_token_id"}
    assert written["max_batch_age_seconds"] == 5
    assert done.stdout == f"token id: {written['connect_token_id']} (written to {config})\n"
    assert_no_secret(done, written["token"], CONNECT_TOKEN)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert [p.name for p in config.parent.iterdir()] == ["config.json"]  # no temporary file left
    assert batch(url, written["token"]) == 201

    again = connect("create-token", source_id, "--write-config", config, "--api-url", url, "--json")
    assert again.returncode == 0, again
    assert again.document["token_id"] != written["connect_token_id"]
    assert "token" not in again.document
    assert "stays live" in again.stderr  # the token it replaced was not revoked
    assert_no_secret(again, written["token"], json.loads(config.read_text())["token"])


def test_list_and_revoke(connect_emulator: Emulator) -> None:
    url = connect_emulator.url
    source_id = new_source(connect_emulator)
    first_id, first = new_token(connect_emulator, source_id)
    second_id, second = new_token(connect_emulator, source_id)

    listed = connect("list-tokens", source_id, "--api-url", url)
    assert listed.returncode == 0, listed
    assert listed.stdout.splitlines()[0] == "token id  created at"
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == [str(first_id), str(second_id)]
    as_json = connect("list-tokens", source_id, "--api-url", url, "--json").document
    assert [item["id"] for item in as_json["tokens"]] == [first_id, second_id]
    assert all(item["created_at"].endswith("Z") for item in as_json["tokens"])
    assert_no_secret(listed, first, second, CONNECT_TOKEN)

    assert batch(url, first) == 201
    revoked = connect("revoke-token", source_id, first_id, "--api-url", url, "--json")
    assert revoked.returncode == 0, revoked
    assert revoked.document == {"source_id": source_id, "token_id": first_id, "revoked": True}
    assert batch(url, first) == 401
    assert batch(url, first, VALIDATE_PATH) == 401
    assert batch(url, second) == 201
    assert token_ids(connect_emulator, source_id) == [second_id]

    again = connect("revoke-token", source_id, first_id, "--api-url", url)
    assert f"unknown source {source_id} or token {first_id}" in again.error_line


def test_rotate(connect_emulator: Emulator, tmp_path: Path) -> None:
    url = connect_emulator.url
    source_id = new_source(connect_emulator)
    config = config_file(tmp_path)
    write_json(config, {"api_url": url, "validate_records": False, "stream_maps": {}})
    assert connect("create-token", source_id, "--write-config", config, "--api-url", url).returncode == 0
    before = json.loads(config.read_text(encoding="utf-8"))
    config.chmod(0o644)  # rotation writes 0600 whatever the mode was

    done = connect("rotate", source_id, "--config", config, "--api-url", url)
    assert done.returncode == 0, done
    after = json.loads(config.read_text(encoding="utf-8"))
    assert after["token"] != before["token"]
    assert after["connect_token_id"] != before["connect_token_id"]
    assert {k: v for k, v in after.items() if k not in ("token", "connect_token_id")} == {
        "api_url": url, "validate_records": False, "stream_maps": {},
    }
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert done.stdout.splitlines() == [
        f"token {after['connect_token_id']} written to {config} (accepted by the Import API at {url})",
        f"old token {before['connect_token_id']} revoked",
    ]
    assert_no_secret(done, before["token"], after["token"], CONNECT_TOKEN)
    assert batch(url, before["token"]) == 401
    assert batch(url, after["token"]) == 201
    assert token_ids(connect_emulator, source_id) == [after["connect_token_id"]]

    # The target runs with the rotated file as it is (connect_token_id is ignored).
    result = run_target(after, [schema("t", {"id": {"type": "integer"}}, ["id"]), record("t", {"id": 1})], tmp_path)
    assert result.returncode == 0, result.stderr

    twice = connect("rotate", source_id, "--config", config, "--api-url", url, "--json")
    assert twice.returncode == 0, twice
    document = twice.document
    assert document["old_token_id"] == after["connect_token_id"]
    assert document["old_token_revoked"] is True
    assert document["new_token_id"] == json.loads(config.read_text())["connect_token_id"]
    assert_no_secret(twice, after["token"], json.loads(config.read_text())["token"])


def test_rotate_needs_the_old_token_id(connect_emulator: Emulator, tmp_path: Path) -> None:
    url = connect_emulator.url
    source_id = new_source(connect_emulator)
    old_id, old = new_token(connect_emulator, source_id)
    config = config_file(tmp_path)
    write_json(config, {"token": old, "api_url": url})
    text = config.read_bytes()

    refused = connect("rotate", source_id, "--config", config, "--api-url", url)
    assert "--old-token-id" in refused.error_line
    assert config.read_bytes() == text
    assert token_ids(connect_emulator, source_id) == [old_id]  # nothing was created
    assert_no_secret(refused, old)

    done = connect("rotate", source_id, "--config", config, "--old-token-id", old_id, "--api-url", url)
    assert done.returncode == 0, done
    assert batch(url, old) == 401
    assert batch(url, json.loads(config.read_text())["token"]) == 201


def test_rotate_refuses_a_token_id_that_is_not_live(connect_emulator: Emulator, tmp_path: Path) -> None:
    url = connect_emulator.url
    source_id = new_source(connect_emulator)
    old_id, old = new_token(connect_emulator, source_id)
    config = config_file(tmp_path)
    write_json(config, {"token": old, "api_url": url, "connect_token_id": old_id + 100})
    text = config.read_bytes()
    done = connect("rotate", source_id, "--config", config, "--api-url", url)
    assert f"token {old_id + 100} is no live token of source {source_id}" in done.error_line
    assert config.read_bytes() == text
    assert token_ids(connect_emulator, source_id) == [old_id]


@pytest.mark.parametrize("import_api", ["refusing", "unreachable"])
def test_rotation_failing_halfway_changes_nothing(
    start_emulator: Callable[..., Emulator], connect_emulator: Emulator, tmp_path: Path, import_api: str,
) -> None:
    """The new token can not be proven (the config's Import API refuses it, or is down)."""
    url = connect_emulator.url
    source_id = new_source(connect_emulator)
    import_url = start_emulator(token="someone-else").url if import_api == "refusing" else closed_port_url()
    config = config_file(tmp_path)
    write_json(config, {"api_url": url})
    assert connect("create-token", source_id, "--write-config", config, "--api-url", url).returncode == 0
    settings = json.loads(config.read_text(encoding="utf-8"))
    write_json(config, {**settings, "api_url": import_url})
    text = config.read_bytes()
    mode = stat.S_IMODE(config.stat().st_mode)

    done = connect("rotate", source_id, "--config", config, "--api-url", url, "--timeout", 5)
    line = done.error_line
    assert import_url in line
    assert "HTTP 401" in line if import_api == "refusing" else "cannot connect" in line
    assert "is unchanged and its token still works" in line
    assert "was revoked again" in line
    assert done.stdout == ""
    assert config.read_bytes() == text
    assert stat.S_IMODE(config.stat().st_mode) == mode
    assert [p.name for p in config.parent.iterdir()] == ["config.json"]
    assert batch(url, settings["token"]) == 201  # the old token still works
    assert token_ids(connect_emulator, source_id) == [settings["connect_token_id"]]
    assert_no_secret(done, settings["token"], CONNECT_TOKEN)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """No entry can be added to ``directory`` meanwhile (root: the immutable flag; else 0500)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        lock, unlock = ["chattr", "+i", str(directory)], ["chattr", "-i", str(directory)]
        if subprocess.run(lock, capture_output=True, check=False).returncode != 0:
            pytest.skip("root, and no chattr +i here: every directory is writable")
        try:
            yield
        finally:
            subprocess.run(unlock, check=True)
        return
    directory.chmod(0o500)
    try:
        yield
    finally:
        directory.chmod(0o700)


def test_rotation_into_an_unwritable_directory_changes_nothing(connect_emulator: Emulator, tmp_path: Path) -> None:
    url = connect_emulator.url
    source_id = new_source(connect_emulator)
    config = config_file(tmp_path)
    write_json(config, {"api_url": url})
    assert connect("create-token", source_id, "--write-config", config, "--api-url", url).returncode == 0
    old = json.loads(config.read_text(encoding="utf-8"))
    text = config.read_bytes()
    with locked(config.parent):
        done = connect("rotate", source_id, "--config", config, "--api-url", url)
    line = done.error_line
    assert f"cannot write {config}" in line
    assert "is unchanged and its token still works" in line
    assert "was revoked again" in line
    assert config.read_bytes() == text
    assert [p.name for p in config.parent.iterdir()] == ["config.json"]
    assert batch(url, old["token"]) == 201
    assert token_ids(connect_emulator, source_id) == [old["connect_token_id"]]
    assert_no_secret(done, old["token"])


# Errors


def test_wrong_connect_token(connect_emulator: Emulator) -> None:
    done = connect("list-tokens", 1, "--api-url", connect_emulator.url, token="wrong-connect-token")
    line = done.error_line
    assert "refused the Connect token" in line
    assert "HTTP 401" in line
    assert "Stitch Enterprise" in line
    assert_no_secret(done, "wrong-connect-token")


def test_emulator_without_connect_token_refuses_v4(emulator: Emulator) -> None:
    done = connect("create-source", "--display-name", "x", "--api-url", emulator.url)
    assert "Stitch Enterprise" in done.error_line
    assert v4(emulator.url, "GET", "/source-types/import_api").status_code == 401


def test_missing_connect_token() -> None:
    done = connect("list-tokens", 1, "--api-url", "http://127.0.0.1:9", token=None)
    assert "set STITCH_CONNECT_TOKEN" in done.error_line
    assert "Stitch Enterprise" in done.error_line


def test_unknown_source(connect_emulator: Emulator, tmp_path: Path) -> None:
    url = connect_emulator.url
    for args in (("list-tokens", 4242), ("create-token", 4242), ("revoke-token", 4242, 1)):
        done = connect(*args, "--api-url", url)
        assert "unknown source 4242" in done.error_line
    config = config_file(tmp_path)
    write_json(config, {"token": "old-token", "connect_token_id": 1, "api_url": url})
    done = connect("rotate", 4242, "--config", config, "--api-url", url)
    assert "unknown source 4242" in done.error_line
    assert_no_secret(done, "old-token")


def test_unreachable_url() -> None:
    url = closed_port_url()
    done = connect("create-source", "--display-name", "x", "--api-url", url)
    assert f"cannot connect to {url}/v4/source-types/import_api" in done.error_line
    assert_no_secret(done, CONNECT_TOKEN)


def test_bad_arguments_and_help() -> None:
    assert connect("--help").returncode == 0
    assert "rotate" in connect("--help").stdout
    assert connect("list-tokens", "abc").returncode == 2
    assert connect("create-source", "--display-name", "x", "--api-url", "ftp://x").returncode == 2


# A scripted Connect API: what the emulator can not be made to do


Route = tuple[int, dict[str, str], bytes]


class ScriptedApi:
    """A loopback HTTP server answering (method, path) from a table; records the requests."""

    def __init__(self, routes: dict[tuple[str, str], Route]) -> None:
        self.routes = routes
        self.seen: list[tuple[str, str, str]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                api.seen.append((self.command, self.path, self.headers.get("Authorization", "")))
                status, headers, body = api.routes.get((self.command, self.path), (404, {}, b"{}"))
                body = body.replace(b"$AUTH", self.headers.get("Authorization", "").encode())
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = answer  # noqa: N815 - http.server's names

            def log_message(self, format: str, *args: t.Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def scripted() -> Iterator[Callable[[dict[tuple[str, str], Route]], ScriptedApi]]:
    started: list[ScriptedApi] = []

    def start(routes: dict[tuple[str, str], Route]) -> ScriptedApi:
        started.append(ScriptedApi(routes))
        return started[-1]

    yield start
    for api in started:
        api.stop()


JSON = {"Content-Type": "application/json"}


def test_server_echoes_are_redacted(scripted: Callable[..., ScriptedApi]) -> None:
    echo = json.dumps({"message": f"you sent $AUTH; raw {CONNECT_TOKEN} and Bearer abc.def"}).encode()
    api = scripted({("GET", "/v4/sources/1/tokens"): (500, JSON, echo), ("GET", "/v4/source-types/import_api"): (401, JSON, echo)})
    done = connect("list-tokens", 1, "--api-url", api.url)
    assert "HTTP 500" in done.error_line
    assert "[redacted]" in done.error_line
    assert_no_secret(done, CONNECT_TOKEN, "abc.def")
    refused = connect("create-source", "--display-name", "x", "--api-url", api.url)
    assert "Stitch Enterprise" in refused.error_line
    assert_no_secret(refused, CONNECT_TOKEN)
    assert api.seen[0][2] == f"Bearer {CONNECT_TOKEN}"


def test_non_json_answer(scripted: Callable[..., ScriptedApi]) -> None:
    api = scripted({("GET", "/v4/sources/1/tokens"): (200, {"Content-Type": "text/html"}, b"<html>login</html>")})
    done = connect("list-tokens", 1, "--api-url", api.url)
    assert f"GET {api.url}/v4/sources/1/tokens answered HTTP 200 with a body that is not JSON" in done.error_line


def test_redirects_are_not_followed(scripted: Callable[..., ScriptedApi]) -> None:
    api = scripted({("POST", "/v4/sources/1/tokens"): (302, {"Location": "/elsewhere"}, b"")})
    done = connect("create-token", 1, "--api-url", api.url)
    assert "redirected (HTTP 302) to /elsewhere" in done.error_line
    assert [(method, path) for method, path, _ in api.seen] == [("POST", "/v4/sources/1/tokens")]


def test_rotation_whose_old_token_cannot_be_revoked(
    scripted: Callable[..., ScriptedApi], start_emulator: Callable[..., Emulator], tmp_path: Path,
) -> None:
    """The new token is in the file, the old one is still live: one line, exit 1."""
    new = "new-token-from-the-scripted-api"
    api = scripted({
        ("GET", "/v4/sources/3/tokens"): (200, JSON, b'[{"id": 5, "created_at": "2024-01-01T00:00:00Z"}]'),
        ("POST", "/v4/sources/3/tokens"): (200, JSON, json.dumps({"id": 6, "access_token": new}).encode()),
        ("DELETE", "/v4/sources/3/tokens/5"): (503, JSON, b'{"error": {"type": "unavailable", "message": "try later"}}'),
    })
    import_api = start_emulator(token=new)
    config = config_file(tmp_path)
    write_json(config, {"token": "old-token", "connect_token_id": 5, "api_url": import_api.url, "region": "us"})

    done = connect("rotate", 3, "--config", config, "--api-url", api.url, "--json")
    line = done.error_line
    assert "holds the new token 6, but revoking the old token 5 failed" in line
    assert "HTTP 503: try later" in line
    assert "still live" in line
    assert "revoke-token 3 5" in line
    assert done.document["old_token_revoked"] is False
    assert json.loads(config.read_text()) == {
        "token": new, "connect_token_id": 6, "api_url": import_api.url, "region": "us",
    }
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert_no_secret(done, new, "old-token", CONNECT_TOKEN)


# The emulator's /v4 endpoints


def test_schema_names() -> None:
    assert schema_name("Import API") == "import_api"
    assert schema_name("Shop-Orders 2") == "shop_orders_2"
    assert schema_name("Café") == "caf_"


def test_report_card_and_source_object(connect_emulator: Emulator) -> None:
    url = connect_emulator.url
    card = v4(url, "GET", "/source-types/import_api")
    assert card.status_code == 200
    assert card.json()["type"] == "import_api"
    assert card.json()["current_step_type"] == "form"
    assert [step["type"] for step in card.json()["steps"]] == ["form", "fully_configured"]

    created = v4(url, "POST", "/sources", {"type": "import_api", "display_name": "Import API"})
    assert created.status_code == 200
    source = created.json()
    assert isinstance(source["id"], int)
    assert source["name"] == "import_api"
    assert source["display_name"] == "Import API"
    assert source["type"] == "import_api"
    assert source["report_card"]["current_step_type"] == "fully_configured"
    assert source["created_at"].endswith("Z")
    assert v4(url, "GET", f"/sources/{source['id']}").json() == source

    token = v4(url, "POST", f"/sources/{source['id']}/tokens").json()
    assert set(token) == {"id", "access_token"}
    listed = v4(url, "GET", f"/sources/{source['id']}/tokens").json()
    assert listed == [{"id": token["id"], "created_at": listed[0]["created_at"]}]
    revoked = v4(url, "DELETE", f"/sources/{source['id']}/tokens/{token['id']}")
    assert revoked.status_code == 200
    assert revoked.json() == source
    assert v4(url, "GET", f"/sources/{source['id']}/tokens").json() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "import_api"}, "display_name must be a non-empty string"),
        ({"type": "import_api", "display_name": "  "}, "display_name must be a non-empty string"),
        ({"type": "postgres", "display_name": "x"}, "type must be import_api"),
        ({"type": "import_api", "display_name": "x", "secret": 1}, "unknown keys: secret"),
        ({"type": "import_api", "display_name": "!!!"}, "a letter or a digit"),
        ({"type": "import_api", "display_name": "x" * 256}, "at most 255"),
        (["import_api"], "JSON object"),
    ],
)
def test_create_source_refusals(connect_emulator: Emulator, body: object, message: str) -> None:
    answer = v4(connect_emulator.url, "POST", "/sources", body)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "bad_request"
    assert message in answer.json()["error"]["message"]


def test_v4_errors(connect_emulator: Emulator) -> None:
    url = connect_emulator.url
    source = v4(url, "POST", "/sources", {"type": "import_api", "display_name": "a"}).json()
    for method, path in [
        ("GET", "/sources/99"),
        ("GET", "/sources/99/tokens"),
        ("POST", "/sources/99/tokens"),
        ("DELETE", f"/sources/{source['id']}/tokens/99"),
        ("DELETE", f"/sources/{source['id']}/tokens/abc"),
        ("GET", "/sources/abc"),
        ("GET", "/source-types/postgres"),
        ("GET", f"/sources/{source['id']}/other"),
        ("GET", "/nothing"),
    ]:
        answer = v4(url, method, path)
        assert answer.status_code == 404, (method, path)
        assert answer.json()["error"]["type"] == "not_found"
    wrong = v4(url, "PUT", "/sources")
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"
    assert v4(url, "DELETE", f"/sources/{source['id']}/tokens").headers["Allow"] == "GET, POST"
    assert v4(url, "GET", "/sources/1", token="").status_code == 401
    assert v4(url, "GET", "/sources/1", token="test-token").status_code == 401  # an Import token
    too_big = requests.post(
        url + "/v4/sources", data=b" " * 70_000,
        headers={"Authorization": f"Bearer {CONNECT_TOKEN}", "Content-Type": "application/json"}, timeout=30,
    )
    assert too_big.status_code == 413


def test_any_token_until_one_is_created(start_emulator: Callable[..., Emulator]) -> None:
    """Without --token, any token is accepted only until a token is created through /v4."""
    emulator = start_emulator("--connect-token", CONNECT_TOKEN, token=None)
    url = emulator.url
    assert batch(url, "whatever") == 201
    source = v4(url, "POST", "/sources", {"type": "import_api", "display_name": "s"}).json()
    token = v4(url, "POST", f"/sources/{source['id']}/tokens").json()
    assert batch(url, "whatever") == 401
    assert batch(url, token["access_token"]) == 201
    v4(url, "DELETE", f"/sources/{source['id']}/tokens/{token['id']}")
    assert batch(url, token["access_token"]) == 401
    assert batch(url, "whatever") == 401  # revoked tokens count: not "any token" again


def test_sources_and_tokens_survive_a_restart(connect_emulator: Emulator) -> None:
    url = connect_emulator.url
    source = v4(url, "POST", "/sources", {"type": "import_api", "display_name": "Kept"}).json()
    kept = v4(url, "POST", f"/sources/{source['id']}/tokens").json()
    gone = v4(url, "POST", f"/sources/{source['id']}/tokens").json()
    assert v4(url, "DELETE", f"/sources/{source['id']}/tokens/{gone['id']}").status_code == 200

    connect_emulator.restart()
    url = connect_emulator.url
    assert batch(url, gone["access_token"]) == 401
    assert batch(url, kept["access_token"]) == 201
    assert v4(url, "GET", f"/sources/{source['id']}").json() == source
    listed = v4(url, "GET", f"/sources/{source['id']}/tokens").json()
    assert [item["id"] for item in listed] == [kept["id"]]
    assert "accepted until revoked" in connect_emulator.stderr()

    connect_emulator.stop()
    for path in connect_emulator.database.parent.glob(connect_emulator.database.name + "*"):
        data = path.read_bytes()
        assert kept["access_token"].encode() not in data
        assert gone["access_token"].encode() not in data
    with sqlite3.connect(connect_emulator.database) as conn:
        digests = {row[0] for row in conn.execute("SELECT token_sha256 FROM _emulator_tokens")}
    assert digests == {token_digest(kept["access_token"]), token_digest(gone["access_token"])}
    with Storage(connect_emulator.database) as storage:
        assert storage.tables() == {"things": 1}  # the Connect tables are not shown
        assert storage.token_is_live(kept["access_token"])
        assert not storage.token_is_live(gone["access_token"])
    shown = subprocess.run(
        [*EMULATOR_COMMAND, "show", "--database", str(connect_emulator.database), "--json", "--stats"],
        capture_output=True, text=True, check=True,
    )
    assert kept["access_token"] not in shown.stdout
    assert "_emulator_tokens" not in shown.stdout


def test_storage_adds_connect_tables_to_an_older_database(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with Storage(path, create=True):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE _emulator_tokens")
        conn.execute("DROP TABLE _emulator_sources")
    with Storage(path) as storage:
        assert not storage.tokens_created
        source = storage.create_source("Old", "old", created_at="2024-01-01T00:00:00Z")
        token_id = storage.create_token(source.id, "tok", created_at="2024-01-01T00:00:00Z")
        assert storage.token_is_live("tok")
        assert storage.revoke_token(source.id, token_id, revoked_at="2024-01-02T00:00:00Z")
        assert not storage.revoke_token(source.id, token_id, revoked_at="2024-01-02T00:00:00Z")
        assert not storage.token_is_live("tok")
        assert storage.tokens_created


def test_connect_commands_start_without_the_sdk() -> None:
    """``connect`` needs no Singer SDK: it is not imported (half a second of every command)."""
    code = (
        "import os, sys\n"
        "from target_stitch_import import cli\n"
        "end = os._exit\n"
        "def report(status):\n"
        "    sys.stderr.write(f'SDK loaded: {\"singer_sdk\" in sys.modules}\\n')\n"
        "    sys.stderr.flush()\n"
        "    end(status)\n"
        "os._exit = report\n"
        "cli.main(['connect', '--help'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "create-source" in done.stdout
    assert "SDK loaded: False" in done.stderr


def test_an_endless_answer_ends_with_one_line_at_once() -> None:
    """A server (a wrong --api-url) that answers a body without end: its first megabyte is read."""
    from httpstub import HttpStub, endless_body  # noqa: PLC0415 - the client's fault stub

    for status, expected in ((200, "a body that is not JSON"), (500, "HTTP 500")):
        with HttpStub(endless_body(status)) as stub:
            done = connect("list-tokens", "123", "--api-url", stub.url, timeout=30)
        assert expected in done.error_line
        assert len(done.error_line) < 1_000
