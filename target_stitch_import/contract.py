"""Facts of the Stitch Import API contract shared by the target and the emulator.

See ``shared/import-api.md``: base URLs, paths and the documented limits.
"""

from __future__ import annotations

import enum

#: Largest request body the target sends, in bytes (Stitch's limit is 4 MB).
MAX_BODY_BYTES = 4_000_000
#: Messages in one batch request: at least one, at most this many.
MAX_MESSAGES = 20_000
#: Largest ``sequence`` Stitch accepts (2**63 - 1).
MAX_SEQUENCE = 9_223_372_036_854_775_807
#: Data points in one message's ``data``.
MAX_DATA_POINTS = 10_000
#: Deepest nesting of objects and arrays inside one message's ``data`` (Stitch's contract is
#: silent; destinations cannot nest deeper, and the emulator refuses it).
MAX_RECORD_DEPTH = 100
#: String key values must be shorter than this many characters.
MAX_STRING_KEY_LENGTH = 256

STATUS_PATH = "/v2/import/status"
BATCH_PATH = "/v2/import/batch"
VALIDATE_PATH = "/v2/import/validate"


class Region(str, enum.Enum):
    """Stitch data pipeline regions and their Import API base URLs."""

    US = "us"
    EU = "eu"

    @property
    def base_url(self) -> str:
        """The Import API base URL of this region."""
        return _BASE_URLS[self]


_BASE_URLS = {
    Region.US: "https://api.stitchdata.com",
    Region.EU: "https://api.eu-central-1.stitchdata.com",
}


def record_shape(value: object) -> tuple[int, int]:
    """Return (data points, nesting depth) of a value; scalars (null too) are data points."""
    points = 0
    deepest = 0
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict):
            deepest = max(deepest, depth + 1)
            pending.extend((item, depth + 1) for item in current.values())
        elif isinstance(current, list):
            deepest = max(deepest, depth + 1)
            pending.extend((item, depth + 1) for item in current)
        else:
            points += 1
    return points, deepest
