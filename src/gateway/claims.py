"""Claim paths: where an identity provider puts roles, groups and the institution in a token.

Institutions' IdPs nest them: Keycloak puts realm roles in ``realm_access.roles`` and client
roles in ``resource_access.<client>.roles``; Auth0 and Okta use claim names that are URLs, with
dots in them. A path is a dot-separated list of keys; a key containing dots or other special
characters is written in brackets and quotes (``["https://example.org/roles"]``) or with its dots
escaped (``https://example\\.org/roles``)::

    realm_access.roles
    resource_access.matgate-node.roles
    ["https://matgate.example/roles"]
    resource_access["my.client"].roles

The value at a path is a list of strings or one space-separated string (OAuth's ``scope``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MISSING", "ClaimPath", "parse_claim_path", "read_claim", "strings_at"]

ClaimPath = tuple[str, ...]
MISSING: Any = object()
_PLAIN = re.compile(r"(?:[^.\[\]\\\"]|\\.)+")
_QUOTED = re.compile(r'\[\s*("(?:[^"\\]|\\.)*")\s*\]')
_MAX_DEPTH = 8


def parse_claim_path(text: str) -> ClaimPath:
    """The keys of a claim path; ValueError with the position of a syntax error."""
    keys: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "[":
            m = _QUOTED.match(text, i)
            if m is None:
                raise ValueError(f'claim path {text!r}: expected ["name"] at position {i}')
            keys.append(json.loads(m.group(1)))
            i = m.end()
        else:
            m = _PLAIN.match(text, i)
            if m is None:
                raise ValueError(f"claim path {text!r}: empty key at position {i}")
            keys.append(re.sub(r"\\(.)", r"\1", m.group(0)))
            i = m.end()
        if i < len(text):
            if text[i] == ".":
                i += 1
                if i == len(text):
                    raise ValueError(f"claim path {text!r} ends with '.'")
            elif text[i] != "[":
                raise ValueError(f"claim path {text!r}: unexpected {text[i]!r} at position {i}")
    if not keys or any(k == "" for k in keys):
        raise ValueError(f"claim path {text!r} names no claim")
    if len(keys) > _MAX_DEPTH:
        raise ValueError(f"claim path {text!r} is deeper than {_MAX_DEPTH} keys")
    return tuple(keys)


def read_claim(claims: Mapping[str, Any], path: ClaimPath) -> Any:
    """The value at ``path``, or ``MISSING`` when any key on the way is absent."""
    value: Any = claims
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return MISSING
        value = value[key]
    return value


def strings_at(claims: Mapping[str, Any], path: ClaimPath) -> list[str] | None:
    """Strings at ``path`` (a list, or a space-separated string); None when absent.

    Raises ValueError when the claim is there but is neither.
    """
    value = read_claim(claims, path)
    if value is MISSING or value is None:
        return None
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError("must be a list of strings or a space-separated string")
