"""On-behalf-of assertions: how a home node speaks for one of its users to a peer node.

The home node mints a short-lived JWT signed by its own key: ``iss`` its public URL, ``aud`` the
owning node's public URL, ``sub`` the user's principal id at home (``aurora:mia``),
``institution``/``roles`` the user's, ``act`` = ``{"sub": home institution}`` (the actor claim
of RFC 8693), and a unique ``jti``. The owning node accepts it only from a configured peer, only
for users of that peer's own institution, only while it is fresh, and only once:
``check_assertion`` applies those rules after the signature and the registered claims were
verified (``identity.Authenticator``). There the user's id is qualified by the peer's
institution whatever the assertion says (``aurora:mia`` stays ``aurora:mia``; an id of another
namespace becomes ``aurora:<that id>``), so no peer can speak as another institution's user.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Protocol

from joserfc import jwt

from gateway.errors import Unauthorized
from gateway.keys import ALGORITHM, NodeKey
from policies.principals import Principal

__all__ = [
    "MAX_LIFETIME_SECONDS",
    "MemoryReplayCache",
    "RedisReplayCache",
    "ReplayCache",
    "check_assertion",
    "mint_assertion",
]

MAX_LIFETIME_SECONDS = 60
DEFAULT_LIFETIME_SECONDS = 30
ASSERTION_TYPE = "matgate-obo+jwt"


def mint_assertion(
    key: NodeKey,
    *,
    issuer: str,
    audience: str,
    principal: Principal,
    actor: str,
    lifetime: int = DEFAULT_LIFETIME_SECONDS,
) -> str:
    """A signed assertion that ``actor`` (this node's institution) speaks for ``principal``."""
    if not 0 < lifetime <= MAX_LIFETIME_SECONDS:
        raise ValueError(f"an assertion lives at most {MAX_LIFETIME_SECONDS} s")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": principal.id,
        "institution": principal.institution,
        "roles": sorted(principal.roles),
        "act": {"sub": actor},
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": ASSERTION_TYPE}
    return jwt.encode(header, claims, key.jwk, algorithms=[ALGORITHM])


class ReplayCache(Protocol):
    """Remembers assertion ids until they expire."""

    def first_use(self, jti: str, expires_at: float) -> bool:
        """True the first time ``jti`` is seen before ``expires_at`` (epoch seconds)."""
        ...


class MemoryReplayCache:
    """Seen ids in this process's memory.

    Enough for one process. Several replicas behind one address must share what they saw, or an
    assertion replayed to another replica passes: give them a ``RedisReplayCache`` on the Redis
    that already carries their policy changes (or a table in their shared node database).
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def first_use(self, jti: str, expires_at: float) -> bool:
        """True the first time ``jti`` is seen; expired ids are forgotten as new ones come."""
        now = time.time()
        with self._lock:
            if len(self._seen) >= self._max:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
                if len(self._seen) >= self._max:
                    return False  # fail closed rather than forget ids that may still be replayed
            if jti in self._seen and self._seen[jti] > now:
                return False
            self._seen[jti] = expires_at
            return True


class RedisReplayCache:
    """Seen ids in Redis (``SET NX`` with the assertion's remaining lifetime), for replicas."""

    def __init__(self, url: str, prefix: str = "matgate:jti:") -> None:
        import redis

        self._redis = redis.Redis.from_url(url)
        self._prefix = prefix

    def first_use(self, jti: str, expires_at: float) -> bool:
        """True the first time any replica sharing this Redis sees ``jti``."""
        ttl = max(1, int(expires_at - time.time()) + 1)
        return bool(self._redis.set(self._prefix + jti, b"1", nx=True, ex=ttl))

    def close(self) -> None:
        """Release the connection pool."""
        self._redis.close()


def check_assertion(
    claims: dict[str, Any], *, institution: str, replay: ReplayCache, leeway: int = 5
) -> None:
    """Refuse an assertion of the peer of ``institution`` that breaks a rule of the module doc."""
    act = claims.get("act")
    if not isinstance(act, dict) or act.get("sub") != institution:
        raise Unauthorized(f"an assertion of peer {institution!r} must name it as actor ('act')")
    if claims.get("institution") != institution:
        raise Unauthorized(
            f"peer {institution!r} may speak only for its own users, "
            f"not for those of {claims.get('institution')!r}"
        )
    iat, exp, jti = claims.get("iat"), claims.get("exp"), claims.get("jti")
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise Unauthorized("an assertion needs 'iat' and 'exp'")
    now = time.time()
    if exp - iat > MAX_LIFETIME_SECONDS or iat > now + leeway:
        raise Unauthorized(f"an assertion may live at most {MAX_LIFETIME_SECONDS} s")
    if exp + leeway < now:
        raise Unauthorized("the assertion has expired")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 128:
        raise Unauthorized("an assertion needs a unique 'jti'")
    if not replay.first_use(f"{claims.get('iss')}|{jti}", float(exp) + leeway):
        raise Unauthorized("the assertion was used already (replay refused)")
