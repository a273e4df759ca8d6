"""The lean record path and the SDK's path give byte-identical bodies and the same warnings.

Both runs are dry runs (bodies written to files) of the installed command over the same
input, once with ``lean_record_path`` on (the default) and once off.
"""

from __future__ import annotations

import json
import re
import time
import typing as t
from pathlib import Path

from targetrun import Result, record, run_target, schema, state

#: Sequences of messages without a bookmark value are the arrival time (nanoseconds): they
#: differ between two runs and are masked. The inputs' bookmarks are years older than the
#: run, so every bookmark-derived sequence stays and is compared exactly.
_SEQUENCE = re.compile(rb'"sequence":(\d+)')


def _mask(match: re.Match[bytes]) -> bytes:
    recent = time.time_ns() - 86_400 * 10**9
    return b'"sequence":0' if int(match.group(1)) > recent else match.group(0)


def bodies(directory: Path) -> list[bytes]:
    """The dry-run bodies, time-based sequences masked, sorted (workers finish in any order)."""
    return sorted(_SEQUENCE.sub(_mask, path.read_bytes()) for path in directory.iterdir())


def both_paths(tmp_path: Path, lines: list[dict[str, t.Any] | str], **settings: t.Any) -> tuple[Result, Result]:
    """Run the input through both record paths; return both results (bodies compared)."""
    results = []
    outputs = []
    for lean in (True, False):
        out = tmp_path / f"lean-{lean}"
        config = {"token": "t", "dry_run_dir": str(out), "lean_record_path": lean, **settings}
        result = run_target(config, lines, tmp_path)
        assert result.returncode == 0, result.stderr
        results.append(result)
        outputs.append(bodies(out))
    assert outputs[0] == outputs[1]
    assert outputs[0], "no body was written"
    return results[0], results[1]


def warnings(result: Result) -> list[str]:
    """The WARNING lines' messages."""
    return sorted(line.split(" | ", 3)[-1] for line in result.stderr.splitlines() if "| WARNING" in line)


PROPS = {
    "id": {"type": "integer"},
    "name": {"type": ["null", "string"]},
    "price": {"type": ["null", "number"]},
    "at": {"type": ["null", "string"], "format": "date-time"},
    "day": {"type": ["null", "string"], "format": "date"},
    "clock": {"type": ["null", "string"], "format": "time"},
    "any_at": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
    "nested": {"type": ["null", "object"], "properties": {"at": {"type": "string", "format": "date-time"}}},
    "tags": {"type": ["null", "array"], "items": {"type": "string"}},
    "u": {"type": ["null", "string"], "format": "date-time"},
}


def tricky_records() -> list[dict[str, t.Any] | str]:
    """Records that exercise every step of the per-record path."""
    lines: list[dict[str, t.Any] | str] = [schema("t", PROPS, ["id"], ["u"])]
    lines.append(record("t", {"id": 1, "name": "plain", "price": 1.5, "at": "2024-03-01T12:34:56.789012Z",
                              "u": "2024-03-01T00:00:00Z"}))
    lines.append(record("t", {"id": 2, "at": "2024-03-01T12:34:56", "day": "2024-03-01", "clock": "12:34:56",
                              "u": "2024-03-01T00:00:00+02:00"}))  # naive date-time, offset bookmark
    lines.append(record("t", {"id": 3, "any_at": "2024-01-01T00:00:00+05:30", "u": None,
                              "nested": {"at": "2024-01-01T00:00:00Z"}, "tags": ["a", "b"]}))
    lines.append(record("t", {"id": 4, "_sdc_extracted_at": "2024-01-01T00:00:00Z", "_sdc_deleted_at": None,
                              "_sdc_sequence": 5, "u": "2024-03-02T00:00:00Z"}))  # SDK metadata dropped
    lines.append(record("t", {"id": 5, "extra": "no schema", "also": None, "u": "2024-03-02T00:00:00Z"}))
    lines.append(record("t", {"id": 6, "extra": "again", "u": "2024-03-02T00:00:00Z"}))  # warned once
    lines.append('{"type": "RECORD", "stream": "t", "record": {"id": 7, "price": 12345678901234567890.123456789, '
                 '"u": "2024-03-03T00:00:00Z"}}')
    lines.append(record("t", {"id": 1, "name": "v2", "u": "2024-03-01T00:00:00Z"}))  # same bookmark: tiebreak
    lines.append(state({"n": 1}))
    lines.append(schema("t", {**PROPS, "added": {"type": ["null", "integer"]}}, ["id"], ["u"]))  # new sink
    lines.append(record("t", {"id": 8, "added": 1, "u": "2024-03-04T00:00:00Z"}))
    lines.append(schema("k", {"n": {"type": "integer"}}))  # keyless, no bookmark
    lines += [record("k", {"n": n}) for n in range(3)]
    return lines


def test_both_paths_give_identical_bodies_and_warnings(tmp_path: Path) -> None:
    lean, sdk = both_paths(tmp_path, tricky_records())
    assert warnings(lean) == warnings(sdk)
    assert any("No schema for record field 'extra'" in w for w in warnings(lean))


def test_both_paths_without_validation(tmp_path: Path) -> None:
    both_paths(tmp_path, tricky_records(), validate_records=False)


def test_bad_timestamps_stop_both_paths_with_the_same_line(tmp_path: Path) -> None:
    lines: list[dict[str, t.Any] | str] = [schema("b", {"id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}, ["id"])]
    lines.append(record("b", {"id": 1, "at": "not a date"}))
    errors = []  # with validation on or off: the format is not validated, the SDK parses it
    for lean in (True, False):
        config = {"token": "t", "dry_run_dir": str(tmp_path / f"o{lean}"), "lean_record_path": lean}
        result = run_target(config, lines, tmp_path)
        assert result.returncode == 1
        errors.append(result.last_error_line)
    assert errors[0] == errors[1]
    assert errors[0] == (
        "target-stitch-import: error: input line 2: stream 'b': record id=1: field 'at' is "
        "declared date-time but holds 'not a date', which is not an ISO 8601 date-time"
    )


def test_a_stream_map_takes_the_sdk_path_and_still_lands(tmp_path: Path) -> None:
    out = tmp_path / "mapped"
    lines = [schema("m", {"id": {"type": "integer"}, "secret": {"type": "string"}}, ["id"]),
             record("m", {"id": 1, "secret": "x"})]
    config = {"token": "t", "dry_run_dir": str(out), "stream_maps": {"m": {"secret": "__NULL__"}}}
    result = run_target(config, lines, tmp_path)
    assert result.returncode == 0, result.stderr
    (body,) = [json.loads(path.read_text()) for path in out.iterdir()]
    assert body["messages"][0]["data"] == {"id": 1}
