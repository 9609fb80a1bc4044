"""Pages of a listing by ``maxResults`` and ``pageToken``, which tell nothing of what is hidden.

A listing walks an ordered list of names (the node's shares, a share's datasets) and keeps those
the recipient may see, reading the candidates a chunk at a time, so a page costs what it shows
and what lies between, never the whole catalog. A page token names the last item the page
showed (something the recipient has seen already, never a position that would count the items
hidden before it) and carries an HMAC of the node's key over that name and the listing it
belongs to: a token that was altered, forged or made for another listing is refused with 400,
whether or not the name it carries exists. ``nextPageToken`` is given only when another visible
item follows, so an empty last page never betrays hidden ones behind it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gateway.errors import BadRequest

if TYPE_CHECKING:
    from gateway.node import Node

__all__ = ["MAX_RESULTS", "TOKEN_MAX", "page", "token"]

MAX_RESULTS = 500
TOKEN_MAX = 1024  # the longest page token accepted (a name of up to ~700 bytes, and its MAC)
_CHUNK_MAX = 1_000  # candidates read at once while filling a page
_MAC_CHARS = 32

Pick = Callable[[Sequence[str]], list[tuple[str, dict[str, Any]]]]


def _key(node: Node) -> bytes:
    return node.key.derived("matgate delta-sharing page tokens")


def _mac(node: Node, listing: str, last: str) -> str:
    message = f"{listing}\n{last}".encode()
    return hmac.new(_key(node), message, hashlib.sha256).hexdigest()[:_MAC_CHARS]


def token(node: Node, listing: str, last: str) -> str:
    """The page token of ``listing`` that continues after the item named ``last``."""
    name = base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")
    return f"{name}.{_mac(node, listing, last)}"


def _last(node: Node, listing: str, given: str) -> str:
    """The name a token of ``listing`` continues after; 400 for anything but such a token."""
    bad = BadRequest(f"invalid pageToken {given[:64]!r}: start again without one")
    name, _, mac = given.partition(".")
    if len(given) > TOKEN_MAX or len(mac) != _MAC_CHARS:
        raise bad
    try:
        last = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not hmac.compare_digest(_mac(node, listing, last), mac):
        raise bad
    return last


def page(
    node: Node,
    listing: str,
    names: Sequence[str],
    pick: Pick,
    max_results: int | None,
    given: str | None,
) -> dict[str, Any]:
    """One page of the items of ``names`` that ``pick`` keeps (it gets a chunk of names and
    returns the visible ones' ``(name, item)`` in order), after the token's item if given."""
    size = MAX_RESULTS if max_results is None else max_results
    if size < 0:
        raise BadRequest("maxResults must be non-negative")
    size = min(size, MAX_RESULTS)
    last = _last(node, listing, given) if given else ""
    start = 0
    if last:
        try:
            start = names.index(last) + 1
        except ValueError:  # the item was withdrawn since: its place is lost
            raise BadRequest("pageToken: the listing changed; start again without one") from None
    found: list[tuple[str, dict[str, Any]]] = []
    chunk = min(max(size + 1, 32), _CHUNK_MAX)
    at = start
    while len(found) <= size and at < len(names):
        found += pick(names[at : at + chunk])
        at += chunk
        chunk = min(chunk * 2, _CHUNK_MAX)  # most candidates hidden: read more at once
    body: dict[str, Any] = {"items": [item for _name, item in found[:size]]}
    if len(found) > size:
        # the item that follows is visible: the next page starts after the last one shown
        shown = found[size - 1][0] if size else last
        body["nextPageToken"] = token(node, listing, shown)
    return body
