"""Rate limiting of authentication-failure events, so a token flood cannot flood the log.

Per source (an address, an issuer), the first ``burst`` failures in a window are logged one by
one; later ones are counted, and the next logged failure of that source carries the count in
``AuthenticationFailed.suppressed``, so nothing goes unrecorded, only unrepeated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["FailureLimiter"]


@dataclass
class _Window:
    start: datetime
    logged: int = 0
    suppressed: int = 0


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
