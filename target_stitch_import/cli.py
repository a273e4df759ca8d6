"""Command line entry point of ``target-stitch-import``.

The SDK's CLI does the work (``--config``, ``--config ENV``, ``--input``, ``--about``).
This wrapper makes sure a run that cannot go on ends with exactly one line and a non-zero
exit code, never a traceback: the input line, stream or table, the HTTP status and
Stitch's own message, and what to do. The line goes through the target's logger at ERROR
level (so orchestrators such as Meltano show it as an error), or straight to stderr when
that logger is silenced. Exit codes: 1 for errors, ``128 + N`` when stopped by signal N.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import platform
import signal
import sys
import typing as t

from target_stitch_import.errors import StitchImportError, StoppedError

PROG = "target-stitch-import"
_LINE_LIMIT = 1_000
_SIGNAL_EXIT_BASE = 128

#: The SDK's errors that are the input's or the settings' doing, by module: settings
#: (stream maps included: an expression that does not parse or fails), records, schemas,
#: input lines.
_SDK_USER_ERRORS = (
    (
        "singer_sdk.exceptions",
        ("ConfigurationError", "MappingError", "FatalSyncError", "InvalidRecord", "DataError"),
    ),
    ("singer_sdk.singerlib.exceptions", ("SingerReadError",)),
)


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the input's, the settings', the system's or the API's doing.

    They are reported as they are (a config file that is not there, a disk that is full).
    The SDK's count once it is loaded (``connect`` runs without it: none of its errors can
    occur there).
    """
    errors: list[type[BaseException]] = [StitchImportError, StoppedError, OSError]
    for module_name, names in _SDK_USER_ERRORS:
        module = sys.modules.get(module_name)
        for name in names:
            error = getattr(module, name, None)
            if isinstance(error, type) and issubclass(error, BaseException):
                errors.append(error)
    return tuple(errors)


def error_text(exc: BaseException) -> str:
    """Return the one-line text reported for an error (input line first, when known)."""
    try:
        text = " ".join(str(exc).split())
    except Exception:  # noqa: BLE001 - a message that cannot even be rendered
        text = ""
    text = text or type(exc).__name__
    if not isinstance(exc, user_errors()):
        text = (
            f"unexpected {type(exc).__name__}: {text} (this is a bug of {PROG}; please "
            "report it with the log of a run with LOGLEVEL=debug)"
        )
    where = getattr(exc, "input_line", None)
    if isinstance(where, str):
        text = f"{where}: {text}"
    if len(text) > _LINE_LIMIT:
        text = text[: _LINE_LIMIT - 3] + "..."
    return text


def error_line(exc: BaseException) -> str:
    """Return the line printed on stderr when the logger is silenced."""
    return f"{PROG}: error: {error_text(exc)}"


def report(exc: BaseException) -> None:
    """Report a fatal error in one line: through logging at ERROR, else on stderr."""
    logger = logging.getLogger(PROG)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    logger.debug("Details of the error:", exc_info=exc)
    if logger.isEnabledFor(logging.ERROR) and logger.hasHandlers():
        logger.error("%s", error_text(exc))
        return
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(error_line(exc) + "\n")
        sys.stderr.flush()


#: glibc's ``mallopt`` parameter number of ``M_MMAP_THRESHOLD``.
_M_MMAP_THRESHOLD = -3
#: Buffers from this size on get their own memory mapping (batch bodies are megabytes).
MMAP_THRESHOLD_BYTES = 1 << 20


def map_large_buffers() -> bool:
    """On glibc, give buffers of a megabyte or more their own mapping; return if it did.

    glibc serves large allocations from mappings that go back to the system when freed,
    but after the first such free it raises that threshold up to 32 MB, and from then on
    the 4 MB batch bodies come from the heap, which keeps its high-water mark: the peak
    memory of a run grows by the bodies of every table and request in flight. A fixed
    threshold keeps it at what is live. Respects ``MALLOC_MMAP_THRESHOLD_`` when set; a
    no-op elsewhere (musl, macOS, Windows).
    """
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def main(argv: t.Sequence[str] | None = None) -> t.NoReturn:
    """Run the target; a run that cannot go on ends with one line and a non-zero code.

    ``target-stitch-import connect ...`` runs :mod:`target_stitch_import.connect` instead.
    Ends the process (see :func:`exit_now`): call it as a command, not as a function.
    """
    try:
        _run(argv)
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    exit_now(code)


def _run(argv: t.Sequence[str] | None) -> None:
    args = list(argv) if argv is not None else None
    given = args if args is not None else sys.argv[1:]
    if given[:1] == ["connect"]:
        from target_stitch_import import connect  # noqa: PLC0415 - its own command, its own imports

        sys.exit(connect.main(given[1:]))
    map_large_buffers()
    try:
        from target_stitch_import.target import TargetStitchImport  # noqa: PLC0415 - not for connect

        TargetStitchImport.cli.main(args=args, prog_name=PROG)
    except StoppedError as exc:
        report(exc)
        sys.exit(_SIGNAL_EXIT_BASE + exc.signum)
    except KeyboardInterrupt as exc:  # before the target's own handler was installed
        report(StoppedError(2, "stopped by SIGINT before any input was read"))
        raise SystemExit(_SIGNAL_EXIT_BASE + 2) from exc
    except Exception as exc:  # noqa: BLE001 - no traceback ever reaches the user
        report(exc)
        sys.exit(1)


def exit_now(code: object) -> t.NoReturn:
    """End the process with ``code`` (as ``sys.exit`` takes it) once its output is out.

    Everything the run wrote is complete before this: each STATE line is flushed as it is
    written, dry-run bodies are closed, every acknowledgement was waited for, the record
    workers were reaped, and the background threads are daemons with nothing left to do.
    What the interpreter would still do is free every module and object one by one
    (≈ 0.1 s with the SDK loaded); this flushes the log handlers and the standard streams
    and ends the process without that. From here on SIGTERM and SIGINT end the process as
    they do by default: a reader that stopped reading can never hold it up.
    """
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, OSError):  # not the main thread
            signal.signal(signum, signal.SIG_DFL)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("text"): the text on stderr, status 1
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"{code}\n")
        status = 1
    with contextlib.suppress(Exception):  # a handler that cannot flush has nowhere to go
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that went away
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
