"""The run's background threads: daemons that leave every signal to the reading thread.

Python runs signal handlers on the main (reading) thread only, but the kernel may deliver
a signal sent to the process to any thread that does not block it. A SIGTERM taken by a
background thread while the reading thread waits for input (or while it spawns a record
worker, when its own signals are briefly blocked) would wait there until the tap writes
again. So every thread started here blocks the signals the target handles, and they
always reach the reading thread.
"""

from __future__ import annotations

import signal
import threading
import typing as t

#: The signals the target handles on its reading thread (those this platform has).
_HANDLED = frozenset(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1") if hasattr(signal, name)
)


def start_daemon(target: t.Callable[[], object], name: str) -> threading.Thread:
    """Start ``target`` on a daemon thread that never takes the target's signals."""

    def run() -> None:
        if hasattr(signal, "pthread_sigmask"):  # POSIX
            signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
        target()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
