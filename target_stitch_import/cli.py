"""Command line entry point of ``target-stitch-import``.

The SDK's CLI does the work (``--config``, ``--config ENV``, ``--input``, ``--about``).
This wrapper turns the errors a user can act on into one line on stderr and exit code 1,
instead of a traceback: the stream or table, the HTTP status and Stitch's own message.
"""

from __future__ import annotations

import sys
import typing as t

from singer_sdk.exceptions import (
    ConfigValidationError,
    InvalidJSONSchema,
    InvalidRecord,
    MissingKeyPropertiesError,
    RecordsWithoutSchemaException,
)
from singer_sdk.singerlib.exceptions import InvalidInputLine

from target_stitch_import.errors import StitchImportError
from target_stitch_import.target import TargetStitchImport

_LINE_LIMIT = 1_000

#: Errors that are the input's or the settings' fault, reported in one line.
USER_ERRORS: tuple[type[BaseException], ...] = (
    StitchImportError,
    ConfigValidationError,
    InvalidJSONSchema,
    InvalidRecord,
    MissingKeyPropertiesError,
    RecordsWithoutSchemaException,
    InvalidInputLine,
)


def error_line(exc: BaseException) -> str:
    """Return the one line printed for a user error."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > _LINE_LIMIT:
        text = text[: _LINE_LIMIT - 3] + "..."
    return f"target-stitch-import: error: {text}"


def main(argv: t.Sequence[str] | None = None) -> None:
    """Run the target; user errors end with one line and exit code 1."""
    try:
        TargetStitchImport.cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="target-stitch-import",
        )
    except USER_ERRORS as exc:
        sys.stdout.flush()
        sys.stderr.write(error_line(exc) + "\n")
        sys.stderr.flush()
        sys.exit(1)


if __name__ == "__main__":
    main()
