"""Who is asking: bearer JWTs validated against the issuers this node trusts.

Each token names its issuer (``iss``); only configured issuers are considered, each with its own
keys (inline JWKS or fetched from its URL, cached) and pinned algorithms. ``iss``, ``aud``,
``exp`` and ``sub`` are required. The node is an issuer too: its development issuer mints tokens
with the node's own key (``matgate token``). Peer nodes are issuers of on-behalf-of assertions
only, held to the rules of ``gateway.assertions`` (own institution, fresh, used once).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.assertions import MemoryReplayCache, ReplayCache, check_assertion
from gateway.config import IssuerConfig
from gateway.errors import Unauthorized
from gateway.keys import ALGORITHM, NodeKey
from policies.principals import Principal

__all__ = ["Authenticator", "TokenIssuer"]

LEEWAY_SECONDS = 30
JWKS_TTL_SECONDS = 300.0


@dataclass(frozen=True)
class TokenIssuer:
    """The node's development issuer: mints tokens signed by the node key."""

    key: NodeKey
    issuer: str
    audience: str
    institution: str

    def mint(
        self,
        subject: str,
        *,
        roles: Sequence[str] = (),
        institution: str | None = None,
        ttl_seconds: int = 3600,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A signed token for ``subject`` of ``institution`` (default: this node's)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
            "institution": institution or self.institution,
            "roles": list(roles),
            **(extra or {}),
        }
        header = {"alg": ALGORITHM, "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key.jwk, algorithms=[ALGORITHM])

    def as_trusted(self) -> IssuerConfig:
        """This issuer as an entry of the node's trusted issuers.

        Only the holder of the node's key can mint with it, so the institution is read from the
        token: the operator may mint tokens for guests of partner institutions.
        """
        return IssuerConfig(
            issuer=self.issuer,
            institution=None,
            audience=self.audience,
            jwks=self.key.jwks(),
            algorithms=(ALGORITHM,),
        )


class _Keys:
    """One issuer's key set, inline or fetched and cached."""

    def __init__(
        self,
        config: IssuerConfig,
        http: httpx.Client,
        guard: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self._http = http
        self._guard = guard
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched = 0.0
        if config.jwks is not None:
            self._keys = KeySet.import_key_set(config.jwks)  # type: ignore[arg-type]

    def get(self, kid: str | None) -> KeySet:
        if self.config.jwks is not None:
            assert self._keys is not None
            return self._keys
        with self._lock:
            stale = time.monotonic() - self._fetched > JWKS_TTL_SECONDS
            unknown = kid is not None and self._keys is not None and not _has_kid(self._keys, kid)
            # An unknown kid may be a rotated key: refetch, but at most every few seconds.
            if self._keys is None or stale or (unknown and time.monotonic() - self._fetched > 5):
                self._keys = self._fetch()
                self._fetched = time.monotonic()
            return self._keys

    def _fetch(self) -> KeySet:
        assert self.config.jwks_url is not None
        try:
            if self._guard is not None:
                self._guard(self.config.jwks_url)  # a peer's JWKS URL passes the SSRF checks
            response = self._http.get(self.config.jwks_url)
            response.raise_for_status()
            return KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, JoseError) as exc:
            raise Unauthorized(f"cannot fetch the keys of issuer {self.config.issuer}") from exc


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(k.kid == kid for k in keys.keys)


class Authenticator:
    """Turns a bearer token into a Principal, or raises Unauthorized."""

    def __init__(
        self,
        issuers: Iterable[IssuerConfig],
        *,
        default_audience: str,
        peers: Mapping[str, str] | None = None,
        replay: ReplayCache | None = None,
        guards: Mapping[str, Callable[[str], None]] | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        """``peers`` maps a peer node's issuer to its institution; its tokens are assertions.

        ``http`` fetches JWKS URLs (the node passes one guarded by its network policy).
        """
        self._http = http or httpx.Client(timeout=5.0, follow_redirects=False)
        guards = guards or {}
        self._issuers = {i.issuer: _Keys(i, self._http, guards.get(i.issuer)) for i in issuers}
        self._default_audience = default_audience
        self._peers = dict(peers or {})
        self._replay: ReplayCache = replay or MemoryReplayCache()

    def close(self) -> None:
        """Release the HTTP client used to fetch JWKS."""
        self._http.close()

    def authenticate(self, token: str) -> Principal:
        """Validate ``token`` and return who it stands for."""
        header, unverified = _peek(token)
        keys = self._issuers.get(str(unverified.get("iss", "")))
        if keys is None:
            raise Unauthorized("token issuer is not trusted by this node")
        config = keys.config
        alg = str(header.get("alg", ""))
        if alg not in config.algorithms:
            raise Unauthorized(f"algorithm {alg!r} is not accepted for this issuer")
        try:
            decoded = jwt.decode(
                token, keys.get(header.get("kid")), algorithms=list(config.algorithms)
            )
            registry = jwt.JWTClaimsRegistry(
                leeway=LEEWAY_SECONDS,
                iss={"essential": True, "value": config.issuer},
                aud={"essential": True, "value": config.audience or self._default_audience},
                exp={"essential": True},
                sub={"essential": True},
            )
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise Unauthorized(f"invalid token: {exc.description or exc.error}") from exc
        except ValueError as exc:
            raise Unauthorized("invalid token") from exc
        peer = self._peers.get(config.issuer)
        if peer is not None:
            check_assertion(decoded.claims, institution=peer, replay=self._replay)
        return _principal(decoded.claims, config)


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before verification, only to pick the issuer's keys."""
    try:
        compact = jws.extract_compact(token.encode("ascii"))
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError) as exc:
        raise Unauthorized("malformed token") from exc
    if not isinstance(claims, dict):
        raise Unauthorized("malformed token")
    return dict(compact.headers()), claims


def _principal(claims: dict[str, Any], config: IssuerConfig) -> Principal:
    institution = config.institution or claims.get(config.institution_claim)
    if not isinstance(institution, str) or not institution:
        raise Unauthorized("token names no institution")
    roles = claims.get(config.roles_claim) or []
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized(f"claim {config.roles_claim!r} must be a list of strings")
    return Principal(
        subject=str(claims["sub"]),
        institution=institution,
        roles=frozenset(roles),
        attrs={k: v for k, v in claims.items() if k in ("name", "email", "jti")},
        actor=(claims.get("act") or {}).get("sub") if isinstance(claims.get("act"), dict) else None,
    )
