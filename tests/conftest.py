"""Shared fixtures: a real ``stitch-import-emulator serve`` subprocess on a free loopback port.

``start_emulator(*extra_args, token="test-token")`` starts one (``token=None``: no
``--token``, any non-empty token is accepted) on a temporary database and returns an
:class:`Emulator`; every emulator started is stopped at teardown. ``emulator`` is one started
with the defaults; ``shared_emulator`` is one shared by a whole test module (for tests that
only look at answers).
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
import typing as t

import pytest

from target_stitch_import.emulator.storage import Storage

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

STARTUP_SECONDS = 20.0
STOP_SECONDS = 20.0
_LISTENING = "listening on "


class Emulator:
    """A running ``stitch-import-emulator serve`` subprocess and its database.

    Attributes:
        url: The base URL it listens on (changes on :meth:`restart`).
        database: Its SQLite file.
        token: The one token it accepts, or None when it accepts any.
        args: The extra ``serve`` arguments it was started with.
        stderr_path: Where its standard error (access log) goes.
    """

    def __init__(self, database: Path, token: str | None, args: list[str], logs: Path) -> None:
        """Start the emulator (see :meth:`start`)."""
        self.database = database
        self.token = token
        self.args = args
        self.url = ""
        self._logs = logs
        self._starts = itertools.count()
        self._process: subprocess.Popen[bytes] | None = None
        self.stderr_path = logs
        self.start()

    @property
    def command(self) -> list[str]:
        """The command line that starts this emulator."""
        command = [sys.executable, "-m", "target_stitch_import.emulator.cli", "serve"]
        command += ["--host", "127.0.0.1", "--port", "0", "--database", str(self.database)]
        if self.token is not None:
            command += ["--token", self.token]
        return command + self.args

    def start(self) -> None:
        """Start the process and wait for its ``listening on`` line (20 s at most)."""
        number = next(self._starts)
        stdout_path = self._logs.with_name(f"{self._logs.stem}-{number}.stdout")
        self.stderr_path = self._logs.with_name(f"{self._logs.stem}-{number}.stderr")
        with stdout_path.open("wb") as stdout, self.stderr_path.open("wb") as stderr:
            self._process = subprocess.Popen(self.command, stdout=stdout, stderr=stderr)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            first, newline, _ = stdout_path.read_text(encoding="utf-8").partition("\n")
            if newline and first.startswith(_LISTENING):
                self.url = first.removeprefix(_LISTENING)
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.01)
        self.stop()
        pytest.fail(f"the emulator did not start; its stderr:\n{self.stderr()}")

    def stderr(self) -> str:
        """The current process's standard error so far (the access log)."""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    @property
    def returncode(self) -> int | None:
        """The exit status of the last process, or None while it runs."""
        return self._process.poll() if self._process is not None else None

    def stop(self) -> None:
        """Stop with SIGTERM (kill after 20 s); idempotent."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop and start again on the same database (the URL may change)."""
        self.stop()
        self.start()

    def rows(self, table: str, *, system: bool = False) -> list[dict[str, t.Any]]:
        """A table's rows with exact values (see :meth:`Storage.rows`)."""
        with Storage(self.database) as storage:
            return storage.rows(table, system=system)

    def tables(self) -> dict[str, int]:
        """Table names and row counts."""
        with Storage(self.database) as storage:
            return storage.tables()

    def stats(self) -> dict[str, t.Any]:
        """Batch statistics (see :meth:`Storage.stats`)."""
        with Storage(self.database) as storage:
            return storage.stats()


@pytest.fixture
def start_emulator(tmp_path: Path) -> Iterator[Callable[..., Emulator]]:
    """Start emulators on temporary databases; all are stopped at teardown."""
    started: list[Emulator] = []

    def start(*extra_args: str, token: str | None = "test-token") -> Emulator:
        number = len(started)
        emulator = Emulator(
            database=tmp_path / f"emulator-{number}.sqlite",
            token=token,
            args=[str(arg) for arg in extra_args],
            logs=tmp_path / f"emulator-{number}.log",
        )
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(start_emulator: Callable[..., Emulator]) -> Emulator:
    """A running emulator accepting the token ``test-token``."""
    return start_emulator()


@pytest.fixture(scope="module")
def shared_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator (token ``test-token``) shared by all tests of a module."""
    directory = tmp_path_factory.mktemp("shared-emulator")
    emulator = Emulator(directory / "emulator.sqlite", "test-token", [], directory / "emulator.log")
    yield emulator
    emulator.stop()
