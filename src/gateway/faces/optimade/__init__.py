"""The OPTIMADE face: ``/optimade`` (API v1.2) over the datasets a steward maps to structures.

``entries`` turns permitted rows into OPTIMADE structures (formula -> elements, reduced and
anonymous formulas; other permitted columns -> ``_matgate_`` provider fields); ``queries`` runs a
request: the filter parsed by the OPTIMADE grammar, its simple conjuncts pushed into each
dataset's slice, the whole filter then applied to the entries; ``router`` is the HTTP surface.
"""

from __future__ import annotations

from gateway.faces.optimade.router import router

__all__ = ["router"]
