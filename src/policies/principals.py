"""Who is asking: the principal a validated token stands for, and its issuer-qualified id.

A subject is unique only within its issuer: two identity providers may both issue ``sub =
alice`` for two different people. A principal's id therefore always carries a namespace: a short
name the node's config gives an issuer (``aurora:alice``), or the issuer's URL itself
(``https://idp.example/realms/lab#alice``, the form Kubernetes uses for OIDC users). Policies,
grants, agreements, jobs, audit events and manifests name principals by this id only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "ANONYMOUS",
    "NAMESPACE",
    "Principal",
    "is_principal_id",
    "principal_id",
    "split_principal_id",
]

# A namespace named in config: an institution-like slug, never containing ':' or '#'.
NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# What a policy line may name as a subject: printable, no spaces, quotes, commas or backslashes.
SUBJECT = re.compile(r"^[^\s,\"'\\]{1,200}$")
_URL = re.compile(r"^https?://[^\s#,\"'\\]{1,200}$")
MAX_ID_LENGTH = 240


def principal_id(namespace: str, subject: str) -> str:
    """``namespace:subject``, or ``issuer-url#subject`` when the namespace is an issuer's URL."""
    return f"{namespace}#{subject}" if _is_url(namespace) else f"{namespace}:{subject}"


def split_principal_id(text: str) -> tuple[str, str]:
    """(namespace, subject) of an id; ValueError when it is not issuer-qualified."""
    if _is_url(text):
        namespace, sep, subject = text.partition("#")
        ok = bool(sep) and bool(_URL.match(namespace))
    else:
        namespace, sep, subject = text.partition(":")
        ok = bool(sep) and bool(NAMESPACE.match(namespace))
    if not ok or not SUBJECT.match(subject) or len(text) > MAX_ID_LENGTH:
        raise ValueError(
            f"{text!r} is not an issuer-qualified principal id: write 'namespace:subject' "
            "(the issuer's namespace in the node config, e.g. 'aurora:alice') or "
            "'issuer-url#subject' for an issuer without one"
        )
    return namespace, subject


def is_principal_id(text: str) -> bool:
    """Whether ``text`` is a well-formed issuer-qualified principal id."""
    try:
        split_principal_id(text)
    except ValueError:
        return False
    return True


def _is_url(text: str) -> bool:
    return text.startswith(("https://", "http://"))


@dataclass(frozen=True, slots=True)
class Principal:
    """A subject of an issuer's namespace and a home institution, with roles.

    ``namespace`` defaults to the institution (the namespace of the node's own issuer and of a
    peer's users); ``actor`` is the peer node speaking for them; ``notes`` say why a token gave
    fewer rights than it might have (a missing roles claim), for the reasons of a refusal.
    """

    subject: str
    institution: str
    roles: frozenset[str] = frozenset()
    attrs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    actor: str | None = None
    namespace: str | None = None
    issuer: str | None = None
    notes: tuple[str, ...] = ()
    anonymous: bool = False
    id: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Computed once: the id keys every decision cache. A caller without a token is
        # "anonymous", which no issuer-qualified id can equal (it has no ':' or '#').
        qualified = (
            "anonymous"
            if self.anonymous
            else principal_id(self.namespace or self.institution, self.subject)
        )
        object.__setattr__(self, "id", qualified)


ANONYMOUS = Principal(subject="anonymous", institution="", anonymous=True)
"""A caller without a token: matches the policy's ``public`` lines and nothing else."""
