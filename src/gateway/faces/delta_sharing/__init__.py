"""The Delta Sharing face: ``/delta-sharing``, the open protocol's server side.

``shares`` says which shares, schemas and tables a recipient sees; ``tables`` answers a table's
version, metadata and queries through the slice service (hints pushed into the store's query);
``files`` keeps each query's Parquet file behind a short-lived HMAC-signed URL on the node and
decides every fetch again; ``hints`` translates the protocol's predicates; ``paging`` makes
listings' pages and their HMAC-signed tokens; ``admin`` lets stewards offer shares through the
API; ``router`` is HTTP.
"""

from __future__ import annotations

from gateway.faces.delta_sharing.router import admin_router, router

__all__ = ["admin_router", "router"]
