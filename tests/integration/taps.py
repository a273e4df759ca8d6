"""Real PostgreSQL taps from PyPI, each in its own cached virtual environment.

Two tap families are used, pinned to the whole dependency closure so a run is repeatable
and a cached venv is reused as long as the pins (and the Python version) stay the same:

* ``meltanolabs-tap-postgres`` 0.10.0 (Meltano Singer SDK 0.54.9): INCREMENTAL by a
  replication key, SDK-style catalog metadata.
* singer-io ``tap-postgres`` 0.2.1: FULL_TABLE. Its ``setup.py`` pins
  ``psycopg2==2.7.4`` (does not build for Python 3.11), so it is installed with
  ``--no-deps`` next to ``psycopg2-binary`` and its other requirements.
* ``pipelinewise-tap-postgres`` 2.1.0 (pipelinewise-singer-python 1.3.0): LOG_BASED
  (wal2json). It declares ``Requires-Python <3.10`` but runs on 3.11, so it is installed
  with ``--ignore-requires-python`` (see ``test_cdc.py``).

Every pinned closure is installed with ``pip install --no-deps`` (no resolver run); a spec
with ``resolve=True`` (Meltano itself, see ``meltano_project.py``) is a version range that
pip resolves once, when its venv is made. The
cache lives in ``$TSI_TAP_CACHE`` (default ``~/.cache/target-stitch-import/taps``), one
directory per tap named after a hash of its pins; a directory without its completion
marker (an interrupted install) is rebuilt, and a file lock keeps parallel runs apart.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from pg import PgServer

DEFAULT_CACHE = Path.home() / ".cache" / "target-stitch-import" / "taps"
_COMPLETE = ".tsi-complete"


@dataclass(frozen=True)
class TapSpec:
    """A tap distribution and the exact packages its venv holds."""

    name: str
    pins: tuple[str, ...]
    executable: str = "tap-postgres"
    #: The option that passes the catalog (singer-io 0.2.1 syncs only with --properties).
    catalog_flag: str = "--catalog"
    #: Install ``pins`` with pip's resolver (version ranges) instead of ``--no-deps``.
    resolve: bool = False
    #: More ``pip install`` options (``--ignore-requires-python``).
    pip_args: tuple[str, ...] = ()

    def cache_key(self) -> str:
        """Hash of the pins, pip options and the Python version: a new key means a new venv."""
        text = "\n".join((sys.version.split()[0], *sorted(self.pins), *self.pip_args))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


MELTANOLABS = TapSpec(
    name="meltanolabs-tap-postgres",
    pins=(
        "meltanolabs-tap-postgres==0.10.0",
        "singer-sdk==0.54.9",
        "SQLAlchemy==2.0.51",
        "psycopg2-binary==2.9.12",
        "attrs==26.1.0",
        "bcrypt==5.0.0",
        "certifi==2026.10.18",
        "cffi==2.1.1",
        "charset-normalizer==3.5.2",
        "click==8.5.1",
        "cloudpickle==3.1.2",
        "cryptography==50.0.2",
        "Faker==40.54.0",
        "fsspec==2026.9.0",
        "greenlet==3.5.6",
        "idna==3.20",
        "importlib_metadata==10.2.0",
        "inflection==0.5.1",
        "invoke==3.0.3",
        "joblib==1.6.0",
        "jsonpath-ng==1.16.0",
        "jsonschema==4.26.0",
        "jsonschema-specifications==2025.9.1",
        "lazy-importer==0.1.0",
        "packaging==26.3",
        "paramiko==5.1.0",
        "pathlib_abc==0.5.2",
        "pycparser==3.12",
        "PyNaCl==1.6.2",
        "python-backoff==3.0.0",
        "python-dotenv==1.2.4",
        "PyYAML==6.0.3",
        "referencing==0.37.0",
        "requests==2.34.2",
        "rpds-py==2026.9.1",
        "simpleeval==1.0.8",
        "simplejson==4.3.0",
        "typing_extensions==4.16.0",
        "universal_pathlib==0.3.10",
        "urllib3==2.8.0",
        "zipp==4.1.2",
    ),
)

SINGER_IO = TapSpec(
    name="tap-postgres",
    pins=(
        "tap-postgres==0.2.1",
        "singer-python==5.3.1",
        "psycopg2-binary==2.9.13",
        "strict-rfc3339==0.7",
        "backoff==1.3.2",
        "jsonschema==2.6.0",
        "python-dateutil==2.9.0.post0",
        "six==1.17.0",
        "pytz==2018.4",
        "simplejson==3.11.1",
    ),
    catalog_flag="--properties",
)

PIPELINEWISE = TapSpec(
    name="pipelinewise-tap-postgres",
    pins=(
        "pipelinewise-tap-postgres==2.1.0",
        "pipelinewise-singer-python==1.3.0",
        "psycopg2-binary==2.9.5",
        "strict-rfc3339==0.7",
        "attrs==26.1.0",
        "backoff==1.10.0",
        "ciso8601==2.4.1",
        "jsonschema==3.2.0",
        "pyrsistent==0.20.0",
        "python-dateutil==2.9.0.post0",
        "pytz==2020.5",
        "simplejson==3.17.2",
        "six==1.17.0",
    ),
    # Requires-Python <3.10 in its metadata; it runs on 3.11.
    pip_args=("--ignore-requires-python",),
)


@dataclass(frozen=True)
class Tap:
    """An installed tap: its venv and command."""

    spec: TapSpec
    venv: Path

    @property
    def command(self) -> Path:
        """The tap's executable."""
        return self.venv / "bin" / self.spec.executable

    @property
    def python(self) -> Path:
        """The venv's Python (has the tap's ``psycopg2``)."""
        return self.venv / "bin" / "python"


def cache_root() -> Path:
    """The tap venv cache directory (``$TSI_TAP_CACHE`` or the default)."""
    configured = os.environ.get("TSI_TAP_CACHE")
    return Path(configured).expanduser() if configured else DEFAULT_CACHE


def install(spec: TapSpec, root: Path | None = None) -> Tap:
    """Return the tap's cached venv, creating it (from PyPI) when missing or incomplete.

    Raises:
        subprocess.CalledProcessError: venv creation or pip failed.
    """
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"{spec.name}-{spec.cache_key()}"
    tap = Tap(spec, venv)
    with _locked(root / f"{venv.name}.lock"):
        if (venv / _COMPLETE).exists() and tap.command.exists():
            return tap
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
        no_deps = () if spec.resolve else ("--no-deps",)
        subprocess.run(
            [
                str(tap.python), "-m", "pip", "install", "-qq", *no_deps,
                "--no-input", "--disable-pip-version-check", *spec.pip_args, *spec.pins,
            ],
            check=True,
        )  # fmt: skip
        (venv / _COMPLETE).write_text("\n".join(spec.pins) + "\n", encoding="utf-8")
    return tap


def _base_python() -> str:
    """The interpreter to base tap venvs on (the real one, not a venv's symlink)."""
    return getattr(sys, "_base_executable", None) or sys.executable


class _locked:
    def __init__(self, path: Path) -> None:
        self._path = path

    def __enter__(self) -> None:
        self._file = self._path.open("w")
        fcntl.flock(self._file, fcntl.LOCK_EX)

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


# Configs


def _login(server: PgServer) -> dict[str, t.Any]:
    """Where and as whom every tap connects."""
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
    }


def meltanolabs_config(server: PgServer, database: str) -> dict[str, t.Any]:
    """The meltanolabs tap's config for ``database`` (public schema only)."""
    return {**_login(server), "database": database, "filter_schemas": ["public"]}


def pipelinewise_config(
    server: PgServer, database: str, *, poll_seconds: float = 5
) -> dict[str, t.Any]:
    """The pipelinewise tap's config for ``database`` (public schema only).

    ``logical_poll_total_seconds``: a LOG_BASED run stops after this long without a new
    WAL message (its default is 3 hours; 0 means that default).
    """
    return {
        **_login(server),
        "dbname": database,
        "filter_schemas": "public",
        "logical_poll_total_seconds": poll_seconds,
    }


def singer_io_config(server: PgServer, database: str) -> dict[str, t.Any]:
    """The singer-io tap's config for ``database``."""
    return {**_login(server), "dbname": database, "filter_dbs": database}


# Catalogs


def _metadata_entry(stream: dict[str, t.Any], breadcrumb: Sequence[str]) -> dict[str, t.Any]:
    for entry in stream.get("metadata", []):
        if list(entry.get("breadcrumb", [])) == list(breadcrumb):
            return entry.setdefault("metadata", {})
    new: dict[str, t.Any] = {"breadcrumb": list(breadcrumb), "metadata": {}}
    stream.setdefault("metadata", []).append(new)
    return new["metadata"]


def find_stream(catalog: Mapping[str, t.Any], table: str) -> Mapping[str, t.Any]:
    """Return the catalog entry of ``table`` (its ``table_name``, or a stream id ending in it).

    Raises:
        KeyError: The catalog has no such table.
    """
    for stream in catalog["streams"]:
        if stream.get("table_name") == table or stream.get("stream") == table:
            return stream
    for stream in catalog["streams"]:
        if str(stream.get("tap_stream_id", "")).endswith(f"-{table}"):
            return stream
    msg = f"no stream for table {table!r} in the catalog"
    raise KeyError(msg)


def select(
    catalog: Mapping[str, t.Any],
    tables: Mapping[str, tuple[str, str | None]],
) -> dict[str, t.Any]:
    """Return a copy of ``catalog`` with only ``tables`` selected, all their columns too.

    Args:
        catalog: A ``--discover`` result (either tap family).
        tables: ``table -> (replication method, replication key or None)``.
    """
    chosen = {id(find_stream(catalog, table)): spec for table, spec in tables.items()}
    result = copy.deepcopy(dict(catalog))
    streams = []
    for original, stream in zip(catalog["streams"], result["streams"], strict=True):
        spec = chosen.get(id(original))
        if spec is None:
            continue
        method, key = spec
        top = _metadata_entry(stream, [])
        top["selected"] = True
        top["replication-method"] = method
        stream["replication_method"] = method
        if key is not None:
            top["replication-key"] = key
            stream["replication_key"] = key
        for name in stream.get("schema", {}).get("properties", {}):
            _metadata_entry(stream, ["properties", name])["selected"] = True
        streams.append(stream)
    result["streams"] = streams
    return result


# Running


def discover(tap: Tap, config: Path) -> dict[str, t.Any]:
    """Run ``--discover`` and return the catalog.

    Raises:
        subprocess.CalledProcessError: The tap failed (its stderr is attached).
    """
    result = subprocess.run(
        [str(tap.command), "--config", str(config), "--discover"],
        capture_output=True,
        check=True,
        timeout=300,
    )
    return json.loads(result.stdout)


def tap_command(tap: Tap, config: Path, catalog: Path, state: Path | None = None) -> list[str]:
    """The command line that syncs with ``catalog`` (and ``state``)."""
    command = [str(tap.command), "--config", str(config), tap.spec.catalog_flag, str(catalog)]
    if state is not None:
        command += ["--state", str(state)]
    return command


def run_tap(tap_args: Sequence[str], output: Path, stderr: Path) -> None:
    """Run a tap to a file.

    Raises:
        subprocess.CalledProcessError: The tap failed.
    """
    with output.open("wb") as out, stderr.open("wb") as err:
        subprocess.run(list(tap_args), stdout=out, stderr=err, check=True, timeout=600)


@dataclass(frozen=True)
class PipeResult:
    """What ``tap | tee | target`` left behind."""

    returncode: int
    tap_output: Path
    target_stdout: Path
    tap_stderr: Path
    target_stderr: Path

    def messages(self) -> Iterator[dict[str, t.Any]]:
        """The tap's Singer messages."""
        with self.tap_output.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)

    def target_states(self) -> list[t.Any]:
        """The STATE values the target wrote, in order."""
        text = self.target_stdout.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def diagnostics(self) -> str:
        """The tails of both stderr files, for assertion messages."""
        parts = []
        for name, path in (("tap", self.tap_stderr), ("target", self.target_stderr)):
            text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
            parts.append(f"--- {name} stderr (tail) ---\n{text[-3000:]}")
        return "\n".join(parts)


def pipe(
    tap_args: Sequence[str],
    target_args: Sequence[str],
    workdir: Path,
    label: str,
    *,
    timeout: float = 600,
) -> PipeResult:
    """Run ``tap | tee <label>.singer | target`` in bash with ``pipefail``.

    The tap's output is kept (to study it, or to replay it later); the target's stdout
    (its STATE lines) and both stderr streams go to files next to it.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    result = PipeResult(
        returncode=-1,
        tap_output=workdir / f"{label}.singer",
        target_stdout=workdir / f"{label}.state.jsonl",
        tap_stderr=workdir / f"{label}.tap.err",
        target_stderr=workdir / f"{label}.target.err",
    )
    script = (
        f"{shlex.join(tap_args)} 2>{shlex.quote(str(result.tap_stderr))} "
        f"| tee {shlex.quote(str(result.tap_output))} "
        f"| {shlex.join(target_args)} >{shlex.quote(str(result.target_stdout))} "
        f"2>{shlex.quote(str(result.target_stderr))}"
    )
    completed = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script], check=False, timeout=timeout
    )
    return PipeResult(completed.returncode, *list(vars(result).values())[1:])


def replay(
    singer_file: Path,
    target_args: Sequence[str],
    workdir: Path,
    label: str,
    *,
    timeout: float = 600,
) -> PipeResult:
    """Feed a saved tap output to the target again (a stale replay)."""
    return pipe(["cat", str(singer_file)], target_args, workdir, label, timeout=timeout)
