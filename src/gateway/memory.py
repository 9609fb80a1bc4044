"""Start-up and garbage collection: a node's long-lived state is built without collections and
then kept out of them.

Python's cyclic collector runs after every few hundred allocations, and each full collection
walks every tracked object. A node that reads 100,000 datasets or policy lines at start-up
allocates millions of objects that all survive, so the collections it triggers on the way find
nothing and cost more the further it gets: three quarters of validating a 100,000-dataset config
was collection. ``bulk`` pauses automatic collection while such state is built (reference
counting still frees everything that is not in a cycle: a build that makes much cyclic garbage,
like loading policies, is better off without it); ``settle`` then collects once and moves what
survived into the permanent generation (``gc.freeze``), so the collections of a serving node walk
what its requests allocate, not its catalog, and do not stall requests for as long.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["bulk", "settle", "unsettle"]


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """Automatic garbage collection paused inside (re-enabled after, if it was on)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def settle() -> None:
    """Collect once, then keep every object alive now out of later collections (a node's
    start-up state: config, catalog, policies, keys)."""
    gc.collect()
    gc.freeze()


def unsettle() -> None:
    """Let collections walk the objects ``settle`` kept out again (a node shutting down)."""
    gc.unfreeze()
