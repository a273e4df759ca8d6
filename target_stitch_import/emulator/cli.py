"""``stitch-import-emulator``: run the Import API emulator (``serve``), or ``show`` its data.

``serve`` prints exactly ``listening on http://HOST:PORT`` as its first standard output line
(the real port when ``--port 0`` asked for a free one), then logs one line per request on
standard error. SIGTERM or SIGINT stops it cleanly: no new requests, those in flight finish,
the database is closed, exit status 0.

``show`` lists what a Stitch user would see: the tables and their visible rows. With
``--stats`` it adds, per table, the batch counters, the active table version and the staged
versions (``v3:1200``: 1,200 rows of version 3 loaded, not yet activated). Names and values
come from clients: their control characters are escaped (see
:mod:`target_stitch_import.emulator.text`), columns are aligned by terminal width, and a
reader that stops early (``show | head``) ends the output quietly.

With ``--connect-token`` it also serves the Connect API (``/v4``: sources and their Import
API tokens, kept in the database); without it, every ``/v4`` request answers 401. Then
``/v2`` accepts the ``--token`` values and the tokens created through ``/v4`` and not revoked;
any non-empty token only while there are neither.

Options are checked by argparse: a port within 0..65535, sizes and counts of at least 1.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import typing as t
from pathlib import Path

import simplejson

from target_stitch_import.contract import MAX_BODY_BYTES
from target_stitch_import.emulator.app import MAX_CONCURRENT_BODIES, ServerSettings, create_server
from target_stitch_import.emulator.faults import FaultSettings, parse_fault, parse_latency
from target_stitch_import.emulator.storage import Storage, StorageError
from target_stitch_import.emulator.text import (
    display_width,
    escape_controls,
    escape_json_controls,
    pad,
)

if t.TYPE_CHECKING:
    from collections.abc import Callable, Sequence

_T = t.TypeVar("_T")
PROG = "stitch-import-emulator"
DEFAULT_DATABASE = "stitch-emulator.sqlite"
#: How long a stopping server waits for requests in flight.
DRAIN_SECONDS = 30.0
#: How often the accept loop checks for shutdown.
POLL_SECONDS = 0.05
_STAT_FIELDS = ("rows", "batches", "messages", "bytes", "stale_ignored", "ties")
_STAT_HEADER = ("table", *_STAT_FIELDS, "active_version", "staged")


def _argument_type(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """Wrap a parser so argparse shows its ValueError text."""

    def convert(text: str) -> _T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """Return an argparse type: an integer from ``low`` up to ``high`` (None: no maximum)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            msg = f"expected an integer, got {text!r}"
            raise argparse.ArgumentTypeError(msg) from None
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            msg = f"expected an integer {bounds}, got {value}"
            raise argparse.ArgumentTypeError(msg)
        return value

    parse.__name__ = "integer"
    return parse


def _seconds(text: str) -> float:
    """Parse a finite, non-negative number of seconds (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        msg = f"expected a number of seconds >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser of ``stitch-import-emulator``."""
    parser = argparse.ArgumentParser(prog=PROG, description="A local Stitch Import API emulator.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="Serve the Import API, storing batches in SQLite.")
    serve.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
    serve.add_argument(
        "--port", type=_bounded_int(0, 65535), default=8765, help="Port (0: a free one)."
    )
    serve.add_argument(
        "--database",
        type=Path,
        default=Path(DEFAULT_DATABASE),
        help=f"The SQLite file (created when missing; default ./{DEFAULT_DATABASE}).",
    )
    serve.add_argument(
        "--token",
        action="append",
        default=[],
        help="An accepted bearer token (repeatable; none given: any non-empty token).",
    )
    serve.add_argument(
        "--connect-token",
        default=None,
        help=(
            "Serve the Connect API (/v4) to requests bearing this token; without it, /v4 "
            "answers 401. Tokens it creates are accepted by /v2 until revoked."
        ),
    )
    serve.add_argument(
        "--inactive-token",
        action="append",
        default=[],
        help="A token of a paused integration, answered with 403 (repeatable).",
    )
    serve.add_argument(
        "--schema",
        default=None,
        help="The integration schema's name (default: the database's, else import_api).",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=_bounded_int(1),
        default=MAX_BODY_BYTES,
        help="Larger request bodies are answered with 413.",
    )
    serve.add_argument(
        "--max-concurrent-bodies",
        type=_bounded_int(1),
        default=MAX_CONCURRENT_BODIES,
        metavar="N",
        help=(
            "Bodies parsed, validated and stored at once; more wait for a slot. Each takes up "
            "to about 30 times its size in memory."
        ),
    )
    faults = serve.add_argument_group("fault injection")
    faults.add_argument(
        "--fault",
        action="append",
        default=[],
        type=_argument_type(parse_fault),
        metavar="KIND:SHARE",
        help="Fail this share of POSTs; KIND: 500, 502, 503, 429, drop, stall (repeatable).",
    )
    faults.add_argument(
        "--fault-limit", type=_bounded_int(0), default=None, help="Inject at most N faults."
    )
    faults.add_argument(
        "--latency",
        type=_argument_type(parse_latency),
        default=None,
        metavar="MS|MIN-MAX",
        help="Milliseconds added to every POST (fixed, or drawn from a range).",
    )
    faults.add_argument(
        "--stall-seconds",
        type=_seconds,
        default=30.0,
        help="How long a stall fault waits before answering normally.",
    )
    faults.add_argument(
        "--retry-after", type=_bounded_int(0), default=1, help="Retry-After of 429 and 503."
    )
    faults.add_argument(
        "--status-503",
        type=_bounded_int(-1),
        default=0,
        metavar="N",
        help="The first N GET /status answer 503 (-1: all).",
    )
    faults.add_argument("--seed", type=int, default=None, help="Random seed of the fault draws.")

    show = commands.add_parser("show", help="Show the stored tables, or one table's rows.")
    show.add_argument("table", nargs="?", help="The table whose rows to show.")
    show.add_argument(
        "--database",
        type=Path,
        default=Path(DEFAULT_DATABASE),
        help=f"The emulator's SQLite file (default ./{DEFAULT_DATABASE}).",
    )
    show.add_argument("--json", action="store_true", help="Write JSON (exact numbers).")
    show.add_argument(
        "--stats",
        action="store_true",
        help="Add batch statistics, active versions and staged (not yet active) versions.",
    )
    show.add_argument("--system", action="store_true", help="Include the _sdc_* columns.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``stitch-import-emulator``; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            try:
                faults = FaultSettings(
                    shares=tuple(args.fault),
                    limit=args.fault_limit,
                    latency_ms=args.latency,
                    stall_seconds=args.stall_seconds,
                    retry_after=args.retry_after,
                    status_503=args.status_503,
                    seed=args.seed,
                )
            except ValueError as exc:
                parser.error(str(exc))
            return serve(args, faults)
        return _show_to_pipe(args)
    except (StorageError, OSError) as exc:
        return _failed(exc)


def _show_to_pipe(args: argparse.Namespace) -> int:
    """Run :func:`show`; a reader that stops early (``show | head``) ends it quietly."""
    try:
        status = show(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return 0
    return status


def serve(args: argparse.Namespace, faults: FaultSettings) -> int:
    """Serve until SIGTERM or SIGINT; return the exit status."""
    settings = ServerSettings(
        tokens=frozenset(args.token),
        inactive_tokens=frozenset(args.inactive_token),
        max_body_bytes=args.max_body_bytes,
        max_concurrent_bodies=args.max_concurrent_bodies,
        faults=faults,
        connect_token=args.connect_token or None,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with Storage(args.database, create=True, schema_name=args.schema) as storage:
        server = create_server(args.host, args.port, storage, settings)
        worker = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_SECONDS},
            name="emulator",
            daemon=True,
        )
        worker.start()
        _out(f"listening on {server.url}")
        sys.stdout.flush()
        if not settings.tokens and not storage.tokens_created:
            server.log(
                "no --token given: any non-empty bearer token is accepted (until a token is "
                "created through the Connect API)",
            )
        elif storage.tokens_created:
            server.log("tokens created through the Connect API are accepted until revoked")
        if settings.connect_token is None:
            server.log("no --connect-token given: the Connect API (/v4) answers 401")
        server.log(f"database {args.database}, schema {storage.schema_name}")
        stop.wait()
        server.log("stopping: finishing requests in flight")
        server.drain(DRAIN_SECONDS)
        server.shutdown()
        server.server_close()
    return 0


def show(args: argparse.Namespace) -> int:
    """Print tables, or one table's rows, optionally with statistics."""
    with Storage(args.database) as storage:
        stats = storage.stats() if args.stats else None
        if args.table is None:
            tables = storage.tables()
            if args.json:
                document: dict[str, t.Any] = {"schema": storage.schema_name, "tables": tables}
                if stats is not None:
                    document["stats"] = stats
                _print_json(document)
                return 0
            _out(f"schema: {escape_controls(storage.schema_name)}")
            if stats is None:
                _print_table(["table", "rows"], [[name, count] for name, count in tables.items()])
            else:
                _print_stats(stats)
            return 0
        try:
            rows = storage.rows(args.table, system=args.system)
        except StorageError as exc:
            return _failed(exc)
        table_stats = stats["tables"][args.table] if stats is not None else None
        if args.json:
            if table_stats is None:
                _print_json(rows)
            else:
                _print_json({"table": args.table, "rows": rows, "stats": table_stats})
            return 0
        columns = list(dict.fromkeys(name for row in rows for name in row))
        _print_table(columns, [[row.get(name) for name in columns] for row in rows])
        if table_stats is not None:
            _out()
            _print_table(_STAT_HEADER, [_stat_row(args.table, table_stats)])
    return 0


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that exiting does not flush into a closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _failed(error: Exception) -> int:
    sys.stderr.write(f"{PROG}: {escape_controls(str(error))}\n")
    return 1


def _print_json(value: object) -> None:
    text = simplejson.dumps(value, use_decimal=True, ensure_ascii=False, indent=2)
    _out(escape_json_controls(text))


def _cell(value: object) -> str:
    if isinstance(value, str):
        return escape_controls(value)
    text: str = simplejson.dumps(value, use_decimal=True, ensure_ascii=False, separators=(",", ":"))
    return escape_json_controls(text)


def _print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [
        [escape_controls(name) for name in header],
        *([_cell(value) for value in row] for row in rows),
    ]
    widths = [max(display_width(line[i]) for line in cells) for i in range(len(header))]
    for line in cells:
        _out("  ".join(pad(text, width) for text, width in zip(line, widths, strict=True)).rstrip())


def _stat_row(table: str, values: dict[str, t.Any]) -> list[object]:
    """Return a table's statistics line: counters, active version, staged versions' rows."""
    active = values["active_version"]
    staged = ",".join(f"v{entry['version']}:{entry['rows']}" for entry in values["staged"])
    return [
        table,
        *(values[f] for f in _STAT_FIELDS),
        "-" if active is None else active,
        staged or "-",
    ]


def _print_stats(stats: dict[str, t.Any]) -> None:
    rows = [_stat_row(name, values) for name, values in stats["tables"].items()]
    total_rows = sum(values["rows"] for values in stats["tables"].values())
    rows.append(["(total)", total_rows, *(stats[f] for f in _STAT_FIELDS[1:]), "", ""])
    _print_table(_STAT_HEADER, rows)


if __name__ == "__main__":
    sys.exit(main())
