"""Rate limiting of refusal events, so a flood of bad tokens or denials cannot flood the log.

``FailureLimiter``: per source (an address, an issuer), the first ``burst`` authentication
failures in a window are logged one by one; later ones are counted, and the next logged failure
of that source carries the count in ``AuthenticationFailed.suppressed``.

``DenialLimiter``: per principal, the first ``burst`` denied decisions in a window are logged one
by one; later ones are counted, and each window that suppressed any becomes one summary
(``Suppressed``, recorded as a ``DenialsSuppressed`` event) when it closes. Either way nothing
goes unrecorded, only unrepeated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["DenialLimiter", "FailureLimiter", "Suppressed"]


@dataclass
class _Window:
    start: datetime
    logged: int = 0
    suppressed: int = 0
    institution: str = ""


class FailureLimiter:
    """Decides which authentication failures to log: ``admit(source)`` returns the number of
    suppressed failures to record with this one, or ``None`` to count it and log nothing."""

    def __init__(
        self,
        *,
        burst: int = 10,
        window_seconds: float = 60.0,
        clock: Callable[[], datetime] | None = None,
        max_sources: int = 10_000,
    ) -> None:
        self._burst = burst
        self._window = window_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._max_sources = max_sources
        self._sources: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def admit(self, source: str) -> int | None:
        """``None`` to skip logging this failure, else the suppressed count to log with it."""
        now = self._clock()
        with self._lock:
            state = self._sources.get(source)
            if state is None or (now - state.start).total_seconds() >= self._window:
                carried = state.suppressed if state else 0
                if state is None and len(self._sources) >= self._max_sources:
                    self._sources.pop(next(iter(self._sources)))  # forget the oldest source
                self._sources[source] = _Window(now, logged=1)
                return carried
            if state.logged < self._burst:
                state.logged += 1
                carried, state.suppressed = state.suppressed, 0
                return carried
            state.suppressed += 1
            return None


@dataclass(frozen=True, slots=True)
class Suppressed:
    """Denials of one principal counted but not logged one by one, in ``[since, until)``."""

    principal: str
    count: int
    since: datetime
    until: datetime
    institution: str = ""


class DenialLimiter:
    """Decides which denials to log: ``admit(principal)`` is False for a denial only counted;
    ``drain()`` hands out the summaries of closed windows that suppressed some."""

    def __init__(
        self,
        *,
        burst: int = 20,
        window_seconds: float = 60.0,
        clock: Callable[[], datetime] | None = None,
        max_principals: int = 10_000,
    ) -> None:
        self._burst = burst
        self._window = timedelta(seconds=window_seconds)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._max = max_principals
        self._windows: dict[str, _Window] = {}
        self._pending: list[Suppressed] = []
        self._lock = threading.Lock()

    def admit(self, principal: str, institution: str = "") -> bool:
        """Whether to log this denial of ``principal`` (else it is counted)."""
        now = self._clock()
        with self._lock:
            state = self._windows.get(principal)
            if state is not None and now - state.start >= self._window:
                self._close(principal, state)
                state = None
            if state is None:
                if len(self._windows) >= self._max:
                    oldest = next(iter(self._windows))
                    self._close(oldest, self._windows[oldest], at=now)
                self._windows[principal] = _Window(now, logged=1, institution=institution)
                return True
            if state.logged < self._burst:
                state.logged += 1
                return True
            state.suppressed += 1
            return False

    def drain(self, *, everything: bool = False) -> list[Suppressed]:
        """Summaries of the windows closed so far (with ``everything``: of all windows, now)."""
        now = self._clock()
        with self._lock:
            for principal, state in list(self._windows.items()):
                if everything or now - state.start >= self._window:
                    self._close(principal, state, at=now if everything else None)
            out, self._pending = self._pending, []
            return out

    def _close(self, principal: str, state: _Window, at: datetime | None = None) -> None:
        del self._windows[principal]
        if state.suppressed:
            until = min(at, state.start + self._window) if at else state.start + self._window
            self._pending.append(
                Suppressed(principal, state.suppressed, state.start, until, state.institution)
            )
