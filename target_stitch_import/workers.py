"""Record workers: processes that prepare records on the machine's other cores.

Decoding, validating and encoding a record is most of the target's CPU time, and one Python
process runs on one core. The reading process hands whole reads of input lines to worker
processes (``python -m target_stitch_import.workers``), each of which prepares the RECORDs
of pass-through streams with the same :class:`~target_stitch_import.prepare.Preparer` the
reading process uses, and answers, per line, the encoded ``data`` with its sequence base
and table version, or nothing. Everything that depends on order stays in the reading
process: sequences, batches, STATE, and every line a worker did not prepare (other
messages, unusual records), taken there exactly as without workers. So the bodies are the
same byte for byte, with or without workers.

Protocol (pipes; each frame a 4-byte big-endian length and a msgpack payload): the reading
process sends ``[0, epoch, [spec JSON, ...]]`` when the pass-through streams change (a
SCHEMA) and ``[1, epoch, [line, ...]]`` per read; a worker first sends ``"ready"``, then
per lines frame ``[epoch, [None | [stream index, data, base, version], ...]]``. Results of
an older epoch (a SCHEMA came between) are not used: those lines are taken in the reading
process. A worker that goes away (killed, out of memory) costs nothing but speed: its
lines and every later one are taken in the reading process, with one warning.

A worker ignores SIGINT (the reading process decides how a run ends) and exits when its
input closes, so it never outlives the run.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import msgspec

from target_stitch_import.prepare import DECODER, Preparer, RecordSpec
from target_stitch_import.threads import start_daemon

if t.TYPE_CHECKING:
    import logging

_FRAME = struct.Struct(">I")
_SPECS = 0
_LINES = 1
_READY = b"ready"
#: Seconds a worker gets to exit after its input closed, before it is killed.
_EXIT_SECONDS = 2.0
#: Lines of large reads taken in the reading process before workers start (a small run
#: never starts them).
_START_AFTER_LINES = 2_000
#: A worker that answers nothing for this long is taken as gone (a read takes milliseconds).
_SILENCE_SECONDS = 60.0
_READ_SIZE = 1 << 20
#: Pipe capacity asked for (Linux allows 1 MB to anyone by default).
_PIPE_BYTES = 1 << 20
#: Results: None (not prepared) or (stream index, data, base, version).
Result: t.TypeAlias = "tuple[int, bytes, int | None, int | None] | None"


def _widen_pipe(fd: int) -> None:
    """Let a pipe hold a whole read or its results (Linux), so neither side waits for the other."""
    import fcntl  # noqa: PLC0415 - POSIX only, as the workers are

    with contextlib.suppress(AttributeError, OSError):  # not Linux, or above pipe-max-size
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


class _WorkerGoneError(Exception):
    """A worker's pipe closed or carried something that is not a frame."""


class _Worker:
    """One worker process and the thread that feeds it (writes never block the reader)."""

    def __init__(self, number: int) -> None:
        # This interpreter and this copy of the package (found last: never shadowing).
        root = str(Path(__file__).resolve().parent.parent)
        code = (
            f"import sys; sys.path.append({root!r}); "
            "import os; from target_stitch_import.workers import main; os._exit(main())"
        )
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our own code
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.ready = False
        self._fd = t.cast("t.IO[bytes]", self.process.stdout).fileno()
        self._poller = select.poll()  # readable, or closed (POLLHUP is always reported)
        self._poller.register(self._fd, select.POLLIN)
        for pipe in (self.process.stdin, self.process.stdout):
            _widen_pipe(t.cast("t.IO[bytes]", pipe).fileno())
        self._buffer = bytearray()
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._feeder = start_daemon(self._feed, f"record-worker-{number}")

    def send(self, payload: bytes) -> None:
        """Queue a frame for the worker."""
        self._outbox.put(_FRAME.pack(len(payload)) + payload)

    def _feed(self) -> None:
        stdin = t.cast("t.IO[bytes]", self.process.stdin)
        try:
            while (frame := self._outbox.get()) is not None:
                stdin.write(frame)
                stdin.flush()
        except (OSError, ValueError):  # the worker went away: its reader notices
            pass
        with contextlib.suppress(OSError, ValueError):
            stdin.close()

    def poll_ready(self) -> bool:
        """True once the worker said it is ready (never waits)."""
        if not self.ready and self._readable(0):
            if self.receive() != _READY:
                raise _WorkerGoneError
            self.ready = True
        return self.ready

    def _readable(self, timeout: float) -> bool:
        if self._buffer:
            return True
        try:  # poll, not select: any descriptor number (select stops at FD_SETSIZE)
            return bool(self._poller.poll(timeout * 1000))
        except (OSError, ValueError):
            raise _WorkerGoneError from None

    def _read(self, size: int) -> bytes:
        """``size`` bytes from the worker; a worker silent for too long is taken as gone."""
        buffer = self._buffer
        while len(buffer) < size:
            if not self._readable(_SILENCE_SECONDS):
                raise _WorkerGoneError
            try:
                data = os.read(self._fd, max(size - len(buffer), _READ_SIZE))
            except OSError:
                raise _WorkerGoneError from None
            if not data:
                raise _WorkerGoneError
            buffer += data
        taken = bytes(buffer[:size])
        del buffer[:size]
        return taken

    def receive(self) -> bytes:
        """The next frame from the worker (waits for it)."""
        (size,) = _FRAME.unpack(self._read(_FRAME.size))
        return self._read(size)

    def close(self) -> None:
        """Close the worker's input: it exits (one never ready is killed: it has no work)."""
        self._outbox.put(None)
        if not self.ready:
            with contextlib.suppress(OSError):
                self.process.kill()

    def reap(self, deadline: float) -> None:
        """Wait for the worker to exit until ``deadline`` (monotonic), then kill it."""
        with contextlib.suppress(Exception):  # a worker blocked writing exits (even mid-read)
            t.cast("t.IO[bytes]", self.process.stdout).close()
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Ticket(t.NamedTuple):
    """Lines handed to a worker: which one, and the epoch of the specs they are prepared by."""

    worker: _Worker
    epoch: int


class RecordWorkers:
    """The run's record workers (see the module docstring); used by the reading thread only."""

    def __init__(self, count: int, logger: logging.Logger) -> None:
        """Plan ``count`` workers (0: none); they start once large reads brought 2,000 lines."""
        self.count = count
        self._logger = logger
        self._workers: list[_Worker] = []
        self._started = False
        self._failed = False
        self._turn = 0
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder()
        #: Increases whenever the specs change; results of another epoch are not used.
        self.epoch = 0
        self._specs: tuple[RecordSpec, ...] = ()
        self._specs_frame = b""
        #: Records the workers prepared (the reading process took the rest).
        self.prepared = 0
        self._offered = 0

    @property
    def depth(self) -> int:
        """Reads handed out at most, waiting for their results."""
        return 2 * self.count

    @property
    def started(self) -> bool:
        """Whether workers were started in this run."""
        return self._started

    @property
    def enabled(self) -> bool:
        """Whether lines may be handed to workers (some are planned, none failed)."""
        return self.count > 0 and not self._failed

    def set_specs(self, specs: t.Iterable[RecordSpec]) -> None:
        """The pass-through streams now (after a SCHEMA); a change starts a new epoch."""
        specs = tuple(specs)
        if specs == self._specs:
            return
        self._specs = specs
        self.epoch += 1
        self._specs_frame = self._encoder.encode(
            [_SPECS, self.epoch, [spec.encode() for spec in specs]],
        )
        for worker in self._workers:
            worker.send(self._specs_frame)

    def stream(self, index: int) -> str:
        """The stream of a result's stream index (results of the current epoch)."""
        return self._specs[index].stream

    def submit(self, lines: list[bytes]) -> Ticket | None:
        """Hand ``lines`` to a ready worker; None when none is (the reader takes them)."""
        if not self._specs or not self.enabled:
            return None
        if not self._started:
            self._offered += len(lines)
            if self._offered >= _START_AFTER_LINES:  # a large input: worth the processes
                self._start()
            return None
        try:
            ready = [worker for worker in self._workers if worker.ready or worker.poll_ready()]
        except _WorkerGoneError:
            self._fail()
            return None
        if not ready:
            return None
        self._turn += 1
        worker = ready[self._turn % len(ready)]
        worker.send(self._encoder.encode([_LINES, self.epoch, lines]))
        return Ticket(worker, self.epoch)

    def result(self, ticket: Ticket) -> list[Result] | None:
        """The results of a submitted read, in line order (waits); None: take them here."""
        if self._failed:
            return None
        try:
            epoch, results = self._decoder.decode(ticket.worker.receive())
        except (_WorkerGoneError, msgspec.DecodeError, ValueError, TypeError):
            self._fail()
            return None
        return results if epoch == ticket.epoch else None

    def is_current(self, ticket: Ticket) -> bool:
        """Whether a ticket's results may still be used (no SCHEMA changed the specs)."""
        return ticket.epoch == self.epoch

    def _start(self) -> None:
        self._started = True
        try:
            for number in range(1, self.count + 1):
                worker = _Worker(number)
                self._workers.append(worker)
                if self._specs_frame:
                    worker.send(self._specs_frame)
        except OSError as exc:
            self._logger.warning(
                "Record workers could not start (%s); records are prepared in the reading "
                "process.",
                exc,
            )
            self._fail()

    def _fail(self) -> None:
        if not self._failed:
            self._failed = True
            self._logger.warning(
                "A record worker stopped; the rest of the input is prepared in the reading "
                "process (nothing is lost).",
            )
        self.close()

    def close(self) -> None:
        """Stop the workers (idempotent); they exit once their input closes."""
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()
        deadline = time.monotonic() + _EXIT_SECONDS
        for worker in workers:
            worker.reap(deadline)


# The worker process ----------------------------------------------------------------------


def prepare_lines(
    lines: t.Iterable[bytes],
    preparers: t.Mapping[str, tuple[int, Preparer]],
) -> list[Result]:
    """Prepare each line that is a RECORD of a known stream; None for every other line."""
    decode = DECODER.decode
    results: list[Result] = []
    append = results.append
    for line in lines:
        try:
            message = decode(line)
        except (msgspec.DecodeError, RecursionError):
            append(None)
            continue
        if type(message) is not dict or message.get("type") != "RECORD":
            append(None)
            continue
        stream = message.get("stream")
        entry = preparers.get(stream) if type(stream) is str else None
        if entry is None:
            append(None)
            continue
        index, preparer = entry
        try:
            prepared = preparer.prepare(message)
        except Exception:  # noqa: BLE001 - the reading process takes the line and says why
            prepared = None
        if prepared is None or preparer.near_limits(prepared[1]):
            append(None)
        else:
            append((index, prepared[1], prepared[2], prepared[3]))
    return results


def _serve(source: t.IO[bytes], sink: t.IO[bytes]) -> None:
    encoder = msgspec.msgpack.Encoder()
    decoder = msgspec.msgpack.Decoder()

    def send(payload: bytes) -> None:
        sink.write(_FRAME.pack(len(payload)) + payload)
        sink.flush()

    send(_READY)
    preparers: dict[str, tuple[int, Preparer]] = {}
    while len(head := source.read(_FRAME.size)) == _FRAME.size:
        (size,) = _FRAME.unpack(head)
        kind, epoch, body = decoder.decode(source.read(size))
        if kind == _SPECS:
            preparers = {}
            for index, data in enumerate(body):
                spec = RecordSpec.decode(data)
                try:
                    preparers[spec.stream] = (index, Preparer(spec))
                except Exception:  # noqa: BLE001, S112 - its lines are taken by the reading process
                    continue
        else:
            send(encoder.encode([epoch, prepare_lines(body, preparers)]))


def main() -> int:
    """Serve the reading process on stdin/stdout until stdin closes; return the exit status.

    Every frame is flushed as it is written, so the process may end with ``os._exit`` (no
    interpreter teardown: the reading process waits for workers to exit).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _serve(sys.stdin.buffer, sys.stdout.buffer)
    except (OSError, ValueError, msgspec.DecodeError):  # the reading process went away
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
