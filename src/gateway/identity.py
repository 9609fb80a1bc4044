"""Who is asking: bearer JWTs validated against the issuers this node trusts.

Each token names its issuer (``iss``); only configured issuers are considered, each with its own
keys (inline, by JWKS URL or by OpenID discovery; see ``gateway.jwks``), pinned asymmetric
algorithms, a maximum token lifetime and its own clock leeway. ``iss``, ``aud``, ``exp`` and
``sub`` are required; ``nbf`` and ``iat`` are honoured (neither may lie in the future); header
fields that point at other keys (``jku``, ``x5u``, ``jwk``, ``x5c``) are never followed.

A principal's id is qualified by its issuer (``policies.principals``): the issuer's configured
namespace or its URL. Two exceptions, both the word of a node's key: the node's own development
issuer (``matgate token``, the operator's) qualifies its users by the institution the token
names, and a peer node qualifies the users of its on-behalf-of assertions by its own
institution, so a peer can never speak for another institution's users (the rules of
``gateway.assertions``: own institution, fresh, used once).

Roles come from one or more claim paths (``realm_access.roles``, ``scope``, ...; see
``gateway.claims``) and from IdP groups mapped to roles per issuer. A configured roles claim that
a token lacks is logged once per issuer and named in the reasons of any refusal.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwa import EdDSAAlgorithm
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from gateway.assertions import MemoryReplayCache, ReplayCache, check_assertion
from gateway.claims import ClaimPath, parse_claim_path, read_claim, strings_at
from gateway.config import IssuerConfig
from gateway.errors import Unauthorized
from gateway.jwks import IssuerKeys, http_client
from gateway.keys import ALGORITHM, NodeKey
from policies.principals import MAX_ID_LENGTH, NAMESPACE, SUBJECT, Principal, principal_id

__all__ = ["DEV_MAX_LIFETIME_SECONDS", "Authenticator", "TokenIssuer"]

log = logging.getLogger("matgate.identity")

DEV_MAX_LIFETIME_SECONDS = 7 * 86400
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
MAX_ROLES = 256
VERIFIED_TOKENS = 10_000  # tokens remembered as verified (the whole memory is dropped when full)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _EdDSA(EdDSAAlgorithm):
    # RFC 9864 prefers the fully specified "Ed25519", which the node signs with; identity
    # providers still sign "EdDSA", allowed only where an issuer's algorithms pin it.
    security_warning = None  # type: ignore[assignment]


class _Registry(JWSRegistry):
    algorithms = {**JWSRegistry.algorithms, "EdDSA": _EdDSA()}


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
        if not 0 < ttl_seconds <= DEV_MAX_LIFETIME_SECONDS:
            raise ValueError(f"a token of this node lives at most {DEV_MAX_LIFETIME_SECONDS} s")
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
            max_token_lifetime=DEV_MAX_LIFETIME_SECONDS,
        )


@dataclass(frozen=True)
class _Issuer:
    """A trusted issuer, its keys and its claim paths parsed once."""

    config: IssuerConfig
    keys: IssuerKeys
    roles: tuple[tuple[str, ClaimPath], ...]
    groups: tuple[str, ClaimPath] | None
    institution: ClaimPath
    roles_configured: bool


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
        own_issuer: str | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        """``peers`` maps a peer node's issuer to its institution; its tokens are assertions.

        ``own_issuer`` is the node's development issuer, whose users are qualified by their
        institution. ``http`` fetches discovery documents and JWKS (the node passes one guarded
        by its network policy; default: ``gateway.jwks.http_client``). Issuers found by
        discovery are looked up now; failures are logged and retried on the first token.
        """
        issuers = list(issuers)
        names = [i.issuer for i in issuers]
        if len(names) != len(set(names)):
            # One would silently replace the other, with its namespace and its rules.
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"issuers trusted twice (as issuer, peer or this node): {twice}")
        self._http = http or http_client()
        guards = guards or {}
        self._issuers = {i.issuer: _prepare(i, self._http, guards.get(i.issuer)) for i in issuers}
        self._default_audience = default_audience
        self._peers = dict(peers or {})
        self._own = own_issuer
        self._replay: ReplayCache = replay or MemoryReplayCache()
        # token -> (principal, its issuer's keys, kid, the key set that verified it, exp)
        self._verified: dict[str, tuple[Principal, IssuerKeys, str | None, KeySet, float]] = {}
        self._warned: set[tuple[str, str]] = set()
        for issuer in self._issuers.values():
            if issuer.config.discovery:
                self._discover(issuer)

    def close(self) -> None:
        """Release the HTTP client used to fetch JWKS."""
        self._http.close()

    def keys(self, issuer: str) -> IssuerKeys:
        """The key cache of a trusted issuer (KeyError if not trusted)."""
        return self._issuers[issuer].keys

    def remembered(self, token: str) -> Principal | None:
        """The principal of a user's token that ``authenticate`` verified before and would accept
        again without checking anything more, else None. Never blocks (no key fetch)."""
        hit = self._verified.get(token)
        if hit is None:
            return None
        principal, issuer_keys, kid, keys, until = hit
        if time.time() < until and issuer_keys.current(kid) is keys:
            return principal
        return None

    def authenticate(self, token: str) -> Principal:
        """Validate ``token`` and return who it stands for.

        A user's token, once verified, is remembered until it expires, for as long as its
        issuer's key set is the one that verified it: the same bytes under the same keys verify
        the same way, and a client sends the same token with every request. A peer's assertion
        is verified every time (each is good for one request only)."""
        hit = self._verified.get(token)
        if hit is not None:
            principal, issuer_keys, kid, keys, until = hit
            if time.time() < until and issuer_keys.get(kid) is keys:
                return principal
            self._verified.pop(token, None)
        header, unverified = _peek(token)
        issuer = self._issuers.get(str(unverified.get("iss", "")))
        if issuer is None:
            raise Unauthorized("token issuer is not trusted by this node")
        config = issuer.config
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in config.algorithms:
            raise Unauthorized(f"algorithm {alg!r} is not accepted for this issuer")
        if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
            raise Unauthorized("malformed key id")
        if "crit" in header:
            raise Unauthorized("critical header extensions are not supported")
        if config.access_tokens_only and str(header.get("typ", "")).lower() not in (
            ACCESS_TOKEN_TYPES
        ):
            raise Unauthorized("this issuer's tokens must be access tokens (typ 'at+jwt')")
        try:
            keys = issuer.keys.get(kid)
            decoded = jwt.decode(
                token, keys, algorithms=[alg], registry=_Registry(algorithms=[alg])
            )
            registry = jwt.JWTClaimsRegistry(
                leeway=config.leeway,
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
        claims = decoded.claims
        _check_lifetime(claims, config)
        peer = self._peers.get(config.issuer)
        if peer is not None:
            check_assertion(claims, institution=peer, replay=self._replay)
        principal = self._principal(claims, issuer, peer)
        if peer is None:
            if len(self._verified) >= VERIFIED_TOKENS:
                self._verified.clear()
            self._verified[token] = (principal, issuer.keys, kid, keys, float(claims["exp"]))
        return principal

    def _principal(self, claims: dict[str, Any], issuer: _Issuer, peer: str | None) -> Principal:
        config = issuer.config
        institution = config.institution or read_claim(claims, issuer.institution)
        if not isinstance(institution, str) or not NAMESPACE.match(institution):
            raise Unauthorized("token names no institution")
        subject = str(claims["sub"])
        if peer is not None:
            namespace = peer  # a peer's users are its own: qualified by its institution
            subject = subject.removeprefix(f"{peer}:")
        elif config.issuer == self._own:
            namespace = institution  # the operator's word, like a peer's for its own users
        else:
            namespace = config.qualifier
        if (
            not SUBJECT.match(subject)
            or _CONTROL.search(subject)
            or len(principal_id(namespace, subject)) > MAX_ID_LENGTH
        ):
            raise Unauthorized("the token's subject cannot name a principal of this node")
        roles, notes = self._roles(claims, issuer)
        return Principal(
            subject=subject,
            institution=institution,
            roles=roles,
            attrs={k: v for k, v in claims.items() if k in ("name", "email", "jti")},
            actor=_actor(claims) if peer is not None else None,  # only a peer speaks for others
            namespace=namespace,
            issuer=config.issuer,
            notes=notes,
        )

    def _roles(
        self, claims: dict[str, Any], issuer: _Issuer
    ) -> tuple[frozenset[str], tuple[str, ...]]:
        """Roles from the roles claims and mapped groups; notes for configured claims missing."""
        roles: set[str] = set()
        notes: list[str] = []
        for text, path in issuer.roles:
            found = self._strings(claims, text, path)
            if found is None:
                if issuer.roles_configured:
                    notes.append(self._missing(issuer, text, "roles"))
                continue
            roles.update(found)
        if issuer.groups is not None:
            text, path = issuer.groups
            groups = self._strings(claims, text, path)
            if groups is None:
                notes.append(self._missing(issuer, text, "groups"))
            else:
                for group in groups:
                    roles.update(issuer.config.group_roles.get(group, ()))
        if len(roles) > MAX_ROLES:
            raise Unauthorized(f"a token may carry at most {MAX_ROLES} roles")
        return frozenset(roles), tuple(notes)

    @staticmethod
    def _strings(claims: dict[str, Any], text: str, path: ClaimPath) -> list[str] | None:
        try:
            return strings_at(claims, path)
        except ValueError as exc:
            raise Unauthorized(f"claim {text!r} {exc}") from exc

    def _missing(self, issuer: _Issuer, claim: str, kind: str) -> str:
        note = (
            f"the token of issuer {issuer.config.issuer} carries no {claim!r} claim, "
            f"so it confers no {kind}"
        )
        if (issuer.config.issuer, claim) not in self._warned:
            self._warned.add((issuer.config.issuer, claim))
            log.warning("%s (configured as its %s claim; check the IdP's mappers)", note, kind)
        return note

    def _discover(self, issuer: _Issuer) -> None:
        """Look the issuer up at start, and warn about claims it says it does not issue."""
        try:
            doc = issuer.keys.discover()
        except Unauthorized as exc:
            log.warning(
                "issuer %s: discovery failed (%s); retried on first use",
                issuer.config.issuer,
                exc.detail,
            )
            return
        supported = doc.get("claims_supported")
        if not isinstance(supported, list):
            return
        wanted = [t for t, p in issuer.roles] if issuer.roles_configured else []
        wanted += [issuer.groups[0]] if issuer.groups is not None else []
        for text in wanted:
            if parse_claim_path(text)[0] not in supported:
                log.warning(
                    "issuer %s does not list claim %r among its claims_supported: "
                    "its tokens may confer no roles",
                    issuer.config.issuer,
                    text,
                )


def _prepare(config: IssuerConfig, http: Any, guard: Callable[[str], None] | None) -> _Issuer:
    return _Issuer(
        config=config,
        keys=IssuerKeys(config, http, guard),
        roles=tuple((t, parse_claim_path(t)) for t in config.roles_claim),
        groups=(
            (config.groups_claim, parse_claim_path(config.groups_claim))
            if config.groups_claim is not None
            else None
        ),
        institution=parse_claim_path(config.institution_claim),
        roles_configured="roles_claim" in config.model_fields_set,
    )


def _check_lifetime(claims: dict[str, Any], config: IssuerConfig) -> None:
    """Refuse tokens meant to live longer than the issuer may issue (``exp`` already valid)."""
    exp, iat = claims["exp"], claims.get("iat")
    longest = config.max_token_lifetime
    if exp - time.time() > longest + config.leeway or (iat is not None and exp - iat > longest):
        raise Unauthorized(
            f"the token lives longer than the {longest} s this node accepts from its issuer"
        )


def _actor(claims: dict[str, Any]) -> str | None:
    act = claims.get("act")
    sub = act.get("sub") if isinstance(act, dict) else None
    return sub if isinstance(sub, str) else None


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
