#!/usr/bin/env python3
"""Compare target-stitch-import with singer-io's target-stitch, in one command.

    python benchmarks/benchmark.py                 # full run (3 runs, 200,000 records)
    python benchmarks/benchmark.py --quick         # smoke check: 20,000 records, 1 run

What it does, with only the standard library in this process:

1. Creates (and afterwards reuses) two venvs under the cache directory (``--cache-dir``,
   default ``$TSI_BENCH_CACHE`` or ``~/.cache/target-stitch-import/bench``): one with
   singer-io ``target-stitch==4.0.3`` and its dependency closure pinned, one with this
   checkout installed from a copy of its files (not editable: what users get), reinstalled
   whenever the package's files change.
2. Generates deterministic Singer inputs once: ``single`` (one stream, integer key,
   ``updated_at`` bookmark) and ``mixed`` (four interleaved streams: wide, nested,
   keyless, small), each with ``--records`` records and a STATE every 10,000.
3. For each latency (``--latency``, ms per request), starts the null Import API
   (``null_api.py``, its own process: accepts every batch, stores nothing, counts requests
   and bytes), then runs every variant ``--runs`` times, interleaved, with the input file
   as its stdin:

   * ``import``: target-stitch-import with its defaults (``token``, ``api_url``, and any
     ``--set name=value``);
   * ``ts1``, ``ts4`` (any ``tsN``): target-stitch with ``turbo_boost_factor`` N;
   * ``floor``: ``floor.py``, which only decodes and re-encodes the lines.

4. Prints, per input and latency, a Markdown table of medians: records/s (records / wall
   time), CPU % (user + sys of the target's process / wall time), peak RSS (from
   ``wait4``), requests and largest body (from the null API), and the ratios to
   target-stitch measured in the same run. A run counts only if the target exits 0 and
   its last STATE line is the input's last STATE.

Performance is measured only here, never by a timed test: numbers depend on the host, so
compare variants of one run, not runs of different hosts or days.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import hashlib
import http.client
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_CACHE = Path(
    os.environ.get("TSI_BENCH_CACHE") or Path.home() / ".cache" / "target-stitch-import" / "bench",
)
INPUT_VERSION = 1  # bump when the generated inputs change shape
STATE_EVERY = 10_000
QUICK_RECORDS = 20_000

TARGET_STITCH_VERSION = "4.0.3"
#: target-stitch 4.0.3's dependency closure as resolved on Python 3.11 (its own pins are
#: exact; these fix the rest), so every run measures the same code.
TARGET_STITCH_CONSTRAINTS = (
    f"target-stitch=={TARGET_STITCH_VERSION}",
    "aiohappyeyeballs==2.7.1",
    "aiohttp==3.13.3",
    "aiosignal==1.4.0",
    "attrs==26.1.0",
    "backoff==2.2.1",
    "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.3",
    "ciso8601==2.4.1",
    "frozenlist==1.8.0",
    "idna==3.20",
    "jsonschema==2.6.0",
    "mock==2.0.0",
    "multidict==6.9.1",
    "pbr==7.1.3",
    "propcache==0.5.4",
    "psutil==5.6.6",
    "python-dateutil==2.9.0.post0",
    "pytz==2026.6",
    "requests==2.32.4",
    "simplejson==3.13.2",
    "singer-python==6.0.1",
    "six==1.17.0",
    "typing_extensions==4.16.0",
    "urllib3==2.8.0",
    "yarl==1.25.1",
)
#: Packages of the checkout that are not installed (changes to them need no reinstall).
NOT_INSTALLED = frozenset({"tests", "benchmarks"})
_COMPLETE = ".bench-complete"
TIMES, DASH = "\u00d7", "\u2013"  # multiplication sign, en dash (for the Markdown report)


# Venvs ---------------------------------------------------------------------------------


def _run_quiet(args: Sequence[str | Path], what: str) -> str:
    """Run a setup command; return its stdout, or stop showing its output if it fails."""
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-5000:] + done.stderr[-5000:])
        sys.exit(f"{what} failed (exit {done.returncode}); output above")
    return done.stdout


def _python_tag(python: str) -> str:
    """``py3.11`` for the interpreter ``python``."""
    version = _run_quiet(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        f"{python} --version",
    )
    return "py" + version.strip()


def _create_venv(base_python: str, directory: Path) -> Path:
    """A fresh venv at ``directory`` (an unfinished one is replaced); return its python."""
    if directory.exists():
        shutil.rmtree(directory)
    log(f"creating venv {directory} with {base_python}")
    _run_quiet([base_python, "-m", "venv", directory], f"{base_python} -m venv {directory}")
    return directory / "bin" / "python"


def _pip(python: Path, *args: str | Path) -> None:
    _run_quiet(
        [python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", *args],
        f"pip install {' '.join(str(a) for a in args)}",
    )


def ensure_target_stitch(cache: Path, base_python: str) -> Path:
    """The venv with target-stitch 4.0.3 (created once per pin set and Python version).

    Returns:
        The venv's ``bin`` directory.
    """
    tag = _python_tag(base_python)
    key = hashlib.sha256("\n".join(TARGET_STITCH_CONSTRAINTS).encode()).hexdigest()[:10]
    directory = cache / f"target-stitch-{TARGET_STITCH_VERSION}-{tag}-{key}"
    if (directory / _COMPLETE).exists():
        return directory / "bin"
    python = _create_venv(base_python, directory)
    constraints = directory / "constraints.txt"
    constraints.write_text("\n".join(TARGET_STITCH_CONSTRAINTS) + "\n", encoding="utf-8")
    log(f"installing target-stitch=={TARGET_STITCH_VERSION} (builds psutil 5.6.6 and simplejson 3.13.2 from source)")
    _pip(python, "-c", constraints, f"target-stitch=={TARGET_STITCH_VERSION}")
    _run_quiet([python, "-c", "import target_stitch"], "import target_stitch")
    (directory / _COMPLETE).write_text("ok\n", encoding="utf-8")
    return directory / "bin"


def _checkout_files() -> list[str]:
    """The checkout's files (tracked and untracked, not ignored), relative to the repo."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        listed = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
            capture_output=True, check=True,
        ).stdout.decode()
        return sorted(name for name in listed.split("\0") if name)
    skip = {".git", ".venv", "venv", "build", "dist", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
    return sorted(
        str(path.relative_to(REPO))
        for path in REPO.rglob("*")
        if path.is_file() and not skip.intersection(path.relative_to(REPO).parts)
        and not any(part.endswith(".egg-info") for part in path.parts)
    )


def _is_build_input(name: str) -> bool:
    """Top-level files (setup.py, README.md, ...) and the files of top-level packages."""
    top, sep, _ = name.partition("/")
    return not sep or (top not in NOT_INSTALLED and (REPO / top / "__init__.py").is_file())


def _copy_package_source(destination: Path) -> str:
    """Copy the files the package is built from; return their fingerprint."""
    digest = hashlib.sha256()
    for name in _checkout_files():
        source = REPO / name
        if not _is_build_input(name) or not source.is_file():
            continue
        data = source.read_bytes()
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return digest.hexdigest()


def ensure_project(cache: Path, base_python: str) -> Path:
    """The venv with this checkout installed (non-editable), current with its files.

    Returns:
        The venv's ``bin`` directory.
    """
    directory = cache / f"target-stitch-import-{_python_tag(base_python)}"
    marker = directory / _COMPLETE
    with tempfile.TemporaryDirectory(prefix="tsi-bench-src-") as temporary:
        source = Path(temporary) / "src"
        fingerprint = _copy_package_source(source)
        if marker.exists() and marker.read_text(encoding="utf-8").strip() == fingerprint:
            return directory / "bin"
        python = directory / "bin" / "python"
        if not marker.exists():
            python = _create_venv(base_python, directory)
        log(f"installing {REPO} (a copy, non-editable) into {directory}")
        marker.unlink(missing_ok=True)
        _pip(python, source)
    marker.write_text(fingerprint + "\n", encoding="utf-8")
    return directory / "bin"


@contextlib.contextmanager
def cache_lock(cache: Path) -> Iterator[None]:
    """Keep two benchmark runs from building the same venv or input at once."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# Inputs --------------------------------------------------------------------------------

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")
COUNTRIES = ("US", "DE", "FR", "GB", "JP", "BR", "IN", "CA")


def _timestamp(seconds: int) -> str:
    return (EPOCH + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dumps(message: object) -> str:
    return json.dumps(message, separators=(",", ":")) + "\n"


def _schema_message(stream: str, properties: dict[str, object], keys: list[str], bookmark: str | None) -> str:
    message: dict[str, object] = {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties},
        "key_properties": keys,
    }
    if bookmark:
        message["bookmark_properties"] = [bookmark]
    return _dumps(message)


NULL_STRING = {"type": ["null", "string"]}
DATE_TIME = {"type": ["null", "string"], "format": "date-time"}
NUMBER = {"type": ["null", "number"]}
INTEGER = {"type": ["null", "integer"]}
BOOLEAN = {"type": ["null", "boolean"]}


@dataclass(frozen=True)
class StreamShape:
    """One generated stream: its SCHEMA line and a record maker."""

    name: str
    schema_line: str
    make: Callable[[int, random.Random], dict[str, object]]
    bookmark: str | None


def _customer(i: int, rng: random.Random) -> dict[str, object]:
    return {
        "id": i,
        "name": f"customer {i}",
        "email": f"c{i}@example.com",
        "country": COUNTRIES[i % len(COUNTRIES)],
        "amount": round(rng.uniform(0, 10_000), 2),
        "quantity": rng.randrange(1, 100),
        "active": i % 3 != 0,
        "updated_at": _timestamp(i),
    }


CUSTOMERS = StreamShape(
    "customers",
    _schema_message(
        "customers",
        {"id": {"type": "integer"}, "name": NULL_STRING, "email": NULL_STRING, "country": NULL_STRING,
         "amount": NUMBER, "quantity": INTEGER, "active": BOOLEAN, "updated_at": DATE_TIME},
        ["id"], "updated_at",
    ),
    _customer,
    "updated_at",
)

WIDE_COLUMNS = 30
_WIDE_TYPES = (NULL_STRING, INTEGER, NUMBER, BOOLEAN, DATE_TIME, NULL_STRING)


def _wide(i: int, rng: random.Random) -> dict[str, object]:
    record: dict[str, object] = {"id": i, "updated_at": _timestamp(i)}
    for column in range(WIDE_COLUMNS):
        kind = column % len(_WIDE_TYPES)
        name = f"c{column:02d}"
        if kind == 0:
            record[name] = f"{WORDS[(i + column) % len(WORDS)]} {i}"
        elif kind == 1:
            record[name] = rng.randrange(1_000_000)
        elif kind == 2:
            record[name] = round(rng.uniform(-1000, 1000), 3)
        elif kind == 3:
            record[name] = rng.random() < 0.5
        elif kind == 4:
            record[name] = _timestamp(i * 7 + column)
        else:
            record[name] = None
    return record


WIDE = StreamShape(
    "wide_accounts",
    _schema_message(
        "wide_accounts",
        {"id": {"type": "integer"}, "updated_at": DATE_TIME}
        | {f"c{c:02d}": _WIDE_TYPES[c % len(_WIDE_TYPES)] for c in range(WIDE_COLUMNS)},
        ["id"], "updated_at",
    ),
    _wide,
    "updated_at",
)


def _order(i: int, rng: random.Random) -> dict[str, object]:
    lines = [
        {"sku": f"SKU-{rng.randrange(10_000):05d}", "quantity": rng.randrange(1, 10),
         "price": round(rng.uniform(1, 500), 2)}
        for _ in range(1 + i % 4)
    ]
    return {
        "order_id": f"O-{i:08d}",
        "customer": {
            "id": i % 5_000,
            "name": f"customer {i % 5_000}",
            "address": {"city": WORDS[i % len(WORDS)].title(), "zip": f"{i % 100_000:05d}"},
        },
        "lines": lines,
        "tags": [WORDS[(i + k) % len(WORDS)] for k in range(i % 3)],
        "updated_at": _timestamp(i),
    }


ORDERS = StreamShape(
    "nested_orders",
    _schema_message(
        "nested_orders",
        {
            "order_id": {"type": "string"},
            "customer": {"type": ["null", "object"], "properties": {
                "id": INTEGER, "name": NULL_STRING,
                "address": {"type": ["null", "object"], "properties": {"city": NULL_STRING, "zip": NULL_STRING}},
            }},
            "lines": {"type": ["null", "array"], "items": {"type": "object", "properties": {
                "sku": NULL_STRING, "quantity": INTEGER, "price": NUMBER}}},
            "tags": {"type": ["null", "array"], "items": {"type": "string"}},
            "updated_at": DATE_TIME,
        },
        ["order_id"], "updated_at",
    ),
    _order,
    "updated_at",
)


def _event(i: int, rng: random.Random) -> dict[str, object]:
    return {
        "event": ("view", "click", "signup", "purchase")[i % 4],
        "user_id": rng.randrange(100_000),
        "session": f"s-{rng.getrandbits(48):012x}",
        "value": round(rng.uniform(0, 100), 2) if i % 4 == 3 else None,
        "occurred_at": _timestamp(i),
    }


EVENTS = StreamShape(
    "keyless_events",
    _schema_message(
        "keyless_events",
        {"event": NULL_STRING, "user_id": INTEGER, "session": NULL_STRING, "value": NUMBER,
         "occurred_at": DATE_TIME},
        [], None,
    ),
    _event,
    None,
)


def _tag(i: int, rng: random.Random) -> dict[str, object]:  # noqa: ARG001
    return {"id": i, "label": WORDS[i % len(WORDS)], "updated_at": _timestamp(i)}


TAGS = StreamShape(
    "small_tags",
    _schema_message("small_tags", {"id": {"type": "integer"}, "label": NULL_STRING, "updated_at": DATE_TIME},
                    ["id"], "updated_at"),
    _tag,
    "updated_at",
)

#: Which stream each record of ``mixed`` belongs to, repeating: 30 % small, 30 % keyless,
#: 20 % nested, 20 % wide.
MIXED_PATTERN = (TAGS, EVENTS, ORDERS, WIDE, TAGS, EVENTS, ORDERS, TAGS, EVENTS, WIDE)
INPUT_SHAPES: dict[str, tuple[StreamShape, ...]] = {"single": (CUSTOMERS,), "mixed": MIXED_PATTERN}


@dataclass(frozen=True)
class InputFile:
    """A generated input and what a correct run must end with."""

    name: str
    path: Path
    records: int
    lines: int
    final_state: object


def _write_input(path: Path, pattern: Sequence[StreamShape], records: int) -> tuple[int, object]:
    """Write ``records`` records cycling through ``pattern``.

    Returns:
        The number of lines written and the last STATE's value.
    """
    streams = list(dict.fromkeys(pattern))
    rngs = {shape.name: random.Random(f"{shape.name}-{INPUT_VERSION}") for shape in streams}  # noqa: S311
    counters = dict.fromkeys(rngs, 0)
    bookmarks: dict[str, dict[str, object]] = {}
    state: object = None
    lines = len(streams) + records
    with path.open("w", encoding="utf-8") as out:
        for shape in streams:
            out.write(shape.schema_line)
        for i in range(records):
            shape = pattern[i % len(pattern)]
            number = counters[shape.name]
            counters[shape.name] = number + 1
            record = shape.make(number, rngs[shape.name])
            out.write(_dumps({"type": "RECORD", "stream": shape.name, "record": record}))
            if shape.bookmark:
                bookmarks[shape.name] = {shape.bookmark: record[shape.bookmark]}
            if (i + 1) % STATE_EVERY == 0 or i + 1 == records:
                state = {"bookmarks": json.loads(json.dumps(bookmarks)), "records": i + 1}
                out.write(_dumps({"type": "STATE", "value": state}))
                lines += 1
    return lines, state


def ensure_input(cache: Path, name: str, records: int) -> InputFile:
    """The generated input ``name`` with ``records`` records (made once, then reused)."""
    directory = cache / "inputs"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{records}-v{INPUT_VERSION}.singer"
    sidecar = path.with_suffix(".json")
    if not sidecar.exists() or not path.exists():
        log(f"generating {path}")
        partial = path.with_suffix(".partial")
        lines, state = _write_input(partial, INPUT_SHAPES[name], records)
        partial.replace(path)
        sidecar.write_text(json.dumps({"records": records, "lines": lines, "final_state": state}), encoding="utf-8")
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    return InputFile(name, path, meta["records"], meta["lines"], meta["final_state"])


# The null Import API -------------------------------------------------------------------


class NullApi:
    """``null_api.py`` in its own process, with its counters read over HTTP."""

    def __init__(self, latency_ms: float) -> None:
        """Start the server with ``latency_ms`` per request; wait until it listens."""
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "null_api.py"), "--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None  # noqa: S101 - PIPE was asked for
        line = self.process.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.process.kill()
            sys.exit(f"null API did not start: {line!r}")
        self.url = line.removeprefix("listening on ")
        host, port = self.url.removeprefix("http://").split(":")
        self._address = (host, int(port))

    def _call(self, method: str, path: str) -> dict[str, float]:
        connection = http.client.HTTPConnection(*self._address, timeout=30)
        try:
            connection.request(method, path, body=b"" if method == "POST" else None)
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    def reset(self) -> None:
        """Zero the counters."""
        self._call("POST", "/_bench/reset")

    def stats(self) -> dict[str, float]:
        """Requests, bytes, largest body and the server's CPU seconds so far."""
        return self._call("GET", "/_bench/stats")

    def close(self) -> None:
        """Stop the server."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# Variants and runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One program under test."""

    key: str
    label: str
    turbo: int = 0  # target-stitch's turbo_boost_factor; 0 for the others

    @classmethod
    def parse(cls, key: str) -> Variant:
        """``import``, ``floor`` or ``tsN`` (target-stitch with turbo N)."""
        if key == "import":
            return cls(key, "target-stitch-import")
        if key == "floor":
            return cls(key, "floor (decode + encode only)")
        match = re.fullmatch(r"ts(\d+)", key)
        if match and int(match.group(1)) >= 1:
            return cls(key, f"target-stitch turbo {int(match.group(1))}", int(match.group(1)))
        msg = f"unknown variant {key!r} (import, floor, ts1, ts4, ...)"
        raise argparse.ArgumentTypeError(msg)


@dataclass
class Setup:
    """Where the programs are and what they are given."""

    project_bin: Path
    target_stitch_bin: Path
    work: Path
    settings: dict[str, object]
    timeout: float


@dataclass(frozen=True)
class Cell:
    """One input at one latency, served by one null API."""

    source: InputFile
    latency_ms: float
    api: NullApi


@dataclass
class Measurement:
    """One run of one variant on one input at one latency."""

    variant: str
    input: str
    latency_ms: float
    run: int
    records: int
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_kib: int = 0
    requests: int = 0
    status_requests: int = 0
    body_bytes: int = 0
    largest_body: int = 0
    api_cpu_seconds: float = 0.0
    error: str = ""

    @property
    def records_per_second(self) -> float:
        """Records / wall seconds."""
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def cpu_percent(self) -> float:
        """CPU seconds (user + sys) / wall seconds, in percent."""
        return 100 * self.cpu_seconds / self.seconds if self.seconds else 0.0


def command_for(variant: Variant, setup: Setup, api_url: str) -> list[str]:
    """The command line of ``variant``, writing its config file when it needs one."""
    if variant.key == "floor":
        return [str(setup.project_bin / "python"), str(HERE / "floor.py")]
    config = setup.work / f"{variant.key}.json"
    if variant.key == "import":
        settings = {"token": "bench-token", "api_url": api_url, **setup.settings}
        config.write_text(json.dumps(settings), encoding="utf-8")
        return [str(setup.project_bin / "target-stitch-import"), "--config", str(config)]
    batch_url = f"{api_url}/v2/import/batch"
    settings = {
        "token": "bench-token",
        "client_id": 1,
        "small_batch_url": batch_url,
        "big_batch_url": batch_url,
        "batch_size_preferences": {},
        "turbo_boost_factor": variant.turbo,
        "disable_collection": True,  # else it reports usage to collector.stitchdata.com
    }
    config.write_text(json.dumps(settings), encoding="utf-8")
    return [str(setup.target_stitch_bin / "target-stitch"), "--config", str(config)]


def _last_line(path: Path) -> str:
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 65_536))
        lines = [line for line in handle.read().splitlines() if line.strip()]
    return lines[-1].decode(errors="replace") if lines else ""


def _tail(path: Path, lines: int = 8) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join("    " + line for line in text[-lines:])


def _check_output(variant: Variant, source: InputFile, stdout: Path) -> str:
    """Why the run's output is wrong, or ``""``."""
    last = _last_line(stdout)
    if variant.key == "floor":
        return "" if last == str(source.lines) else f"floor read {last!r} lines, not {source.lines}"
    try:
        state = json.loads(last)
    except ValueError:
        return f"last output line is not a STATE: {last[:80]!r}"
    if state != source.final_state:
        return f"last STATE {last[:80]} is not the input's last STATE"
    return ""


def measure(variant: Variant, cell: Cell, setup: Setup, run: int) -> Measurement:
    """Run ``variant`` once with the cell's input as stdin; measure it (``wait4``) and the API."""
    source, api = cell.source, cell.api
    result = Measurement(variant.key, source.name, cell.latency_ms, run, source.records)
    command = command_for(variant, setup, api.url)
    stdout = setup.work / f"{variant.key}.out"
    stderr = setup.work / f"{variant.key}.err"
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    api.reset()
    before = api.stats()
    with source.path.open("rb") as stdin, stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdin=stdin, stdout=out, stderr=err, env=env)
        timer = threading.Timer(setup.timeout, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        result.seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    after = api.stats()
    result.cpu_seconds = usage.ru_utime + usage.ru_stime
    result.peak_rss_kib = usage.ru_maxrss
    result.requests = int(after["posts"])
    result.status_requests = int(after["gets"])
    result.body_bytes = int(after["body_bytes"])
    result.largest_body = int(after["largest_body"])
    result.api_cpu_seconds = after["cpu_seconds"] - before["cpu_seconds"]
    if process.returncode != 0:
        killed = " (killed: --timeout)" if result.seconds >= setup.timeout else ""
        result.error = f"exit {process.returncode}{killed}"
    else:
        result.error = _check_output(variant, source, stdout)
    if result.error:
        log(f"  {variant.key} FAILED: {result.error}; stderr ends:\n{_tail(stderr)}")
    return result


# Report --------------------------------------------------------------------------------


@dataclass
class Summary:
    """Medians of one variant's good runs in one cell (input, latency)."""

    variant: Variant
    runs: int
    failed: int
    records_per_second: float = 0.0
    cpu_percent: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    requests: float = 0.0
    largest_body: int = 0
    spread: tuple[float, float] = field(default=(0.0, 0.0))


def summarize(variant: Variant, measurements: Sequence[Measurement]) -> Summary:
    """Medians over the runs that succeeded (largest body: the maximum)."""
    good = [m for m in measurements if not m.error]
    summary = Summary(variant, len(measurements), len(measurements) - len(good))
    if good:
        rates = [m.records_per_second for m in good]
        summary.records_per_second = statistics.median(rates)
        summary.spread = (min(rates), max(rates))
        summary.cpu_percent = statistics.median(m.cpu_percent for m in good)
        summary.cpu_seconds = statistics.median(m.cpu_seconds for m in good)
        summary.peak_rss_mib = statistics.median(m.peak_rss_kib for m in good) / 1024
        summary.requests = statistics.median(m.requests for m in good)
        summary.largest_body = max(m.largest_body for m in good)
    return summary


def _ratio(value: float, base: Summary | None, attribute: str) -> str:
    if base is None or base.failed == base.runs:
        return DASH
    reference = getattr(base, attribute)
    return f"{value / reference:.2f}{TIMES}" if reference else DASH


def table(summaries: Sequence[Summary]) -> list[str]:
    """A Markdown table of one cell's summaries, with ratios to target-stitch."""
    by_key = {s.variant.key: s for s in summaries}
    ts1, ts4 = by_key.get("ts1"), by_key.get("ts4")
    lines = [
        (f"| variant | records/s (min{DASH}max) | CPU % | CPU s | peak RSS MiB | requests | largest body B "
         "| records/s / ts1 | CPU % / ts1 | RSS / ts1 | records/s / ts4 |"),
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in summaries:
        if s.failed == s.runs:
            lines.append(f"| {s.variant.label} | failed ({s.failed}/{s.runs} runs) |" + " |" * 9)
            continue
        note = f" ({s.failed}/{s.runs} runs failed)" if s.failed else ""
        requests = f"{s.requests:,.0f}" if s.variant.key != "floor" else DASH
        largest = f"{s.largest_body:,}" if s.variant.key != "floor" else DASH
        low, high = s.spread
        spread = f" ({low:,.0f}{DASH}{high:,.0f})" if s.runs - s.failed > 1 else ""
        lines.append(
            f"| {s.variant.label}{note} | {s.records_per_second:,.0f}{spread} | {s.cpu_percent:.0f} | "
            f"{s.cpu_seconds:.1f} | {s.peak_rss_mib:.1f} | {requests} | {largest} | "
            f"{_ratio(s.records_per_second, ts1, 'records_per_second')} | "
            f"{_ratio(s.cpu_percent, ts1, 'cpu_percent')} | "
            f"{_ratio(s.peak_rss_mib, ts1, 'peak_rss_mib')} | "
            f"{_ratio(s.records_per_second, ts4, 'records_per_second')} |",
        )
    return lines


def _version(bin_dir: Path, distribution: str) -> str:
    done = subprocess.run(
        [str(bin_dir / "python"), "-c",
         f"import importlib.metadata as m, sys; print(m.version({distribution!r}), '(Python', sys.version.split()[0] + ')')"],
        capture_output=True, text=True, check=False,
    )
    return done.stdout.strip() or "?"


def _git_revision() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    return "?"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def machine_info(setup: Setup) -> list[str]:
    """Lines describing the host and the programs measured (taken before the runs)."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"- date: {now}; host: {platform.platform()}",
        (f"- CPUs: {len(os.sched_getaffinity(0))} usable ({os.cpu_count()} online), {_cpu_model()}; "
         f"load average at start: {load}"),
        (f"- target-stitch-import {_version(setup.project_bin, 'target-stitch-import')}, "
         f"checkout {_git_revision()}; target-stitch {_version(setup.target_stitch_bin, 'target-stitch')}; "
         f"driver Python {platform.python_version()}"),
    ]


# Driver --------------------------------------------------------------------------------


def log(message: str) -> None:
    """Progress, on stderr (the report goes to stdout)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _setting(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        msg = f"expected NAME=VALUE, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value  # a plain string


def _csv(kind: Callable[[str], t.Any]) -> Callable[[str], list[t.Any]]:
    def parse(text: str) -> list[t.Any]:
        return [kind(item.strip()) for item in text.split(",") if item.strip()]
    return parse


def _input_name(name: str) -> str:
    if name not in INPUT_SHAPES:
        msg = f"unknown input {name!r} ({', '.join(INPUT_SHAPES)})"
        raise argparse.ArgumentTypeError(msg)
    return name


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (``--quick`` fills in small sizes unless given)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, help="records per input (default 200,000; --quick: 20,000)")
    parser.add_argument("--runs", type=int, help="runs per variant; medians are reported (default 3; --quick: 1)")
    parser.add_argument("--latency", type=_csv(float), default=[0.0, 100.0, 1000.0],
                        help="null API latencies in ms per request (default 0,100,1000)")
    parser.add_argument("--inputs", type=_csv(_input_name), default=list(INPUT_SHAPES),
                        help="inputs to run (default single,mixed)")
    parser.add_argument("--variants", type=_csv(Variant.parse), default=[Variant.parse(k) for k in ("import", "ts1", "ts4", "floor")],
                        help="import, ts1, ts4 (any tsN: turbo_boost_factor N), floor (default all four)")
    parser.add_argument("--quick", action="store_true", help="smoke check: 20,000 records, 1 run")
    parser.add_argument("--set", action="append", type=_setting, default=[], metavar="NAME=VALUE",
                        help="extra target-stitch-import setting (JSON value, else a string), e.g. validate_records=false")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"venvs and inputs (default {DEFAULT_CACHE})")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the project's venv (default: this one)")
    parser.add_argument("--target-stitch-python", help="interpreter for target-stitch's venv (default: --python)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before one run is killed (default 900)")
    parser.add_argument("--json", type=Path, help="also write every run's measurements to this file")
    args = parser.parse_args(argv)
    args.records = args.records or (QUICK_RECORDS if args.quick else 200_000)
    args.runs = args.runs or (1 if args.quick else 3)
    return args


def run_cell(variants: Sequence[Variant], cell: Cell, setup: Setup, runs: int) -> list[Measurement]:
    """All runs of all variants for one input at one latency, interleaved."""
    measurements = []
    for run in range(runs):
        shift = run % len(variants)
        for variant in [*variants[shift:], *variants[:shift]]:  # rotate: no variant always first
            m = measure(variant, cell, setup, run)
            measurements.append(m)
            failed = f" FAILED ({m.error})" if m.error else ""
            log(f"[{cell.source.name} {cell.latency_ms:g} ms] run {run + 1}/{runs} {variant.key}: {m.seconds:.2f} s, "
                f"{m.records_per_second:,.0f} records/s, CPU {m.cpu_percent:.0f} %, "
                f"RSS {m.peak_rss_kib / 1024:.1f} MiB, {m.requests} requests, largest {m.largest_body:,} B "
                f"(null API CPU {m.api_cpu_seconds:.2f} s){failed}")
    return measurements


def run_all(args: argparse.Namespace, setup: Setup, sources: Sequence[InputFile]) -> list[tuple[Cell, list[Measurement]]]:
    """Every latency (one null API each), input and variant; Ctrl-C keeps what is done."""
    cells: list[tuple[Cell, list[Measurement]]] = []
    try:
        for latency in args.latency:
            api = NullApi(latency)
            try:
                for source in sources:
                    cell = Cell(source, latency, api)
                    cells.append((cell, run_cell(args.variants, cell, setup, args.runs)))
            finally:
                api.close()
    except KeyboardInterrupt:
        log("interrupted: reporting the cells that finished")
    return cells


def render(args: argparse.Namespace, setup: Setup, machine: list[str], cells: Sequence[tuple[Cell, list[Measurement]]], minutes: float) -> str:
    """The Markdown report: machine, then one table per input and latency."""
    settings = f"defaults and {json.dumps(setup.settings)}" if setup.settings else "defaults"
    report = [
        "# target-stitch-import vs target-stitch", "", *machine,
        f"- {args.runs} run(s) per variant, medians; target-stitch-import settings: {settings}",
    ]
    for name in dict.fromkeys(cell.source.name for cell, _ in cells):
        for cell, measurements in cells:
            source = cell.source
            if source.name == name:
                size = source.path.stat().st_size / 1e6
                report += ["", f"## {source.name}: {source.records:,} records ({size:.1f} MB), null API latency {cell.latency_ms:g} ms", ""]
                report += table([summarize(v, [m for m in measurements if m.variant == v.key]) for v in args.variants])
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report += ["", (
        "Ratios divide by target-stitch turbo 1 (ts1) or 4 (ts4) of the same run. requests: POSTs "
        "(target-stitch-import also sends one GET /v2/import/status); largest body: the maximum over the runs. "
        f"Took {minutes:.1f} min; load average at the end: {load}."
    )]
    return "\n".join(report)


def main(argv: Sequence[str] | None = None) -> int:
    """Set up, run every cell, print the report; exit 1 if any run failed."""
    args = parse_args(argv)
    started = time.monotonic()
    cache: Path = args.cache_dir.expanduser()
    with cache_lock(cache):
        setup = Setup(
            project_bin=ensure_project(cache, args.python),
            target_stitch_bin=ensure_target_stitch(cache, args.target_stitch_python or args.python),
            work=Path(tempfile.mkdtemp(prefix="tsi-bench-")),
            settings=dict(args.set),
            timeout=args.timeout,
        )
        sources = [ensure_input(cache, name, args.records) for name in args.inputs]
    machine = machine_info(setup)
    try:
        cells = run_all(args, setup, sources)
    finally:
        shutil.rmtree(setup.work, ignore_errors=True)
    everything = [m for _, measurements in cells for m in measurements]
    if args.json:
        args.json.write_text(json.dumps([m.__dict__ for m in everything], indent=1), encoding="utf-8")
    print(render(args, setup, machine, cells, (time.monotonic() - started) / 60))
    return 1 if any(m.error for m in everything) or not cells else 0


if __name__ == "__main__":
    sys.exit(main())
