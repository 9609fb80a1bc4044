"""Calling peer nodes safely: SSRF checks, timeouts, deadlines, retries, breakers, size caps.

Every call to a peer goes through one ``Peer``, whose client is built by
``connectors.netguard`` once per event loop and kept: its connections to the peer are pooled and
kept alive between calls (``POOL_LIMITS``), so a call pays no new TCP connection. The transport
checks every request, not every connection: the peer's host is resolved, every address is
checked against the node's network policy (loopback, private, link-local and metadata addresses
refused unless the node's ``[network] allow`` list, or the peer's ``allow_private_network``, names
them), and the request goes to the checked address, so DNS cannot change the target in between;
a pooled connection serves only requests pinned to the address it was opened to. Redirects are
never followed. Idempotent calls (GET) are retried with jittered backoff inside the call's
deadline; a slice (POST) never is. A circuit breaker per peer opens after ``breaker_failures``
consecutive failures and lets one trial call through after ``breaker_cooldown`` seconds.
Failures become the errors of ``gateway.errors``::

    GatewayTimeout        504  the peer did not answer, or not completely, within the deadline
    ServiceUnavailable    503  the peer cannot be reached, or its circuit is open
    BadGateway            502  the peer answered wrongly: garbage, too large, a redirect, a 5xx
    Forbidden, NotFound, BadRequest, Unprocessable   the owning node's own answer, passed on
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import threading
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx

from connectors.netguard import DestinationRefused, NetPolicy, guarded_async_client
from gateway.assertions import mint_assertion
from gateway.config import PeerConfig
from gateway.errors import (
    BadGateway,
    GatewayTimeout,
    MatgateError,
    ServiceUnavailable,
    for_status,
)
from gateway.keys import NodeKey
from policies.principals import Principal

__all__ = [
    "POOL_LIMITS",
    "Breaker",
    "Peer",
    "Peers",
    "check_address",
    "peer_policy",
    "site_status",
]

_JWKS_TTL = 300.0
# Idle connections are dropped after 2 s, well before a uvicorn peer's own 5 s keep-alive timeout
# closes them (with room for a busy event loop): a slice, never retried, is not sent on a
# connection the peer is about to close.
POOL_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=16, keepalive_expiry=2.0)


class _Transient(Exception):
    """A failure worth retrying (idempotent calls only): timeouts, refusals, 5xx answers."""

    def __init__(self, error: MatgateError) -> None:
        super().__init__(error.detail)
        self.error = error


def peer_policy(config: PeerConfig, network: NetPolicy) -> NetPolicy:
    """The node's network policy, plus the peer's own host when it may be private."""
    if not config.allow_private_network:
        return network
    hosts = {httpx.URL(u).host for u in (config.url, config.jwks_url) if u}
    return network.extended(sorted(hosts))


def check_address(url: str, *, allow_private: bool, network: NetPolicy | None = None) -> None:
    """Refuse ``url`` unless it is http(s) and the network policy lets its host be reached."""
    policy = network or NetPolicy()
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        host = ""
    if allow_private and host:
        policy = policy.extended([host])
    try:
        policy.check_url(url)
    except DestinationRefused as exc:
        hint = "" if allow_private else "; set allow_private_network for this peer to allow it"
        raise BadGateway(f"peer URL {url!r} may not be reached: {exc}{hint}") from None


def site_status(error: BaseException) -> str:
    """The federation status word for a failure: denied, timeout, unavailable or error."""
    status = getattr(error, "status", 500)
    if isinstance(error, TimeoutError) or status == 504:
        return "timeout"
    if status in (401, 403, 404):
        return "denied"
    if status == 503:
        return "unavailable"
    return "error"


class Breaker:
    """A circuit breaker: closed, open after N consecutive failures, half-open after a cool-down."""

    def __init__(self, failures: int, cooldown: float) -> None:
        self._limit = failures
        self._cooldown = cooldown
        self._failures = 0
        self._opened: float | None = None
        self._trial = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        with self._lock:
            if self._opened is None:
                return "closed"
            return "half-open" if time.monotonic() - self._opened >= self._cooldown else "open"

    def admit(self) -> bool:
        """Whether a call may go out now (one trial call at a time when half-open)."""
        with self._lock:
            if self._opened is None:
                return True
            if time.monotonic() - self._opened < self._cooldown or self._trial:
                return False
            self._trial = True
            return True

    def success(self) -> None:
        """The peer answered: close the circuit."""
        with self._lock:
            self._failures, self._opened, self._trial = 0, None, False

    def failure(self) -> None:
        """The peer failed: count it, and open (or re-open) the circuit at the limit."""
        with self._lock:
            self._failures += 1
            if self._trial or self._failures >= self._limit:
                self._opened = time.monotonic()
            self._trial = False


class Peer:
    """One peer node, called on behalf of this node's users."""

    def __init__(
        self,
        config: PeerConfig,
        *,
        key: NodeKey,
        issuer: str,
        institution: str,
        network: NetPolicy | None = None,
    ) -> None:
        self.config = config
        self.network = peer_policy(config, network or NetPolicy())
        self.institution = config.institution
        self.breaker = Breaker(config.breaker_failures, config.breaker_cooldown)
        self._key = key
        self._issuer = issuer
        self._home = institution
        self._ssl: ssl.SSLContext | None = None
        self._jwks: dict[str, Any] | None = config.jwks
        self._jwks_at = 0.0
        # One pool per event loop: a connection belongs to the loop that opened it.
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._pools_lock = threading.Lock()

    def assertion(self, principal: Principal) -> str:
        """A fresh on-behalf-of assertion for ``principal`` addressed to this peer."""
        return mint_assertion(
            self._key,
            issuer=self._issuer,
            audience=self.config.issuer,
            principal=principal,
            actor=self._home,
        )

    def _pool(self) -> httpx.AsyncClient:
        """This peer's client on the running event loop, made on first use and then kept."""
        loop = asyncio.get_running_loop()
        with self._pools_lock:
            client = self._pools.get(loop)
            if client is None:
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()  # made once: loading CAs is slow
                c = self.config
                client = guarded_async_client(
                    self.network,
                    base_url=c.base_url,
                    timeout=httpx.Timeout(c.read_timeout, connect=c.connect_timeout),
                    follow_redirects=False,
                    verify=self._ssl,
                    limits=POOL_LIMITS,
                )
                self._pools[loop] = client
            return client

    async def aclose(self) -> None:
        """Close this peer's pooled connections of the running event loop."""
        with self._pools_lock:
            client = self._pools.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def admit(self) -> None:
        """Raise ServiceUnavailable while the peer's circuit is open."""
        if not self.breaker.admit():
            raise ServiceUnavailable(f"peer {self.institution!r} is failing: its circuit is open")

    def answer_error(self, response: httpx.Response, body: bytes) -> MatgateError:
        """The error to raise for a peer's non-2xx answer (its problem document passed on)."""
        if 300 <= response.status_code < 400:
            return BadGateway(f"peer {self.institution!r} redirected; redirects are not followed")
        try:
            problem = json.loads(body)
        except ValueError:
            problem = {}
        problem = problem if isinstance(problem, dict) else {}
        detail = str(problem.get("detail") or f"HTTP {response.status_code}")[:2000]
        if response.status_code == 401:
            return BadGateway(f"peer {self.institution!r} refused this node's assertion: {detail}")
        extra = {
            k: problem[k]
            for k in ("reasons", "policy_version", "retry_after", "agreements")
            if k in problem
        }
        error = for_status(response.status_code, f"peer {self.institution!r}: {detail}", **extra)
        return error if error.status != 500 else BadGateway(error.detail)

    async def get_json(
        self,
        path: str,
        principal: Principal,
        *,
        params: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> Any:
        """GET ``path`` as ``principal`` and parse its JSON; retried on transient failures."""
        limit = deadline if deadline is not None else self.config.deadline
        end = time.monotonic() + limit
        try:
            with anyio.fail_after(limit):
                for attempt in range(self.config.retries + 1):
                    try:
                        return await self._get_once(path, principal, params, end)
                    except _Transient as exc:
                        if attempt >= self.config.retries:
                            raise exc.error from None
                    pause = min(0.1 * 2**attempt * random.uniform(0.5, 1.5), 2.0)
                    if time.monotonic() + pause >= end:
                        break
                    await anyio.sleep(pause)
                raise GatewayTimeout(f"peer {self.institution!r}: deadline reached while retrying")
        except TimeoutError:
            self.breaker.failure()
            raise GatewayTimeout(
                f"peer {self.institution!r} did not answer within {limit:g} s"
            ) from None

    async def _get_once(
        self, path: str, principal: Principal, params: Mapping[str, Any] | None, end: float
    ) -> Any:
        self.admit()
        headers = {"Authorization": f"Bearer {self.assertion(principal)}"}
        try:
            async with self.stream("GET", path, headers=headers, params=params, end=end) as resp:
                body = await read_capped(resp, self.config.max_json_bytes, self.institution)
                if resp.status_code >= 300:
                    error = self.answer_error(resp, body)
                    if error.status < 500:
                        self.breaker.success()
                        raise error
                    self.breaker.failure()
                    raise _Transient(error)
            value = json.loads(body)
        except (GatewayTimeout, ServiceUnavailable) as exc:
            raise _Transient(exc) from exc
        except ValueError as exc:
            self.breaker.failure()
            raise BadGateway(f"peer {self.institution!r} answered with invalid JSON") from exc
        self.breaker.success()
        return value

    async def post_json(
        self,
        path: str,
        principal: Principal,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> Any:
        """POST ``path`` as ``principal`` and parse its JSON answer; never retried (a POST may
        change the peer's state)."""
        limit = self.config.deadline
        end = time.monotonic() + limit
        self.admit()
        headers = {"Authorization": f"Bearer {self.assertion(principal)}"}
        try:
            with anyio.fail_after(limit):
                async with self.stream(
                    "POST", path, headers=headers, params=params, json_body=json_body, end=end
                ) as resp:
                    body = await read_capped(resp, self.config.max_json_bytes, self.institution)
        except TimeoutError:
            self.breaker.failure()
            raise GatewayTimeout(
                f"peer {self.institution!r} did not answer within {limit:g} s"
            ) from None
        if resp.status_code >= 300:
            error = self.answer_error(resp, body)
            (self.breaker.failure if error.status >= 500 else self.breaker.success)()
            raise error
        try:
            value = json.loads(body)
        except ValueError as exc:
            self.breaker.failure()
            raise BadGateway(f"peer {self.institution!r} answered with invalid JSON") from exc
        self.breaker.success()
        return value

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        end: float,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """An open response of the peer, its headers read; transport failures translated."""
        c = self.config
        read = max(0.05, min(c.read_timeout, end - time.monotonic()))
        # Waiting for a free pooled connection counts as connecting.
        timeout = httpx.Timeout(
            c.read_timeout, connect=c.connect_timeout, read=read, pool=c.connect_timeout
        )
        client = self._pool()
        try:
            request = client.build_request(
                method,
                path,
                headers=dict(headers),
                params=params,
                json=json_body,
                content=content,
                timeout=timeout,
            )
            response = await client.send(request, stream=True)
        except DestinationRefused as exc:
            raise BadGateway(f"peer {self.institution!r} may not be reached: {exc}") from exc
        except httpx.TimeoutException as exc:
            self.breaker.failure()
            raise GatewayTimeout(f"peer {self.institution!r} timed out: {exc!r}") from exc
        except httpx.HTTPError as exc:
            self.breaker.failure()
            raise ServiceUnavailable(
                f"peer {self.institution!r} cannot be reached ({type(exc).__name__})"
            ) from exc
        try:
            yield response
        except httpx.TimeoutException as exc:
            self.breaker.failure()
            raise GatewayTimeout(f"peer {self.institution!r} stalled: {exc!r}") from exc
        except httpx.HTTPError as exc:
            self.breaker.failure()
            raise BadGateway(f"peer {self.institution!r} broke off ({type(exc).__name__})") from exc
        finally:
            await response.aclose()

    async def jwks(self, principal: Principal) -> dict[str, Any]:
        """The peer's public keys: inline from the config, or fetched and cached."""
        if self.config.jwks is not None:
            return self.config.jwks
        if self._jwks is None or time.monotonic() - self._jwks_at > _JWKS_TTL:
            url = self.config.jwks_url or ""
            path = url[len(self.config.base_url) :] if url.startswith(self.config.base_url) else ""
            if not path:
                raise BadGateway(f"peer {self.institution!r}: jwks_url must be under its url")
            found = await self.get_json(path, principal)
            if not isinstance(found, dict) or not isinstance(found.get("keys"), list):
                raise BadGateway(f"peer {self.institution!r} served no JWK set")
            self._jwks, self._jwks_at = found, time.monotonic()
        return self._jwks


async def read_capped(response: httpx.Response, cap: int, peer: str) -> bytes:
    """The whole body, refused as soon as it grows past ``cap`` bytes."""
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise BadGateway(f"peer {peer!r} answered with {declared} bytes, more than {cap}")
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > cap:
            raise BadGateway(f"peer {peer!r} answered with more than {cap} bytes")
        parts.append(chunk)
    return b"".join(parts)


class Peers:
    """The peers of a node, by institution."""

    def __init__(
        self,
        configs: tuple[PeerConfig, ...],
        *,
        key: NodeKey,
        issuer: str,
        institution: str,
        network: NetPolicy | None = None,
    ) -> None:
        self._peers = {
            c.institution: Peer(c, key=key, issuer=issuer, institution=institution, network=network)
            for c in configs
        }

    def __contains__(self, institution: object) -> bool:
        return institution in self._peers

    def __iter__(self) -> Any:
        return iter(self._peers.values())

    def __len__(self) -> int:
        return len(self._peers)

    def get(self, institution: str) -> Peer | None:
        """The peer of ``institution``, if configured."""
        return self._peers.get(institution)

    async def aclose(self) -> None:
        """Close every peer's pooled connections of the running event loop."""
        for peer in self._peers.values():
            await peer.aclose()
