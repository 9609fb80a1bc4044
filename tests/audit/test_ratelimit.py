"""Authentication failures are logged up to a burst per source and window, then counted."""

from __future__ import annotations

from datetime import timedelta

from audit_samples import SteppingClock

from audit.events import AuthenticationFailed
from audit.log import AuditLog
from audit.ratelimit import FailureLimiter
from audit.search import EventFilter


def test_burst_then_counted_then_carried_into_next_window() -> None:
    clock = SteppingClock()
    limiter = FailureLimiter(burst=3, window_seconds=60, clock=lambda: clock.now)
    got = [limiter.admit("10.0.0.9") for _ in range(10)]
    assert got == [0, 0, 0, None, None, None, None, None, None, None]
    assert limiter.admit("10.0.0.7") == 0  # another source has its own budget
    clock.now += timedelta(seconds=61)
    assert limiter.admit("10.0.0.9") == 7  # the next logged failure reports the 7 suppressed
    assert limiter.admit("10.0.0.9") == 0


def test_flood_leaves_a_bounded_log(log: AuditLog) -> None:
    limiter = FailureLimiter(burst=5, window_seconds=3600)
    for _ in range(500):
        suppressed = limiter.admit("198.51.100.4")
        if suppressed is not None:
            log.append(
                AuthenticationFailed(
                    source="198.51.100.4", reason="bad signature", suppressed=suppressed
                )
            )
    assert sum(1 for _ in log.iter_events(EventFilter(name="auth-failure"))) == 5
