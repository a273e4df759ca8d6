#!/usr/bin/env python3
"""Throughput benchmark: records/s and peak RSS of target-stitch-import.

Generates a Singer stream (one SCHEMA, N RECORDs of a small table, a STATE every 10k),
starts the embedded emulator on a free loopback port, pipes the stream through the
installed ``target-stitch-import`` and reports wall time, records/s and the target's peak
RSS (its own process, from ``wait4``). Run from the project's venv:

    python benchmarks/benchmark.py --records 200000 --runs 3 [--set validate_records=false]

Each ``--set name=value`` (JSON value) is added to the target's config; compare variants
by running the script once per variant. Nothing here is a test: numbers depend on the host.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def generate(path: Path, records: int) -> None:
    """Write the benchmark's Singer input."""
    schema = {
        "type": "SCHEMA",
        "stream": "bench",
        "schema": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": ["null", "string"]},
                "amount": {"type": ["null", "number"]},
                "updated_at": {"type": ["null", "string"], "format": "date-time"},
            },
        },
        "key_properties": ["id"],
        "bookmark_properties": ["updated_at"],
    }
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps(schema) + "\n")
        for i in range(records):
            second = i % 86_400
            out.write(
                '{"type":"RECORD","stream":"bench","record":{"id":%d,"name":"customer %d",'
                '"amount":%d.%02d,"updated_at":"2026-01-01T%02d:%02d:%02dZ"}}\n'
                % (i, i, i % 10_000, i % 100, second // 3600, second // 60 % 60, second % 60),
            )
            if i % 10_000 == 9_999:
                out.write(json.dumps({"type": "STATE", "value": {"at": i}}) + "\n")


def start_emulator(database: Path, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start the emulator; return the process and its URL."""
    process = subprocess.Popen(
        [str(BIN / "stitch-import-emulator"), "serve", "--port", "0", "--database", str(database),
         "--token", "bench", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None  # noqa: S101
    line = process.stdout.readline().strip()
    if not line.startswith("listening on "):
        process.kill()
        sys.exit(f"emulator did not start: {line!r}")
    return process, line.removeprefix("listening on ")


def run_once(stream: Path, config: Path) -> tuple[float, int]:
    """Run the target once; return (seconds, peak RSS in KiB)."""
    with stream.open("rb") as stdin:
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(BIN / "target-stitch-import"), "--config", str(config)],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("target failed; rerun without the benchmark to see why")
    return elapsed, usage.ru_maxrss


def main() -> None:
    """Run the benchmark and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=JSON",
                        help="extra target setting, e.g. validate_records=false")
    parser.add_argument("--emulator-arg", action="append", default=[],
                        help="extra emulator option, e.g. --emulator-arg=--latency=20")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tsi-bench-"))
    stream = work / "input.singer"
    generate(stream, args.records)
    settings: dict[str, object] = {}
    for item in args.set:
        name, _, value = item.partition("=")
        settings[name] = json.loads(value)

    times, peaks = [], []
    for run in range(args.runs):
        emulator, url = start_emulator(work / f"emulator-{run}.sqlite", args.emulator_arg)
        try:
            config = work / "config.json"
            config.write_text(json.dumps({"token": "bench", "api_url": url, **settings}))
            seconds, peak = run_once(stream, config)
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)
        times.append(seconds)
        peaks.append(peak)
        print(f"run {run + 1}: {seconds:.2f} s, {args.records / seconds:,.0f} records/s, "
              f"peak RSS {peak / 1024:.1f} MiB", flush=True)
    median = statistics.median(times)
    print(f"\n{args.records:,} records, settings {settings or '{}'}: median {median:.2f} s = "
          f"{args.records / median:,.0f} records/s (best {args.records / min(times):,.0f}); "
          f"peak RSS {max(peaks) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
