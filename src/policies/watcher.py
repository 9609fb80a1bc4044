"""Tell every replica of a node that the policy changed, so it reloads at its next request.

A watcher has three methods: ``start(callback)`` subscribes (the callback only marks the policy
stale; the reload happens on the next decision, in the requesting thread), ``notify()`` publishes
after a change, and ``close()``. ``RedisWatcher`` uses Redis pub/sub; replicas sharing a database
must share a channel. ``Governance.sync()`` is the always-correct fallback without a watcher: one
small query for the stored version.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["RedisWatcher", "Watcher"]


class Watcher(Protocol):
    """Carries "the policy changed" between the replicas of a node."""

    def start(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever another replica (or this one) notifies."""

    def notify(self) -> None:
        """Tell every replica that the policy changed."""

    def close(self) -> None:
        """Stop listening and release connections."""


class RedisWatcher:
    """A watcher over Redis pub/sub on one channel."""

    def __init__(self, url: str, channel: str = "matgate:policy") -> None:
        import redis  # optional extra: only replicas that use Redis need it

        self.channel = channel
        # Each watcher tags its messages, so the replica that made a change does not reload twice.
        self._tag = uuid.uuid4().hex.encode()
        self._client: Any = redis.Redis.from_url(url)
        self._pubsub: Any = None
        self._thread: Any = None

    def start(self, callback: Callable[[], None]) -> None:
        """Subscribe and call ``callback`` on every message, from a background thread."""
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)

        def handle(message: dict[str, Any]) -> None:
            if message.get("data") != self._tag:
                callback()

        self._pubsub.subscribe(**{self.channel: handle})
        self._thread = self._pubsub.run_in_thread(sleep_time=0.05, daemon=True)

    def notify(self) -> None:
        """Publish a change."""
        self._client.publish(self.channel, self._tag)

    def close(self) -> None:
        """Stop the listener thread and close the connections."""
        if self._thread is not None:
            self._thread.stop()
            self._thread.join(timeout=5)
            self._thread = None
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None
        self._client.close()
