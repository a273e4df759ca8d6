"""Background threads never take the target's signals; a stop is never taken for a failure."""

from __future__ import annotations

import signal
import threading

import pytest

from target_stitch_import.errors import StoppedError
from target_stitch_import.threads import start_daemon


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_background_threads_leave_signals_to_the_reading_thread() -> None:
    seen: list[set[signal.Signals]] = []
    done = threading.Event()

    def look() -> None:
        seen.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
        done.set()

    thread = start_daemon(look, "look")
    assert done.wait(10)
    assert thread.daemon
    assert {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1} <= seen[0]
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # this thread: not


def test_a_stop_crosses_code_that_falls_back_on_any_exception() -> None:
    """Raised by the signal handler wherever the reading thread is (a fast path's
    ``except Exception`` must not swallow it and go on reading)."""

    def fast_path_with_fallback() -> str:
        try:
            raise StoppedError(signal.SIGTERM, "stopped by SIGTERM")
        except Exception:  # noqa: BLE001 - what such code looks like
            return "fell back"

    with pytest.raises(StoppedError):
        fast_path_with_fallback()
