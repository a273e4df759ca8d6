"""The target's settings: declared once (JSON schema for the SDK), read once (a dataclass)."""

from __future__ import annotations

import os
import typing as t
from dataclasses import dataclass
from pathlib import Path

from singer_sdk import typing as th

from target_stitch_import.contract import MAX_BODY_BYTES, MAX_MESSAGES, Region
from target_stitch_import.errors import ConfigError
from target_stitch_import.schema import SchemaMode
from target_stitch_import.sequence import SequenceSource

#: The smallest body limit that still leaves room for a header and one small record.
MIN_BATCH_BYTES = 1_000
MAX_IN_FLIGHT = 16
DEFAULT_BUFFERED_BYTES = 100_000_000
MAX_RECORD_WORKERS = 32
#: Record workers when the setting is unset: one per usable CPU, at most this many.
AUTO_RECORD_WORKERS = 4


def default_record_workers() -> int:
    """One record worker per usable CPU (at most AUTO_RECORD_WORKERS); none on one CPU.

    None where pipes cannot be polled (not POSIX).
    """
    if os.name != "posix":
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return min(cpus, AUTO_RECORD_WORKERS) if cpus > 1 else 0

CONFIG_JSONSCHEMA = th.PropertiesList(
    th.Property(
        "token",
        th.StringType,
        required=True,
        secret=True,
        title="Import API access token",
        description=(
            "The Stitch Import API access token of the integration "
            "(env TARGET_STITCH_IMPORT_TOKEN). Never logged."
        ),
    ),
    th.Property(
        "region",
        th.StringType,
        default=Region.US.value,
        allowed_values=[r.value for r in Region],
        title="Region",
        description="Stitch data pipeline region: 'us' (api.stitchdata.com) or 'eu'.",
    ),
    th.Property(
        "api_url",
        th.StringType,
        title="API base URL",
        description=(
            "Overrides the region's base URL, e.g. http://127.0.0.1:8765 for the "
            "embedded emulator (stitch-import-emulator serve)."
        ),
    ),
    th.Property(
        "max_batch_bytes",
        th.IntegerType,
        default=MAX_BODY_BYTES,
        title="Maximum request body bytes",
        description=(
            "No request body sent is larger than this (measured on the exact bytes "
            f"sent); at most {MAX_BODY_BYTES:,}."
        ),
    ),
    th.Property(
        "batch_size_rows",
        th.IntegerType,
        default=MAX_MESSAGES,
        title="Maximum messages per request",
        description=f"A batch is sent when it holds this many messages; at most {MAX_MESSAGES:,}.",
    ),
    th.Property(
        "max_batch_age_seconds",
        th.NumberType,
        default=60,
        title="Maximum batch age (seconds)",
        description=(
            "A table's open batch is sent once its oldest record waited this long, even "
            "when the tap is idle; bounds how stale STATE can get."
        ),
    ),
    th.Property(
        "request_timeout_seconds",
        th.NumberType,
        default=120,
        title="Request timeout (seconds)",
        description=(
            "Overall deadline of each try of a request (connect, upload, the whole answer); a "
            "try cut by it is retried. Raise it for 4 MB bodies over a slow uplink."
        ),
    ),
    th.Property(
        "max_retry_seconds",
        th.NumberType,
        default=600,
        title="Maximum retry time (seconds)",
        description=(
            "5xx, 429, dropped connections and timeouts are retried with exponential "
            "backoff and jitter until this much time has passed; then the run stops."
        ),
    ),
    th.Property(
        "first_contact_seconds",
        th.NumberType,
        default=30,
        title="First contact window (seconds)",
        description=(
            "Before the Import API was ever reached, a connection that cannot be made "
            "(refused, unknown host, timeout) is retried for this long only, then the run "
            "stops naming the URL (a 503 of the status check still waits up to "
            "max_retry_seconds)."
        ),
    ),
    th.Property(
        "progress_interval_seconds",
        th.NumberType,
        default=30,
        title="Progress interval (seconds)",
        description=(
            "One INFO line this often with records read, sent and acknowledged, MB sent, "
            "the current rate and the age of the last STATE written; 0 turns it off."
        ),
    ),
    th.Property(
        "max_buffered_bytes",
        th.IntegerType,
        default=DEFAULT_BUFFERED_BYTES,
        title="Memory ceiling for open batches (bytes)",
        description=(
            "When the open batches of all tables together hold more than this, the largest "
            "are sent at once (many streams cannot pile up max_batch_bytes each); at least "
            "max_batch_bytes."
        ),
    ),
    th.Property(
        "max_requests_in_flight",
        th.IntegerType,
        default=4,
        title="Requests in flight",
        description=(
            "Batch requests sent at the same time while reading goes on "
            f"(1 to {MAX_IN_FLIGHT}). STATE still waits for every earlier record."
        ),
    ),
    th.Property(
        "sequence_source",
        th.StringType,
        default=SequenceSource.BOOKMARK.value,
        allowed_values=[s.value for s in SequenceSource],
        title="Sequence source",
        description=(
            "'bookmark': sequences order like the stream's bookmark (replication key) "
            "value so a replayed older row never overwrites a newer one; 'time': arrival "
            "time only."
        ),
    ),
    th.Property(
        "schema_mode",
        th.StringType,
        default=SchemaMode.RELAXED.value,
        allowed_values=[m.value for m in SchemaMode],
        title="Schema mode",
        description=(
            "'relaxed': send a Draft 4 schema that accepts what taps really send (every "
            "type nullable except keys, $ref resolved, unknown keywords dropped); "
            "'strict': send the tap's schema as it is."
        ),
    ),
    th.Property(
        "validate_only",
        th.BooleanType,
        default=False,
        title="Validate only",
        description=(
            "Send every batch to /v2/import/validate instead of /batch: nothing is "
            "persisted and no STATE is written."
        ),
    ),
    th.Property(
        "lean_record_path",
        th.BooleanType,
        default=True,
        title="Lean record path",
        description=(
            "Records of pass-through streams (no stream map, no flattening, no record "
            "metadata) skip the SDK's generic per-record steps; the bodies sent are the "
            "same byte for byte. Set false to send every record through the SDK's path "
            "(for diagnosis)."
        ),
    ),
    th.Property(
        "record_workers",
        th.IntegerType,
        title="Record worker processes",
        description=(
            "Processes that decode, validate and encode records beside the reading one, "
            f"on the machine's other cores (0 to {MAX_RECORD_WORKERS}; 0: all in the "
            "reading process). Unset: one per usable CPU, at most "
            f"{AUTO_RECORD_WORKERS}, none on a single CPU. Used for pass-through streams "
            "once the input brings many records at a time; the bodies are the same byte "
            "for byte."
        ),
    ),
    th.Property(
        "dry_run_dir",
        th.StringType,
        title="Dry-run directory",
        description=(
            "Write each request body to a file in this directory instead of sending it; "
            "no STATE is written."
        ),
    ),
).to_dict()


@dataclass(frozen=True)
class Settings:
    """The settings the target works with, checked once at start-up."""

    token: str
    base_url: str
    max_batch_bytes: int
    batch_size_rows: int
    max_batch_age_seconds: float
    request_timeout_seconds: float
    max_retry_seconds: float
    first_contact_seconds: float
    progress_interval_seconds: float
    max_buffered_bytes: int
    max_requests_in_flight: int
    sequence_source: SequenceSource
    schema_mode: SchemaMode
    validate_only: bool
    dry_run_dir: Path | None
    lean_record_path: bool = True
    record_workers: int = 0

    @property
    def writes_state(self) -> bool:
        """Whether STATE may be written (not when nothing is persisted)."""
        return not self.validate_only and self.dry_run_dir is None

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> Settings:
        """Build settings from the SDK's validated config.

        Raises:
            ConfigError: A value is out of range or settings contradict each other.
        """
        def get(name: str) -> t.Any:  # noqa: ANN401 - the value, or its declared default
            value = config.get(name)
            if value is None:
                return CONFIG_JSONSCHEMA["properties"][name].get("default")
            return value

        try:
            region = Region(get("region"))
            sequence_source = SequenceSource(get("sequence_source"))
            schema_mode = SchemaMode(get("schema_mode"))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        settings = cls(
            token=str(get("token") or ""),
            base_url=str(get("api_url") or region.base_url).rstrip("/"),
            max_batch_bytes=int(get("max_batch_bytes")),
            batch_size_rows=int(get("batch_size_rows")),
            max_batch_age_seconds=float(get("max_batch_age_seconds")),
            request_timeout_seconds=float(get("request_timeout_seconds")),
            max_retry_seconds=float(get("max_retry_seconds")),
            first_contact_seconds=float(get("first_contact_seconds")),
            progress_interval_seconds=float(get("progress_interval_seconds")),
            max_buffered_bytes=int(get("max_buffered_bytes")),
            max_requests_in_flight=int(get("max_requests_in_flight")),
            sequence_source=sequence_source,
            schema_mode=schema_mode,
            validate_only=bool(get("validate_only")),
            dry_run_dir=Path(config["dry_run_dir"]) if config.get("dry_run_dir") else None,
            lean_record_path=bool(get("lean_record_path")),
            record_workers=(
                int(config["record_workers"])
                if config.get("record_workers") is not None
                else default_record_workers()
            ),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Reject values that cannot work.

        Raises:
            ConfigError: The first problem found.
        """
        problems = [
            (not self.token, "token is required"),
            (
                not MIN_BATCH_BYTES <= self.max_batch_bytes <= MAX_BODY_BYTES,
                f"max_batch_bytes must be between {MIN_BATCH_BYTES:,} and {MAX_BODY_BYTES:,}",
            ),
            (
                not 1 <= self.batch_size_rows <= MAX_MESSAGES,
                f"batch_size_rows must be between 1 and {MAX_MESSAGES:,}",
            ),
            (self.max_batch_age_seconds <= 0, "max_batch_age_seconds must be positive"),
            (self.request_timeout_seconds <= 0, "request_timeout_seconds must be positive"),
            (self.max_retry_seconds < 0, "max_retry_seconds must not be negative"),
            (self.first_contact_seconds < 0, "first_contact_seconds must not be negative"),
            (self.progress_interval_seconds < 0, "progress_interval_seconds must not be negative"),
            (
                self.max_buffered_bytes < self.max_batch_bytes,
                "max_buffered_bytes must be at least max_batch_bytes",
            ),
            (
                not 1 <= self.max_requests_in_flight <= MAX_IN_FLIGHT,
                f"max_requests_in_flight must be between 1 and {MAX_IN_FLIGHT}",
            ),
            (
                not 0 <= self.record_workers <= MAX_RECORD_WORKERS,
                f"record_workers must be between 0 and {MAX_RECORD_WORKERS}",
            ),
            (
                not self.base_url.startswith(("http://", "https://")),
                "api_url must start with http:// or https://",
            ),
            (
                self.validate_only and self.dry_run_dir is not None,
                "validate_only and dry_run_dir cannot be used together",
            ),
        ]
        for failed, message in problems:
            if failed:
                raise ConfigError(message)
