"""Where a node may send requests: one SSRF policy for every outbound HTTP call.

OPTIMADE providers, peer nodes and identity providers' JWKS URLs are all reached through an
httpx client built by ``guarded_client`` / ``guarded_async_client``. Its transport resolves the
destination's host once, checks every address against the ``NetPolicy``, and connects to the
checked address (TLS still verifies the certificate against the host name), so a DNS answer that
changes between check and connect cannot send the request elsewhere. Each hop of a redirect is a
new request through the same transport, and a redirect to another origin (another host, or
another port of the same host) is refused before it is followed; ``http`` -> ``https`` on the
same host is the one change allowed.

Refused unless the policy allows them: loopback, private, link-local, shared (CGNAT), multicast,
reserved and unspecified addresses, the same addresses inside IPv4-mapped, 6to4, Teredo and NAT64
IPv6 forms, and every other address that is not globally reachable. Cloud metadata endpoints
(``METADATA``) are refused even inside an allowed network: only an allow entry naming that exact
address lets one through. An allow entry is a host name (matched as written in the URL, case and
trailing dot aside), an IP address or a CIDR network.

Any spelling of an address (decimal ``2130706433``, octal ``0177.0.0.1``, hex, IPv6 forms) is
judged by what it resolves to, never by its text.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

__all__ = [
    "METADATA",
    "DestinationRefused",
    "GuardedAsyncTransport",
    "GuardedTransport",
    "NetPolicy",
    "guarded_async_client",
    "guarded_client",
    "parse_allow",
    "same_origin",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class DestinationRefused(httpx.TransportError):
    """An outbound request to a destination the node's network policy does not allow."""


def parse_allow(entry: str) -> str | IPNetwork:
    """An allow-list entry as a lower-case host name or an IP network; ValueError if neither."""
    text = entry.strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    name = text.lower().rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_label_ok(lbl) for lbl in labels):
        raise ValueError(f"{entry!r} is neither a host name, an IP address nor a CIDR network")
    return name


def _label_ok(label: str) -> bool:
    return 0 < len(label) <= 63 and label.replace("-", "").replace("_", "").isalnum()


def _embedded(ip: IPAddress) -> list[IPAddress]:
    """The addresses to judge: an IPv4-mapped address is its IPv4 address; an address of another
    IPv6 form that carries IPv4 (6to4, Teredo, NAT64) is judged with every address it carries."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    found: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.sixtofour is not None:
            found.append(ip.sixtofour)
        if ip.teredo is not None:
            found.extend(ip.teredo)
        if ip in _NAT64:
            found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _special(ip: IPAddress) -> bool:
    return (
        not ip.is_global
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED)
    )


@dataclass(frozen=True)
class NetPolicy:
    """Which destinations outside the public internet a node may reach, by name or network."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    resolve_timeout: float = field(default=5.0, compare=False)

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> NetPolicy:
        """A policy from allow-list entries (host names, IP addresses, CIDR networks)."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            parsed = parse_allow(entry)
            if isinstance(parsed, str):
                hosts.add(parsed)
            else:
                networks.append(parsed)
        return cls(frozenset(hosts), tuple(networks))

    def extended(self, entries: Iterable[str]) -> NetPolicy:
        """This policy with more allow entries."""
        more = NetPolicy.from_entries(entries)
        return NetPolicy(self.hosts | more.hosts, self.networks + more.networks)

    def refusal(self, host: str, address: str) -> str | None:
        """Why ``host`` may not be reached at ``address``, or None when it may."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        carried = _embedded(ip)
        named = host.lower().rstrip(".") in self.hosts
        for inner in carried:
            if inner in METADATA:
                exact = any(n.num_addresses == 1 and inner in n for n in self.networks)
                if not exact:
                    return f"{host} resolves to {address}, a cloud metadata address"
            elif _special(inner) and not named and not any(inner in n for n in self.networks):
                return (
                    f"{host} resolves to {address}, a non-public address; "
                    "add the host or its network to the node's [network] allow list to reach it"
                )
        return None

    def resolve(self, host: str, port: int) -> str:
        """The one checked address to connect to for ``host``; DestinationRefused otherwise."""
        if not host:
            raise DestinationRefused("a request needs a host")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise DestinationRefused(f"{host} does not resolve: {exc}") from None
        addresses = list(dict.fromkeys(str(i[4][0]) for i in infos))
        if not addresses:
            raise DestinationRefused(f"{host} does not resolve")
        # Every answer must pass: a name that resolves to one public and one private address
        # is refused, so which one the connection would use does not matter.
        for address in addresses:
            problem = self.refusal(host, address)
            if problem is not None:
                raise DestinationRefused(problem)
        return addresses[0]

    def check_url(self, url: str) -> str:
        """Refuse ``url`` unless it is http(s) and its host may be reached; return the address."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise DestinationRefused(f"{url!r} is not a URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise DestinationRefused(f"{url!r} is not an http(s) URL")
        return self.resolve(parsed.host, _port(parsed))


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _literal(host: str) -> bool:
    """Whether ``host`` is written as an IP address (its resolution needs no DNS)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _pinned(request: httpx.Request, address: str) -> httpx.Request:
    """The same request sent to ``address``; Host header and TLS server name stay the host's."""
    extensions = dict(request.extensions)
    if request.url.scheme == "https":
        extensions.setdefault("sni_hostname", request.url.host)
    return httpx.Request(
        request.method,
        request.url.copy_with(host=address),
        headers=request.headers,  # carries Host: the original name
        stream=request.stream,
        extensions=extensions,
    )


def _scheme_ok(request: httpx.Request) -> None:
    if request.url.scheme not in ("http", "https"):
        raise DestinationRefused(f"{request.url} is not an http(s) URL")


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport that resolves, checks and pins every request's destination."""

    def __init__(self, policy: NetPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to its host's checked address."""
        _scheme_ok(request)
        address = self.policy.resolve(request.url.host, _port(request.url))
        return super().handle_request(_pinned(request, address))


class GuardedAsyncTransport(httpx.AsyncHTTPTransport):
    """The asynchronous ``GuardedTransport`` (name resolution runs in a worker thread)."""

    def __init__(self, policy: NetPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to its host's checked address."""
        _scheme_ok(request)
        host, port = request.url.host, _port(request.url)
        if _literal(host):  # nothing to look up: checked here, without a thread
            address = self.policy.resolve(host, port)
        else:
            address = await anyio.to_thread.run_sync(self.policy.resolve, host, port)
        return await super().handle_async_request(_pinned(request, address))


def same_origin(before: httpx.URL, after: httpx.URL) -> bool:
    """Whether ``after`` is on the origin of ``before`` (or its upgrade to https)."""
    if before.host != after.host:
        return False
    if before.scheme == after.scheme:
        return _port(before) == _port(after)
    # The one change allowed: an upgrade to https on the default ports.
    upgrade = before.scheme == "http" and after.scheme == "https"
    return upgrade and _port(before) == 80 and _port(after) == 443


def _redirect_target(response: httpx.Response) -> httpx.URL | None:
    if not response.has_redirect_location:
        return None
    try:
        return response.request.url.join(response.headers["location"])
    except httpx.InvalidURL:
        raise DestinationRefused("a redirect names an invalid URL") from None


def _refuse_cross_origin(response: httpx.Response) -> None:
    target = _redirect_target(response)
    if target is not None and not same_origin(response.request.url, target):
        raise DestinationRefused(f"{response.request.url} redirected to another origin ({target})")


async def _refuse_cross_origin_async(response: httpx.Response) -> None:
    _refuse_cross_origin(response)


def _transport_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The options that belong to the transport (a client given one ignores them)."""
    options = {"verify": kwargs.pop("verify", True)}
    if "limits" in kwargs:
        options["limits"] = kwargs.pop("limits")
    return options


def guarded_client(policy: NetPolicy, **kwargs: Any) -> httpx.Client:
    """An httpx client whose every request (redirects included) obeys ``policy``.

    With ``follow_redirects=True`` a redirect to another origin is refused before it is followed.
    ``verify`` and ``limits`` go to the transport, whose pool keys connections by the checked
    address a request was pinned to: a kept-alive connection is reused only for requests whose
    host resolved, and was checked, to that same address.
    """
    transport = GuardedTransport(policy, **_transport_options(kwargs))
    hooks = dict(kwargs.pop("event_hooks", {}))
    if kwargs.get("follow_redirects"):
        hooks["response"] = [_refuse_cross_origin, *hooks.get("response", [])]
    # No proxies from the environment: the checks must see the real destination.
    return httpx.Client(transport=transport, trust_env=False, event_hooks=hooks, **kwargs)


def guarded_async_client(policy: NetPolicy, **kwargs: Any) -> httpx.AsyncClient:
    """The asynchronous ``guarded_client``."""
    transport = GuardedAsyncTransport(policy, **_transport_options(kwargs))
    hooks = dict(kwargs.pop("event_hooks", {}))
    if kwargs.get("follow_redirects"):
        hooks["response"] = [_refuse_cross_origin_async, *hooks.get("response", [])]
    return httpx.AsyncClient(transport=transport, trust_env=False, event_hooks=hooks, **kwargs)
