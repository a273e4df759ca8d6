"""A small Singer SDK tap for tests: one stream, records written as BATCH files.

Run as ``python sdk_batch_tap.py --config CONFIG``; with ``batch_config`` in the config the
SDK writes the records to JSON Lines files and sends BATCH messages naming them, as any SDK
tap does.
"""

from __future__ import annotations

import decimal
import typing as t

from singer_sdk import Stream, Tap
from singer_sdk import typing as th


class Items(Stream):
    """``count`` items with an exact price and an ``updated_at`` bookmark."""

    name = "items"
    primary_keys: t.ClassVar[list[str]] = ["id"]
    replication_key = "updated_at"
    schema = th.PropertiesList(
        th.Property("id", th.IntegerType),
        th.Property("price", th.NumberType),
        th.Property("updated_at", th.DateTimeType),
    ).to_dict()

    def get_records(self, context: dict | None) -> t.Iterator[dict[str, t.Any]]:
        """Yield the items."""
        _ = context
        for i in range(int(self.config.get("count", 5))):
            yield {"id": i, "price": decimal.Decimal(f"{i}.10"), "updated_at": f"2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z"}


class BatchTap(Tap):
    """The tap."""

    name = "tap-batchy"
    config_jsonschema = th.PropertiesList(th.Property("count", th.IntegerType)).to_dict()

    def discover_streams(self) -> list[Stream]:
        """One stream."""
        return [Items(self)]


if __name__ == "__main__":
    BatchTap.cli()
