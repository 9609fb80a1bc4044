"""Foreign protocols served by the node, one package each (OPTIMADE, Delta Sharing).

A face translates its protocol to the same service functions the native routes call: it decides
nothing and reads no store by itself, so what it answers is what a slice would give the caller.
"""

from __future__ import annotations

__all__: list[str] = []
