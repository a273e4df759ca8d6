"""Fault injection: which ``/batch`` and ``/validate`` requests fail, and how.

Pure decision logic: the plan draws from an injected :class:`random.Random` (seeded for
reproducible runs) and never sleeps or touches a socket; the server acts on its answers.
Each POST draws once: one uniform number is compared against the faults' shares stacked
in the order given, so at most one fault hits a request and the shares must sum to at most
1. ``limit`` caps the number of faults injected in total. ``/validate`` never answers
503 (the contract says so): a 503 drawn for it is not injected and not counted.
"""

from __future__ import annotations

import enum
import threading
import typing as t
from dataclasses import dataclass

if t.TYPE_CHECKING:
    import random


class FaultKind(str, enum.Enum):
    """What an injected fault does to a request."""

    HTTP_500 = "500"
    HTTP_502 = "502"
    HTTP_503 = "503"
    HTTP_429 = "429"
    #: Read the request, then close the connection without answering.
    DROP = "drop"
    #: Wait ``stall_seconds``, then handle the request normally.
    STALL = "stall"

    @property
    def status(self) -> int | None:
        """The HTTP status this fault answers with, or None (drop, stall)."""
        return int(self.value) if self.value.isdigit() else None


@dataclass(frozen=True)
class FaultSettings:
    """The fault options of ``stitch-import-emulator serve``.

    Attributes:
        shares: ``(kind, probability per request)`` in the order given; sums to at most 1.
        limit: At most this many faults are injected in total (None: no limit).
        latency_ms: ``(min, max)`` milliseconds added to each POST, or None.
        stall_seconds: How long a ``stall`` fault waits.
        retry_after: The ``Retry-After`` seconds sent with 429 and 503 answers.
        status_503: The first this many ``GET /status`` answer 503 (-1: all of them).
        seed: The random seed, or None for an unseeded run.
    """

    shares: tuple[tuple[FaultKind, float], ...] = ()
    limit: int | None = None
    latency_ms: tuple[float, float] | None = None
    stall_seconds: float = 30.0
    retry_after: int = 1
    status_503: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        """Check the settings.

        Raises:
            ValueError: A share outside [0, 1], shares summing above 1, a negative limit,
                latency or stall, or a latency range whose minimum exceeds its maximum.
        """
        for kind, share in self.shares:
            if not 0 <= share <= 1:
                msg = f"the share of fault {kind.value} must be between 0 and 1, not {share}"
                raise ValueError(msg)
        if sum(share for _, share in self.shares) > 1:
            msg = "the fault shares add up to more than 1"
            raise ValueError(msg)
        if self.limit is not None and self.limit < 0:
            msg = "the fault limit can not be negative"
            raise ValueError(msg)
        if self.latency_ms is not None and not 0 <= self.latency_ms[0] <= self.latency_ms[1]:
            msg = "the latency must be MS or MIN-MAX with 0 <= MIN <= MAX"
            raise ValueError(msg)
        if self.stall_seconds < 0 or self.retry_after < 0 or self.status_503 < -1:
            msg = "stall seconds and Retry-After can not be negative; --status-503 is >= -1"
            raise ValueError(msg)


def parse_fault(text: str) -> tuple[FaultKind, float]:
    """Parse ``KIND:SHARE`` (e.g. ``503:0.25``); :class:`FaultSettings` checks the share.

    Raises:
        ValueError: Not ``KIND:SHARE`` with a known kind and a number.
    """
    kind_text, sep, share_text = text.partition(":")
    kinds = ", ".join(kind.value for kind in FaultKind)
    if not sep:
        msg = f"expected KIND:SHARE (KIND one of {kinds}), got {text!r}"
        raise ValueError(msg)
    try:
        kind = FaultKind(kind_text.strip().lower())
    except ValueError:
        msg = f"unknown fault kind {kind_text!r}; use one of {kinds}"
        raise ValueError(msg) from None
    return kind, float(share_text)


def parse_latency(text: str) -> tuple[float, float]:
    """Parse ``MS`` or ``MIN-MAX`` milliseconds; :class:`FaultSettings` checks the range.

    Raises:
        ValueError: Not a number or a range of two numbers.
    """
    low, sep, high = text.partition("-")
    minimum = float(low)
    return minimum, float(high) if sep else minimum


class FaultPlan:
    """Decides, request by request, which faults to inject. Thread-safe."""

    def __init__(self, settings: FaultSettings, rng: random.Random) -> None:
        """Create a plan drawing from ``rng``."""
        self.settings = settings
        self._rng = rng
        self._lock = threading.Lock()
        self._injected = 0
        self._status_calls = 0

    @property
    def injected(self) -> int:
        """How many faults were injected so far."""
        with self._lock:
            return self._injected

    def draw(self, *, validate: bool = False) -> FaultKind | None:
        """Draw the fault for one POST request, or None to handle it normally.

        Args:
            validate: The request is a ``/validate`` (never answered with 503).
        """
        if not self.settings.shares:
            return None
        with self._lock:
            limit = self.settings.limit
            if limit is not None and self._injected >= limit:
                return None
            point = self._rng.random()
            chosen = None
            bound = 0.0
            for kind, share in self.settings.shares:
                bound += share
                if point < bound:
                    chosen = kind
                    break
            if chosen is None or (validate and chosen is FaultKind.HTTP_503):
                return None
            self._injected += 1
            return chosen

    def latency_seconds(self) -> float:
        """Draw the extra latency of one POST request, in seconds."""
        if self.settings.latency_ms is None:
            return 0.0
        low, high = self.settings.latency_ms
        with self._lock:
            return self._rng.uniform(low, high) / 1000

    def status_unavailable(self) -> bool:
        """Tell whether this ``GET /status`` must answer 503 (counts the call)."""
        with self._lock:
            self._status_calls += 1
            limit = self.settings.status_503
            return limit == -1 or self._status_calls <= limit
