"""Meltano 4 from PyPI in a cached venv, and throwaway Meltano projects driven by its CLI.

* :data:`MELTANO`: ``meltano>=4.4,<5``, installed by :func:`taps.install` with pip's
  resolver into ``$TSI_TAP_CACHE`` (made once, then reused: about 45 s cold).
* :class:`MeltanoProject`: a directory made by ``meltano init``. :meth:`MeltanoProject.meltano`
  runs one Meltano command in it, as a user would type it, with the caller's
  ``MELTANO_*``, ``TARGET_STITCH_IMPORT_*`` and ``TAP_POSTGRES_*`` variables removed so
  only the project decides; Meltano installs plugins itself (with uv) into ``.meltano/``.
* :class:`Invocation`: a long-running ``meltano invoke`` (the emulator's ``serve`` command)
  in its own process group, stopped with SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

import taps
import yaml  # type: ignore[import-untyped]

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

MELTANO = taps.TapSpec(
    name="meltano",
    pins=("meltano>=4.4,<5",),
    executable="meltano",
    resolve=True,
)

#: Variables of the calling environment that would change what Meltano or a plugin sees.
_FOREIGN_PREFIXES = ("MELTANO_", "TARGET_STITCH_IMPORT_", "TAP_POSTGRES_")
#: Generous limit for one Meltano command (runs take seconds).
COMMAND_TIMEOUT = 300.0
_LISTENING = "listening on "


def install_meltano() -> Path:
    """Return the ``meltano`` executable of the cached venv (created when missing)."""
    return taps.install(MELTANO).command


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without Meltano's or the plugins' variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Result:
    """What one Meltano command did."""

    command: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        """The command and the tails of its output, for assertion messages."""
        return (
            f"$ meltano {' '.join(self.command)}  (exit {self.returncode})\n"
            f"--- stdout (tail) ---\n{self.stdout[-3000:]}\n"
            f"--- stderr (tail) ---\n{self.stderr[-6000:]}"
        )


@dataclass(frozen=True)
class MeltanoProject:
    """A Meltano project directory and the ``meltano`` that runs in it."""

    meltano_bin: Path
    root: Path

    @classmethod
    def init(cls, meltano_bin: Path, parent: Path, name: str = "project") -> MeltanoProject:
        """Create a new project with ``meltano init`` (no usage statistics).

        Raises:
            AssertionError: ``meltano init`` failed.
        """
        done = subprocess.run(
            [str(meltano_bin), "init", name, "--no-usage-stats"],
            cwd=parent,
            env=clean_environment(),
            capture_output=True,
            text=True,
            check=False,
            timeout=COMMAND_TIMEOUT,
        )
        assert done.returncode == 0, f"meltano init failed:\n{done.stdout}\n{done.stderr}"
        return cls(meltano_bin, parent / name)

    def meltano(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
    ) -> Result:
        """Run ``meltano ARGS`` in the project.

        Args:
            args: The command line after ``meltano``.
            env: Variables added to the clean environment (e.g. the token).
            stdin: Text typed at Meltano's prompts; none: an empty standard input.
            check: Fail the test when the command exits non-zero.
            timeout: Seconds before the command is killed.

        Raises:
            AssertionError: ``check`` and the command failed.
        """
        done = subprocess.run(
            [str(self.meltano_bin), *args],
            cwd=self.root,
            env=clean_environment(env),
            input=stdin or "",
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        result = Result(tuple(args), done.returncode, done.stdout, done.stderr)
        assert not check or result.returncode == 0, result.describe()
        return result

    def state(self, state_id: str) -> dict[str, t.Any] | None:
        """``meltano state get STATE_ID`` parsed, or None when the project has no such state."""
        result = self.meltano("state", "get", state_id, check=False)
        if result.returncode != 0:
            assert "not found" in (result.stdout + result.stderr).lower(), result.describe()
            return None
        return json.loads(result.stdout)

    def manifest(self) -> dict[str, t.Any]:
        """``meltano.yml`` as data."""
        return yaml.safe_load((self.root / "meltano.yml").read_text(encoding="utf-8"))

    def edit(self, change: Callable[[dict[str, t.Any]], None]) -> None:
        """Change ``meltano.yml`` (as a user would in an editor)."""
        data = self.manifest()
        change(data)
        (self.root / "meltano.yml").write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")

    def plugin(self, plugin_type: str, name: str) -> dict[str, t.Any]:
        """The plugin block of ``meltano.yml`` (``plugin_type``: ``extractors``, ``loaders``)."""
        blocks = self.manifest()["plugins"][plugin_type]
        return next(block for block in blocks if block["name"] == name)

    def append_dotenv(self, **variables: str) -> None:
        """Add ``NAME=value`` lines to the project's ``.env`` (read by every Meltano command)."""
        lines = "".join(f"{name}={value}\n" for name, value in variables.items())
        with (self.root / ".env").open("a", encoding="utf-8") as dotenv:
            dotenv.write(lines)

    def invoke_in_background(self, *args: str, stdout: Path, stderr: Path) -> Invocation:
        """Start ``meltano invoke ARGS`` and return once it printed ``listening on URL``.

        Raises:
            AssertionError: It exited or said nothing for 60 s.
        """
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [str(self.meltano_bin), "invoke", *args],
                cwd=self.root,
                env=clean_environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        invocation = Invocation(process, stdout, stderr)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            first, newline, _ = stdout.read_text(encoding="utf-8").partition("\n")
            if newline and first.startswith(_LISTENING):
                invocation.url = first.removeprefix(_LISTENING)
                return invocation
            if process.poll() is not None:
                break
            time.sleep(0.05)
        invocation.stop()
        text = stderr.read_text(encoding="utf-8", errors="replace")
        msg = f"meltano invoke {' '.join(args)} did not start listening:\n{text[-4000:]}"
        raise AssertionError(msg)


class Invocation:
    """A ``meltano invoke`` running in the background, in its own process group."""

    def __init__(self, process: subprocess.Popen[bytes], stdout: Path, stderr: Path) -> None:
        """Keep the process and where its output goes."""
        self.process = process
        self.stdout = stdout
        self.stderr = stderr
        self.url = ""

    def stop(self) -> None:
        """SIGTERM to the group (Meltano and the plugin it started); SIGKILL after 20 s.

        The group is signalled even when Meltano already exited: the plugin may still run.
        """
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
