"""Console sessions: a signed, HttpOnly cookie holding a CSRF token and the validated bearer token.

The signing key lives beside the node's key (``console_session.key``, made on first use, mode
0600). The cookie is signed (itsdangerous, HMAC-SHA256) and expires after ``MAX_AGE``; the token
inside it is authenticated again on every request, so an expired or revoked token signs out.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["COOKIE", "MAX_AGE", "Session", "SessionCodec", "csrf_ok"]

COOKIE = "matgate_console"
MAX_AGE = 8 * 3600


@dataclass
class Session:
    """What the console remembers between requests."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    token: str | None = None
    oidc: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The cookie's payload."""
        return {"csrf": self.csrf, "token": self.token, "oidc": self.oidc}


def _key(path: Path) -> bytes:
    """The session key at ``path``, made (0600) if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fp:
            fp.write(secrets.token_bytes(32))
    return path.read_bytes()


class SessionCodec:
    """Reads and writes the session cookie."""

    def __init__(self, key_file: Path, *, secure: bool) -> None:
        self.serializer = URLSafeTimedSerializer(_key(key_file), salt="matgate-console")
        self.secure = secure

    def load(self, request: Request) -> Session | None:
        """The request's session, or None if absent, forged or expired."""
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self.serializer.loads(raw, max_age=MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            return None
        token = data.get("token")
        oidc = data.get("oidc")
        return Session(
            csrf=data["csrf"],
            token=token if isinstance(token, str) else None,
            oidc=oidc if isinstance(oidc, dict) else {},
        )

    def save(self, response: Response, session: Session) -> None:
        """Set the cookie: signed, HttpOnly, SameSite=Lax, Secure on an https node."""
        response.set_cookie(
            COOKIE,
            self.serializer.dumps(session.to_dict()),
            max_age=MAX_AGE,
            path="/console",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear(self, response: Response) -> None:
        """Remove the cookie."""
        response.delete_cookie(
            COOKIE, path="/console", secure=self.secure, httponly=True, samesite="lax"
        )


def csrf_ok(session: Session | None, given: str | None) -> bool:
    """Whether a form's CSRF token is the session's (constant-time)."""
    if session is None or not given:
        return False
    return hmac.compare_digest(session.csrf.encode(), given.encode())
