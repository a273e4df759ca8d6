"""``target-stitch-import connect``: Import API credentials from Stitch's Connect API.

Stitch Enterprise accounts create and revoke an Import API source's access tokens through
the Connect API (``/v4``, see the end of ``shared/import-api.md``). The subcommands:

* ``create-source --display-name NAME``: reads the ``import_api`` report card, creates the
  source, prints its id and its destination schema name.
* ``create-token SOURCE_ID [--write-config FILE]``: creates a token and prints it (the one
  time a token is ever printed), or writes it into a target config file and prints its id.
* ``list-tokens SOURCE_ID``: the ids and creation times of the source's live tokens.
* ``revoke-token SOURCE_ID TOKEN_ID``.
* ``rotate SOURCE_ID --config FILE [--old-token-id ID]``: creates a token, proves that the
  Import API accepts it (``POST /v2/import/validate`` of a one-record body; nothing is
  stored), writes it into the file, then revokes the token the file held.

The Connect token comes from the environment variable ``STITCH_CONNECT_TOKEN`` only. A
config file written here gets ``token`` and ``connect_token_id`` (the token's id, which the
Connect API needs to revoke it and which cannot be derived from the token; the target
ignores the key). Files are written atomically (a temporary file in the same directory,
then ``os.replace``), with mode 0600, keeping their other keys. A rotation that fails before
the write leaves the file as it was and the old token live (the new token is revoked again);
one that cannot revoke the old token after the write says so and exits 1.

Output: text, or with ``--json`` one JSON object on stdout. Errors: one line on stderr, exit
status 1, never a traceback. No token ever appears in any output, server echoes included,
except the new token printed by ``create-token`` without ``--write-config``. Redirects are
never followed; every request has a timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import typing as t
from pathlib import Path

import requests

from target_stitch_import.__version__ import __version__
from target_stitch_import.client import read_answer, redact
from target_stitch_import.contract import VALIDATE_PATH, Region
from target_stitch_import.emulator.text import escape_raw_controls
from target_stitch_import.errors import ConnectError

if t.TYPE_CHECKING:
    from collections.abc import Callable, Sequence

PROG = "target-stitch-import connect"
TOKEN_ENV = "STITCH_CONNECT_TOKEN"  # noqa: S105 - a variable's name
#: The config key holding the id of the config's token (not a target setting).
TOKEN_ID_KEY = "connect_token_id"  # noqa: S105 - a key's name
IMPORT_API_TYPE = "import_api"
DEFAULT_TIMEOUT = 30.0
#: The table named in the body that proves a new token (``/validate`` stores nothing).
CHECK_TABLE = "target_stitch_import_token_check"
_CHECK_BODY = {
    "table_name": CHECK_TABLE,
    "schema": {"properties": {"id": {"type": "integer"}}},
    "messages": [{"action": "upsert", "sequence": 1, "data": {"id": 1}}],
    "key_names": ["id"],
}
_LINE_LIMIT = 1_000
_MESSAGE_LIMIT = 300
_ENTERPRISE = (
    f"check {TOKEN_ENV}; the Connect API requires Stitch Enterprise (accounts without "
    "Connect API access are refused)"
)


class Redactor:
    """Hides every secret known so far (tokens, bearer credentials) in text to be shown."""

    def __init__(self, *secrets: str) -> None:
        """Start with these secrets (empty ones are ignored)."""
        self._secrets = [secret for secret in secrets if secret]

    def add(self, secret: str) -> None:
        """Hide ``secret`` too from now on."""
        if secret:
            self._secrets.append(secret)

    def clean(self, text: str) -> str:
        """Return ``text`` on one line, control characters escaped, every secret redacted."""
        text = " ".join(text.split())
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = redact(text, secret)
        return escape_raw_controls(redact(text, ""))


class Http:
    """Sends JSON requests with a bearer token: one session, a timeout, no redirects."""

    def __init__(self, timeout: float, redactor: Redactor) -> None:
        """Create the session; ``redactor`` cleans every message built here."""
        self.timeout = timeout
        self.redactor = redactor
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"target-stitch-import/{__version__}"

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()

    def call(  # noqa: PLR0913 - what each caller says about its request
        self,
        method: str,
        url: str,
        token: str,
        body: object = None,
        *,
        refused: str,
        not_found: str | None = None,
    ) -> object:
        """Send one request; return the decoded JSON of a 2xx answer.

        Args:
            method: The HTTP method.
            url: The full URL.
            token: The bearer token.
            body: The JSON body (None: none).
            refused: What a 401 or 403 means; ``{answer}`` in it becomes the status and the
                server's message (appended when it holds none).
            not_found: What a 404 means (None: reported like any other status).

        Raises:
            ConnectError: No answer, a redirect, a non-2xx status or a 2xx body that is not
                JSON; the message names the URL and never a token.
        """
        headers = {"Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode("utf-8")
        try:
            response = self._session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            )
            try:
                read_answer(response)  # at most MAX_ANSWER_BYTES of it
            finally:
                response.close()
        except requests.Timeout as exc:
            what = f"no answer from {url} within {self.timeout:g} s ({type(exc).__name__})"
            raise self.error(what) from None
        except requests.ConnectionError as exc:
            msg = f"cannot connect to {url} ({type(exc).__name__})"
            raise self.error(msg) from None
        except requests.RequestException as exc:
            msg = f"request to {url} failed ({type(exc).__name__})"
            raise self.error(msg) from None
        return self._answer(method, url, response, refused, not_found)

    def _answer(
        self,
        method: str,
        url: str,
        response: requests.Response,
        refused: str,
        not_found: str | None,
    ) -> object:
        """Return the decoded JSON of a 2xx answer; raise the error any other answer means."""
        status = response.status_code
        if 200 <= status < 300:  # noqa: PLR2004
            try:
                return response.json()
            except ValueError:
                what = (
                    f"{method} {url} answered HTTP {status} with a body that is not JSON; "
                    "check --api-url (or the config's api_url)"
                )
                raise self.error(what) from None
        if 300 <= status < 400:  # noqa: PLR2004
            location = response.headers.get("Location") or "(no Location)"
            what = (
                f"{method} {url} was redirected (HTTP {status}) to {location}; redirects are "
                "not followed: check --api-url (or the config's api_url)"
            )
            raise self.error(what)
        # Redacted before it is cut: a cut token would no longer be recognised.
        message = f"HTTP {status}: {self.redactor.clean(server_message(response))[:_MESSAGE_LIMIT]}"
        if status in (401, 403):
            if "{answer}" not in refused:
                refused += " ({answer})"
            raise self.error(refused.replace("{answer}", message))
        if status == 404 and not_found is not None:  # noqa: PLR2004
            msg = f"{not_found} ({message})"
            raise self.error(msg)
        msg = f"{method} {url}: {message}"
        raise self.error(msg)

    def error(self, text: str) -> ConnectError:
        """Return the error to raise, its text cleaned."""
        return ConnectError(self.redactor.clean(text))


def server_message(response: requests.Response) -> str:
    """Return the server's own message from an error answer, on one line, not yet redacted."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip() or response.reason or "no message"
    else:
        parts: list[str] = []
        if isinstance(body, dict):
            for key in ("error", "message", "errors"):
                value = body.get(key)
                if isinstance(value, dict):
                    value = value.get("message") or value.get("error") or value.get("type")
                if value:
                    parts.append(str(value))
        text = ": ".join(parts) or json.dumps(body)
    return " ".join(text.split())


class ConnectClient:
    """The Connect API calls the subcommands make, with one Connect token."""

    def __init__(self, http: Http, base_url: str, token: str) -> None:
        """Use ``http`` to talk to the Connect API at ``base_url`` with ``token``."""
        self.http = http
        self.base_url = base_url.rstrip("/")
        self._token = token

    def _call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        not_found: str | None = None,
    ) -> object:
        refused = (
            f"the Connect API at {self.base_url} refused the Connect token ({{answer}}): "
            f"{_ENTERPRISE}"
        )
        return self.http.call(
            method,
            self.base_url + path,
            self._token,
            body,
            refused=refused,
            not_found=not_found,
        )

    def report_card(self) -> dict[str, t.Any]:
        """Return the ``import_api`` source type's report card."""
        card = self._call(
            "GET",
            f"/v4/source-types/{IMPORT_API_TYPE}",
            not_found=f"the Connect API at {self.base_url} knows no {IMPORT_API_TYPE} source type",
        )
        return self._object(card, "the report card")

    def create_source(self, display_name: str) -> dict[str, t.Any]:
        """Create an Import API source; return its Source object (with ``id`` and ``name``)."""
        body = {"type": IMPORT_API_TYPE, "display_name": display_name}
        source = self._object(self._call("POST", "/v4/sources", body), "the new source")
        self._id(source, "id", "the new source")
        if not isinstance(source.get("name"), str):
            msg = f"the new source has no schema name: {_shape(source)}"
            raise self.http.error(msg)
        return source

    def create_token(self, source_id: int) -> tuple[int, str]:
        """Create a token of a source; return its id and the token."""
        answer = self._object(
            self._call("POST", f"/v4/sources/{source_id}/tokens", not_found=_unknown(source_id)),
            "the new token",
        )
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            msg = "the Connect API answered without an access_token"
            raise self.http.error(msg)
        self.http.redactor.add(token)
        return self._id(answer, "id", "the new token"), token

    def list_tokens(self, source_id: int) -> list[dict[str, t.Any]]:
        """Return the source's tokens: ``[{"id": int, "created_at": str | None}]``."""
        answer = self._call("GET", f"/v4/sources/{source_id}/tokens", not_found=_unknown(source_id))
        if isinstance(answer, dict) and isinstance(answer.get("data"), list):
            answer = answer["data"]
        if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
            msg = f"unexpected list of tokens: {_shape(answer)}"
            raise self.http.error(msg)
        return [
            {"id": self._id(item, "id", "a token"), "created_at": item.get("created_at")}
            for item in answer
        ]

    def revoke_token(self, source_id: int, token_id: int) -> None:
        """Revoke a token of a source."""
        self._call(
            "DELETE",
            f"/v4/sources/{source_id}/tokens/{token_id}",
            not_found=f"unknown source {source_id} or token {token_id}",
        )

    def _object(self, value: object, what: str) -> dict[str, t.Any]:
        if not isinstance(value, dict):
            msg = f"unexpected answer for {what}: {_shape(value)}"
            raise self.http.error(msg)
        return value

    def _id(self, value: dict[str, t.Any], key: str, what: str) -> int:
        found = value.get(key)
        if not isinstance(found, int) or isinstance(found, bool):
            msg = f"{what} has no integer {key}: {_shape(value)}"
            raise self.http.error(msg)
        return found


def _unknown(source_id: int) -> str:
    return f"unknown source {source_id}"


def _shape(value: object) -> str:
    """Describe an unexpected answer briefly: its keys, or its JSON type (never values)."""
    if isinstance(value, dict):
        return "an object with keys " + ", ".join(sorted(map(str, value))[:20])
    return f"a JSON {type(value).__name__}"


# Config files


def read_config(path: Path, *, missing_ok: bool = False) -> dict[str, t.Any]:
    """Read a target config file (a JSON object).

    Args:
        path: The file.
        missing_ok: A missing file reads as ``{}``.

    Raises:
        ConnectError: The file cannot be read or holds no JSON object.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return {}
        msg = f"no config file {path}"
        raise ConnectError(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read {path}: {_reason(exc)}"
        raise ConnectError(msg) from None
    try:
        config = json.loads(text)
    except ValueError as exc:
        where = getattr(exc, "lineno", None)
        at = f" (line {where})" if where is not None else ""
        msg = f"{path} is not valid JSON{at}"
        raise ConnectError(msg) from None
    if not isinstance(config, dict):
        msg = f"{path} does not hold a JSON object"
        raise ConnectError(msg)
    return config


def write_config(path: Path, config: dict[str, t.Any]) -> None:
    """Write a config file atomically, mode 0600: a temporary file in its directory, replaced.

    Raises:
        ConnectError: It cannot be written; the file is then as it was.
    """
    data = (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    temp = None
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            Path(temp).chmod(0o600)  # mkstemp's mode already; said again for clarity
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        Path(temp).replace(path)  # os.replace: atomic
        temp = None
    except OSError as exc:
        msg = f"cannot write {path}: {_reason(exc)}"
        raise ConnectError(msg) from None
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                Path(temp).unlink()
    with contextlib.suppress(OSError, AttributeError):  # the rename itself, durable (POSIX)
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _config_path(text: str) -> Path:
    """The file a config path names (a symbolic link's target, so the link stays)."""
    return Path(os.path.realpath(text))


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


def import_base_url(config: dict[str, t.Any], path: Path) -> str:
    """Return the Import API base URL a target config points at (api_url, else region).

    Raises:
        ConnectError: Its region is unknown or its api_url is no http(s) URL.
    """
    api_url = config.get("api_url")
    if api_url:
        if not isinstance(api_url, str) or not api_url.startswith(("http://", "https://")):
            msg = f"the api_url of {path} must start with http:// or https://"
            raise ConnectError(msg)
        return api_url.rstrip("/")
    try:
        return Region(config.get("region") or Region.US.value).base_url
    except ValueError:
        msg = f"the region of {path} must be one of us, eu"
        raise ConnectError(msg) from None


def check_import_token(http: Http, base_url: str, token: str) -> None:
    """Prove that the Import API at ``base_url`` accepts ``token`` (``/validate``: nothing stored).

    Raises:
        ConnectError: It was not accepted, or the Import API could not be asked.
    """
    http.call(
        "POST",
        base_url + VALIDATE_PATH,
        token,
        _CHECK_BODY,
        refused=(
            f"the Import API at {base_url} refused the new token ({{answer}}); is it the Import "
            "API of the source's region (the config's region or api_url)?"
        ),
    )


# Commands


class Command:
    """One run of a subcommand: its arguments, clients and output."""

    def __init__(self, args: argparse.Namespace, token: str) -> None:
        """Set up the HTTP session and the Connect client for ``args``."""
        self.args = args
        self.redactor = Redactor(token)
        self.http = Http(args.timeout, self.redactor)
        base_url = (args.api_url or Region(args.region).base_url).rstrip("/")
        self.connect = ConnectClient(self.http, base_url, token)

    def emit(self, document: dict[str, t.Any], lines: Sequence[str]) -> None:
        """Write the result: ``document`` as JSON with ``--json``, else ``lines``."""
        if self.args.json:
            sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()

    def note(self, text: str) -> None:
        """Write a remark (not the result) on stderr."""
        sys.stderr.write(f"{PROG}: {self.redactor.clean(text)}\n")

    def create_source(self) -> int:
        """Read the report card, create the source, print its id and schema name."""
        card = self.connect.report_card()
        steps = [step.get("type") for step in card.get("steps") or [] if isinstance(step, dict)]
        if steps and "fully_configured" not in steps:
            what = ", ".join(map(str, steps))
            msg = f"the {IMPORT_API_TYPE} report card has no end step ({what})"
            raise self.http.error(msg)
        source = self.connect.create_source(self.args.display_name)
        report = source.get("report_card")
        step = report.get("current_step_type") if isinstance(report, dict) else None
        document = {
            "source_id": source["id"],
            "name": source["name"],
            "display_name": source.get("display_name", self.args.display_name),
            "current_step_type": step,
        }
        self.emit(document, [f"source id: {source['id']}", f"schema: {source['name']}"])
        if step != "fully_configured":
            self.note(f"the source is not fully configured yet (current step: {step})")
        return 0

    def create_token(self) -> int:
        """Create a token: print it, or write it into a config file and print its id."""
        source_id = self.args.source_id
        if self.args.write_config is None:
            token_id, token = self.connect.create_token(source_id)
            document = {"source_id": source_id, "token_id": token_id, "token": token}
            self.emit(document, [f"token id: {token_id}", f"token: {token}"])
            if not self.args.json:
                self.note("the token is shown this once only: store it now")
            return 0
        path = _config_path(self.args.write_config)
        config = read_config(path, missing_ok=True)
        self.redactor.add(str(config.get("token") or ""))
        token_id, token = self.connect.create_token(source_id)
        try:
            write_config(path, {**config, "token": token, TOKEN_ID_KEY: token_id})
        except ConnectError as exc:
            msg = f"{exc}; {self._undo(source_id, token_id)}"
            raise self.http.error(msg) from None
        document = {"source_id": source_id, "token_id": token_id, "config": str(path)}
        self.emit(document, [f"token id: {token_id} (written to {path})"])
        if config.get("token"):
            self.note(
                f"the token {path} held before stays live: revoke it with revoke-token "
                "(rotate replaces and revokes in one step)",
            )
        return 0

    def list_tokens(self) -> int:
        """Print the ids and creation times of a source's tokens."""
        tokens = self.connect.list_tokens(self.args.source_id)
        lines = [f"{item['id']}  {item['created_at'] or '-'}" for item in tokens]
        self.emit(
            {"source_id": self.args.source_id, "tokens": tokens},
            ["token id  created at", *lines] if lines else ["no tokens"],
        )
        return 0

    def revoke_token(self) -> int:
        """Revoke one token of a source."""
        source_id, token_id = self.args.source_id, self.args.token_id
        self.connect.revoke_token(source_id, token_id)
        document = {"source_id": source_id, "token_id": token_id, "revoked": True}
        self.emit(document, [f"token {token_id} of source {source_id} revoked"])
        return 0

    def rotate(self) -> int:
        """Create a token, prove it, write it into the config file, revoke the old one."""
        source_id = self.args.source_id
        path = _config_path(self.args.config)
        config = read_config(path)
        old_token = config.get("token")
        if not isinstance(old_token, str) or not old_token:
            msg = f"{path} holds no token: use create-token {source_id} --write-config {path}"
            raise ConnectError(msg)
        self.redactor.add(old_token)
        old_id = self._old_token_id(config, path)
        import_url = import_base_url(config, path)
        live = {item["id"] for item in self.connect.list_tokens(source_id)}
        if old_id not in live:
            msg = (
                f"token {old_id} is no live token of source {source_id} (list-tokens shows "
                f"them); {path} is unchanged. To replace a token that no longer works: "
                f"create-token {source_id} --write-config {path}"
            )
            raise ConnectError(msg)
        new_id, new_token = self.connect.create_token(source_id)
        try:
            check_import_token(self.http, import_url, new_token)
            write_config(path, {**config, "token": new_token, TOKEN_ID_KEY: new_id})
        except ConnectError as exc:
            msg = (
                f"{exc}; {path} is unchanged and its token still works; "
                f"{self._undo(source_id, new_id)}"
            )
            raise self.http.error(msg) from None
        document = {
            "source_id": source_id,
            "config": str(path),
            "new_token_id": new_id,
            "old_token_id": old_id,
            "old_token_revoked": False,
        }
        written = f"token {new_id} written to {path} (accepted by the Import API at {import_url})"
        try:
            self.connect.revoke_token(source_id, old_id)
        except ConnectError as exc:
            self.emit(document, [written])
            msg = (
                f"{path} holds the new token {new_id}, but revoking the old token {old_id} "
                f"failed: {exc}; the old token is still live: revoke it with "
                f"`{PROG} revoke-token {source_id} {old_id}`"
            )
            raise self.http.error(msg) from None
        document["old_token_revoked"] = True
        self.emit(document, [written, f"old token {old_id} revoked"])
        return 0

    def _old_token_id(self, config: dict[str, t.Any], path: Path) -> int:
        """The id of the config's token: ``--old-token-id``, else the config's record of it."""
        if self.args.old_token_id is not None:
            return int(self.args.old_token_id)
        recorded = config.get(TOKEN_ID_KEY)
        if isinstance(recorded, str) and recorded.isascii() and recorded.isdigit():
            recorded = int(recorded)
        if isinstance(recorded, int) and not isinstance(recorded, bool):
            return recorded
        msg = (
            f"{path} does not record the id of its token ({TOKEN_ID_KEY}): pass "
            "--old-token-id (list-tokens shows the ids); nothing was changed"
        )
        raise ConnectError(msg)

    def _undo(self, source_id: int, token_id: int) -> str:
        """Revoke a token just created that cannot be used; say how that went."""
        try:
            self.connect.revoke_token(source_id, token_id)
        except ConnectError as exc:
            return (
                f"the new token {token_id} could not be revoked ({exc}): revoke it with "
                f"`{PROG} revoke-token {source_id} {token_id}`"
            )
        return f"the new token {token_id} was revoked again"


# Command line


def _positive_int(text: str) -> int:
    """Parse an id: a positive integer (an argparse type)."""
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        msg = f"expected a positive integer id, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def _seconds(text: str) -> float:
    """Parse a positive number of seconds (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        msg = f"expected a positive number of seconds, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _api_url(text: str) -> str:
    """Parse a base URL (an argparse type)."""
    if not text.startswith(("http://", "https://")):
        msg = f"must start with http:// or https://, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return text


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser of ``target-stitch-import connect``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--region",
        choices=[region.value for region in Region],
        default=Region.US.value,
        help="Stitch region of the account (default us).",
    )
    common.add_argument(
        "--api-url", type=_api_url, default=None, help="Base URL overriding the region's."
    )
    common.add_argument("--json", action="store_true", help="Write one JSON object.")
    common.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"Seconds to wait for each answer (default {DEFAULT_TIMEOUT:g}).",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Create and rotate Import API tokens through Stitch's Connect API (Stitch "
            f"Enterprise). The Connect token is read from {TOKEN_ENV}."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create_source = commands.add_parser(
        "create-source", parents=[common], help="Create an Import API source."
    )
    create_source.add_argument("--display-name", required=True, help="The source's name.")
    create_token = commands.add_parser(
        "create-token", parents=[common], help="Create a token of a source."
    )
    create_token.add_argument("source_id", type=_positive_int, metavar="SOURCE_ID")
    create_token.add_argument(
        "--write-config",
        metavar="FILE",
        help="Write the token into this target config file instead of printing it.",
    )
    list_tokens = commands.add_parser(
        "list-tokens", parents=[common], help="List a source's token ids."
    )
    list_tokens.add_argument("source_id", type=_positive_int, metavar="SOURCE_ID")
    revoke_token = commands.add_parser(
        "revoke-token", parents=[common], help="Revoke a token of a source."
    )
    revoke_token.add_argument("source_id", type=_positive_int, metavar="SOURCE_ID")
    revoke_token.add_argument("token_id", type=_positive_int, metavar="TOKEN_ID")
    rotate = commands.add_parser(
        "rotate",
        parents=[common],
        help="Replace a config file's token with a new one, then revoke the old one.",
    )
    rotate.add_argument("source_id", type=_positive_int, metavar="SOURCE_ID")
    rotate.add_argument("--config", required=True, metavar="FILE", help="The target config file.")
    rotate.add_argument(
        "--old-token-id",
        type=_positive_int,
        default=None,
        metavar="ID",
        help=f"The id of the file's token (default: the file's {TOKEN_ID_KEY}).",
    )
    return parser


_HANDLERS: dict[str, Callable[[Command], int]] = {
    "create-source": Command.create_source,
    "create-token": Command.create_token,
    "list-tokens": Command.list_tokens,
    "revoke-token": Command.revoke_token,
    "rotate": Command.rotate,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``target-stitch-import connect``; return the exit status (errors: one line, 1)."""
    args = build_parser().parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        return _failed(
            f"set {TOKEN_ENV} to a Stitch Connect API access token (the Connect API "
            "requires Stitch Enterprise)",
        )
    redactor = Redactor(token)
    try:
        command = Command(args, token)
        redactor = command.redactor
        try:
            return _HANDLERS[args.command](command)
        finally:
            command.http.close()
    except ConnectError as exc:
        return _failed(redactor.clean(str(exc)))
    except KeyboardInterrupt:
        _failed("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - no traceback ever reaches the user
        text = redactor.clean(f"unexpected {type(exc).__name__}: {exc}")
        return _failed(f"{text} (this is a bug; please report it)")


def _failed(text: str) -> int:
    if len(text) > _LINE_LIMIT:
        text = text[: _LINE_LIMIT - 3] + "..."
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"{PROG}: error: {text}\n")
        sys.stderr.flush()
    return 1


if __name__ == "__main__":
    sys.exit(main())
