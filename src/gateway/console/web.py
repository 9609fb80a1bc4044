"""The console's plumbing: settings, templates, security headers, the signed-in user, errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.console.session import Session, SessionCodec, csrf_ok
from gateway.errors import Forbidden, MatgateError, Unauthorized
from gateway.node import Node
from gateway.security import authenticate
from policies.decisions import Action
from policies.principals import Principal

__all__ = [
    "CSP",
    "ConsoleSettings",
    "Context",
    "console_settings",
    "context",
    "error_page",
    "headers",
    "render",
]

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(("html", "svg"), default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


class ConsoleSettings(BaseSettings):
    """How the console signs people in (environment variables ``MATGATE_CONSOLE_*``)."""

    model_config = SettingsConfigDict(env_prefix="MATGATE_CONSOLE_", extra="ignore")

    demo_signin: bool = Field(
        default=False, description="Offer one-click sign-in as each demo persona (demo only)."
    )
    oidc_issuers: tuple[str, ...] = Field(
        default=(),
        description="Trusted issuers to offer for OIDC sign-in (discovery at the issuer).",
    )
    oidc_client_id: str = Field(default="matgate-console", description="The console's client id.")
    oidc_client_secret: str | None = Field(default=None, description="Its secret, if confidential.")


def console_settings(request: Request) -> ConsoleSettings:
    """The app's console settings (``app.state.console_settings``, else the environment)."""
    found = getattr(request.app.state, "console_settings", None)
    if found is None:
        found = ConsoleSettings()
        request.app.state.console_settings = found
    assert isinstance(found, ConsoleSettings)
    return found


def codec(request: Request) -> SessionCodec:
    """The app's session codec, its key beside the node key."""
    found = getattr(request.app.state, "console_codec", None)
    if found is None:
        node: Node = request.app.state.node
        key_file = node.settings.resolved_key_file().with_name("console_session.key")
        found = SessionCodec(key_file, secure=node.public_url.startswith("https://"))
        request.app.state.console_codec = found
    assert isinstance(found, SessionCodec)
    return found


@dataclass
class Context:
    """One console request: the node, the session and, when signed in, the principal."""

    request: Request
    node: Node
    session: Session
    fresh: bool
    principal: Principal | None

    def can(self, action: Action) -> bool:
        """Whether the principal may manage or audit this node's domain."""
        if self.principal is None:
            return False
        return self.node.governance.check_domain(
            self.principal, self.node.institution, action
        ).allowed

    def require(self) -> Principal:
        """The principal, or 401."""
        if self.principal is None:
            raise Unauthorized("sign in first")
        return self.principal

    def require_domain(self, action: Action) -> Principal:
        """The principal if they may ``action`` this domain, else 403."""
        principal = self.require()
        if not self.can(action):
            raise Forbidden(f"{principal.id} may not {action.value} domain {self.node.institution}")
        return principal

    def check_csrf(self, given: str | None) -> None:
        """403 unless ``given`` is this session's CSRF token."""
        if self.fresh or not csrf_ok(self.session, given):
            raise Forbidden("missing or wrong CSRF token; reload the page and try again")


def context(request: Request) -> Context:
    """The console context of ``request`` (a new anonymous session if it has none)."""
    node: Node = request.app.state.node
    found = codec(request).load(request)
    session = found or Session()
    principal = None
    if session.token:
        source = request.client.host if request.client else "unknown"
        try:
            principal = authenticate(node, session.token, source=source)
        except Unauthorized:
            session.token = None
        if node.watcher is None:
            node.governance.sync()
    return Context(request, node, session, found is None, principal)


def headers(response: Response) -> Response:
    """Add the console's security headers to ``response``."""
    response.headers.update(SECURITY_HEADERS)
    return response


def render(ctx: Context, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    """A page rendered from ``template`` with the security headers and the session cookie."""
    page = _env.get_template(template).render(
        user=ctx.principal,
        node=ctx.node,
        csrf=ctx.session.csrf,
        path=ctx.request.url.path,
        is_steward=ctx.can(Action.MANAGE),
        is_auditor=ctx.can(Action.AUDIT),
        **values,
    )
    response = HTMLResponse(page, status_code=status)
    codec(ctx.request).save(response, ctx.session)
    return headers(response)  # type: ignore[return-value]


def redirect(ctx: Context, url: str) -> Response:
    """A 303 to ``url`` (a console path) that keeps the session cookie."""
    response = RedirectResponse(url, status_code=303)
    codec(ctx.request).save(response, ctx.session)
    return headers(response)


def error_page(ctx: Context, error: Exception) -> Response:
    """An error as a page: sign-in for 401, the status and its detail otherwise."""
    status = getattr(error, "status", 500)
    detail = getattr(error, "detail", None) or str(error)
    if status == 401:
        return redirect(ctx, "/console/signin")
    if not isinstance(error, MatgateError) and status == 500:
        raise error
    return render(ctx, "error.html", status=status, status_code=status, detail=detail)
