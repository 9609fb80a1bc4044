"""Issuers' signing keys: inline, fetched from a JWKS URL, or found by OpenID discovery.

Fetched key sets are cached for ``JWKS_TTL_SECONDS``. A token naming a key id the cache does not
hold may be a rotated key: the set is fetched again, but at most once every
``REFETCH_SECONDS`` per issuer, so tokens with invented key ids cannot make the node hammer an
identity provider (nor can a failing provider make every request wait for it). With discovery,
``jwks_uri`` is read from ``{issuer}/.well-known/openid-configuration``, whose ``issuer`` must
equal the configured one exactly (OpenID Connect Discovery 1.0, section 4.3).

Every outbound request goes through the client the node gives (one guarded by its network policy,
``connectors.netguard``; ``http_client`` otherwise) and the issuer's ``guard``, if it has one;
redirects are not followed; answers are capped in size.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.config import IssuerConfig
from gateway.errors import Unauthorized

__all__ = ["JWKS_TTL_SECONDS", "REFETCH_SECONDS", "IssuerKeys", "discovery_url", "http_client"]

log = logging.getLogger("matgate.identity")

JWKS_TTL_SECONDS = 300.0
REFETCH_SECONDS = 5.0
MAX_DOCUMENT_BYTES = 1 << 20
Clock = Callable[[], float]


def http_client() -> httpx.Client:
    """The HTTP client that fetches issuers' discovery documents and key sets."""
    return httpx.Client(timeout=5.0, follow_redirects=False)


def discovery_url(issuer: str) -> str:
    """Where an issuer publishes its OpenID provider metadata."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


class IssuerKeys:
    """One issuer's key set (and, with discovery, its metadata), cached and refreshed."""

    def __init__(
        self,
        config: IssuerConfig,
        http: httpx.Client,
        guard: Callable[[str], None] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self.metadata: dict[str, Any] | None = None
        self.fetches = 0  # key-set fetches, successful or not (observable in tests)
        self._http = http
        self._guard = guard
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched = float("-inf")  # when the cached set was fetched
        self._attempted = float("-inf")  # when a fetch was last tried
        if config.jwks is not None:
            self._keys = KeySet.import_key_set(config.jwks)  # type: ignore[arg-type]

    def get(self, kid: str | None) -> KeySet:
        """The key set that should hold ``kid``; fetched again if stale or missing it."""
        if self.config.jwks is not None:
            assert self._keys is not None
            return self._keys
        with self._lock:
            now = self._clock()
            stale = now - self._fetched > JWKS_TTL_SECONDS
            unknown = kid is not None and self._keys is not None and not _has_kid(self._keys, kid)
            if (self._keys is None or stale or unknown) and now - self._attempted > REFETCH_SECONDS:
                self._attempted = now
                self._refresh(stale)
            if self._keys is None:
                raise Unauthorized(f"cannot fetch the keys of issuer {self.config.issuer}")
            return self._keys

    def current(self, kid: str | None) -> KeySet | None:
        """What ``get`` would answer without fetching anything, or None when it would have to
        fetch (or another thread is fetching): never blocks, for the event loop's own use."""
        if self.config.jwks is not None:
            return self._keys
        if not self._lock.acquire(blocking=False):
            return None
        try:
            stale = self._clock() - self._fetched > JWKS_TTL_SECONDS
            if self._keys is None or stale or (kid is not None and not _has_kid(self._keys, kid)):
                return None
            return self._keys
        finally:
            self._lock.release()

    def discover(self) -> dict[str, Any]:
        """The issuer's OpenID provider metadata, checked; raises Unauthorized if unusable."""
        url = discovery_url(self.config.issuer)
        doc = self._get_json(url)
        if doc.get("issuer") != self.config.issuer:
            raise Unauthorized(
                f"the discovery document of {self.config.issuer} names issuer "
                f"{doc.get('issuer')!r}; they must be equal"
            )
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise Unauthorized(f"the discovery document of {self.config.issuer} has no jwks_uri")
        self.metadata = doc
        return doc

    def _refresh(self, stale: bool) -> None:
        self.fetches += 1
        try:
            if self.config.discovery and (self.metadata is None or stale):
                self.discover()
            url = self.config.jwks_url or (self.metadata or {}).get("jwks_uri")
            assert isinstance(url, str)
            keys = KeySet.import_key_set(self._get_json(url))  # type: ignore[arg-type]
        except Unauthorized as exc:
            log.warning("issuer %s: %s", self.config.issuer, exc.detail)
            return  # keep serving the cached set, if any, until the next attempt
        except (ValueError, JoseError, TypeError) as exc:
            log.warning("issuer %s: unusable key set: %s", self.config.issuer, exc)
            return
        self._keys = keys
        self._fetched = self._clock()

    def _get_json(self, url: str) -> dict[str, Any]:
        """GET a JSON object, refusing redirects and answers over ``MAX_DOCUMENT_BYTES``."""
        failed = Unauthorized(f"cannot fetch the keys of issuer {self.config.issuer}")
        try:
            if self._guard is not None:
                self._guard(url)
            with self._http.stream("GET", url, headers={"Accept": "application/json"}) as r:
                if r.status_code != 200:
                    raise failed
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise failed
            doc = json.loads(body)
        except (httpx.HTTPError, ValueError) as exc:
            raise failed from exc
        if not isinstance(doc, dict):
            raise failed
        return doc


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(k.kid == kid for k in keys.keys)
