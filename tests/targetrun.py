"""Running the installed ``target-stitch-import`` command as a user would, for tests."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import typing as t
from dataclasses import dataclass
from pathlib import Path

if t.TYPE_CHECKING:
    from collections.abc import Iterable

ERROR_PREFIX = "target-stitch-import: error: "
_BIN = Path(sys.executable).parent / "target-stitch-import"
COMMAND = [str(_BIN)] if _BIN.exists() else [sys.executable, "-m", "target_stitch_import.cli"]


def schema(
    stream: str,
    properties: dict[str, t.Any],
    keys: list[str] | None = None,
    bookmarks: list[str] | None = None,
) -> dict[str, t.Any]:
    """A SCHEMA message."""
    message: dict[str, t.Any] = {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties},
        "key_properties": keys or [],
    }
    if bookmarks is not None:
        message["bookmark_properties"] = bookmarks
    return message


def record(stream: str, data: dict[str, t.Any], version: int | None = None) -> dict[str, t.Any]:
    """A RECORD message."""
    message: dict[str, t.Any] = {"type": "RECORD", "stream": stream, "record": data}
    if version is not None:
        message["version"] = version
    return message


def state(value: dict[str, t.Any]) -> dict[str, t.Any]:
    """A STATE message."""
    return {"type": "STATE", "value": value}


def activate_version(stream: str, version: int) -> dict[str, t.Any]:
    """An ACTIVATE_VERSION message."""
    return {"type": "ACTIVATE_VERSION", "stream": stream, "version": version}


def lines(messages: Iterable[dict[str, t.Any] | str]) -> str:
    """Singer input text: one JSON line per message (strings are taken as they are)."""
    return "".join((m if isinstance(m, str) else json.dumps(m)) + "\n" for m in messages)


@dataclass
class Result:
    """What a target run printed and returned."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        """The fatal error lines on stderr, each as ``target-stitch-import: error: TEXT``.

        The target reports a fatal error through its logger at ERROR level
        (``time | ERROR | target-stitch-import | TEXT``), or as the plain line when its
        logger is silenced; both forms are returned in the plain form.
        """
        return [_plain_error(line) for line in self.stderr.splitlines() if _plain_error(line)]

    @property
    def last_error_line(self) -> str:
        """The one fatal error line (plain form); fails when there is not exactly one."""
        errors = self.error_lines
        assert len(errors) <= 1, f"more than one error line: {errors}"
        assert "Traceback" not in self.stderr, self.stderr
        assert not any("this is a bug" in line for line in errors), errors  # an expected error
        return errors[0] if errors else ""

    @property
    def states(self) -> list[t.Any]:
        """The STATE values written to stdout, in order."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def _plain_error(line: str) -> str:
    if line.startswith(ERROR_PREFIX):
        return line
    parts = line.split(" | ", 3)
    if len(parts) == 4 and parts[1].strip() == "ERROR" and parts[2].strip() == "target-stitch-import":
        return ERROR_PREFIX + parts[3].strip()
    return ""


def write_config(directory: Path, config: dict[str, t.Any]) -> Path:
    """Write a config file for the target."""
    path = directory / "target-config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def run_target(
    config: dict[str, t.Any],
    messages: Iterable[dict[str, t.Any] | str],
    directory: Path,
    *,
    timeout: float = 120,
) -> Result:
    """Pipe messages into the installed command and wait for it to end."""
    path = write_config(directory, config)
    done = subprocess.run(
        [*COMMAND, "--config", str(path)],
        input=lines(messages),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def start_target(
    config: dict[str, t.Any],
    directory: Path,
    command: t.Sequence[str] = (),
) -> subprocess.Popen[str]:
    """Start the command with a pipe for stdin/stdout, for tests that feed it slowly.

    ``command`` replaces the installed command (a wrapper that runs it, say).
    """
    path = write_config(directory, config)
    return subprocess.Popen(
        [*(command or COMMAND), "--config", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """Read one stdout line of a running process, failing after ``timeout`` seconds."""
    box: list[str] = []
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert box, f"no line within {timeout} s"
    return box[0]
