"""Signing in to the console: one click per demo persona (demo only), or OIDC with PKCE.

The OIDC flow is the authorization-code flow with PKCE (S256) against an issuer this node
trusts and the console settings name; the access token it returns is validated exactly like a
bearer token on the API (``gateway.security.authenticate``), then kept in the signed session.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import Response

from gateway.console.web import (
    ConsoleSettings,
    Context,
    codec,
    console_settings,
    context,
    error_page,
    redirect,
    render,
)
from gateway.errors import BadRequest, Forbidden, Unauthorized
from gateway.security import authenticate

router = APIRouter(prefix="/console", include_in_schema=False)
Ctx = Annotated[Context, Depends(context)]
Conf = Annotated[ConsoleSettings, Depends(console_settings)]


def _personas(conf: ConsoleSettings) -> list[Any]:
    if not conf.demo_signin:
        return []
    from gateway.demo import PERSONAS

    return list(PERSONAS)


def _oidc_issuers(ctx: Context, conf: ConsoleSettings) -> list[str]:
    trusted = {i.issuer for i in ctx.node.config.issuers}
    return [i for i in conf.oidc_issuers if i in trusted]


@router.get("/signin")
def signin(ctx: Ctx, conf: Conf) -> Response:
    """The sign-in page."""
    return render(ctx, "signin.html", personas=_personas(conf), issuers=_oidc_issuers(ctx, conf))


@router.post("/signin/demo")
def signin_demo(
    ctx: Ctx,
    conf: Conf,
    persona: Annotated[str, Form(max_length=64)],
    csrf: Annotated[str | None, Form(max_length=128)] = None,
) -> Response:
    """Sign in as a demo persona (only where the demo sign-in is enabled)."""
    try:
        ctx.check_csrf(csrf)
        found = next((p for p in _personas(conf) if p.name == persona), None)
        if found is None:
            raise Forbidden("one-click sign-in is not enabled on this node, or no such persona")
        token = ctx.node.issuer.mint(
            found.subject, roles=found.roles, institution=found.institution
        )
    except Exception as exc:
        return error_page(ctx, exc)
    return _signed_in(ctx, token)


def _signed_in(ctx: Context, token: str) -> Response:
    source = ctx.request.client.host if ctx.request.client else "unknown"
    authenticate(ctx.node, token, source=source)
    ctx.session.token = token
    ctx.session.csrf = secrets.token_urlsafe(32)  # a new session gets a new CSRF token
    ctx.session.oidc = {}
    return redirect(ctx, "/console/catalog")


@router.post("/signout")
def signout(ctx: Ctx, csrf: Annotated[str | None, Form(max_length=128)] = None) -> Response:
    """Forget the session."""
    try:
        ctx.check_csrf(csrf)
    except Exception as exc:
        return error_page(ctx, exc)
    response = redirect(ctx, "/console/signin")
    codec(ctx.request).clear(response)
    return response


def _discover(issuer: str) -> dict[str, Any]:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        meta = httpx.get(url, timeout=5.0).raise_for_status().json()
    except (httpx.HTTPError, ValueError) as exc:
        raise BadRequest(f"cannot read {url}: {type(exc).__name__}") from exc
    if meta.get("issuer") != issuer:
        raise BadRequest(f"{url} names issuer {meta.get('issuer')!r}, not {issuer!r}")
    return dict(meta)


def _callback_url(ctx: Context) -> str:
    return ctx.node.public_url.rstrip("/") + "/console/oidc/callback"


@router.get("/signin/oidc")
def signin_oidc(ctx: Ctx, conf: Conf, issuer: Annotated[str, Query(max_length=500)]) -> Response:
    """Start the authorization-code flow with PKCE at a trusted issuer."""
    try:
        if issuer not in _oidc_issuers(ctx, conf):
            raise Forbidden(f"{issuer!r} is not an issuer offered for sign-in here")
        meta = _discover(issuer)
        verifier = secrets.token_urlsafe(48)
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        ctx.session.oidc = {"issuer": issuer, "state": state, "verifier": verifier}
        query = urlencode(
            {
                "response_type": "code",
                "client_id": conf.oidc_client_id,
                "redirect_uri": _callback_url(ctx),
                "scope": "openid profile",
                "state": state,
                "nonce": nonce,
                "code_challenge": create_s256_code_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
    except Exception as exc:
        return error_page(ctx, exc)
    return redirect(ctx, f"{meta['authorization_endpoint']}?{query}")


@router.get("/oidc/callback")
def oidc_callback(
    ctx: Ctx,
    conf: Conf,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Exchange the code (with the PKCE verifier) and keep the validated access token."""
    try:
        flow = ctx.session.oidc
        if error:
            raise Unauthorized(f"the identity provider said: {error}")
        if not flow or not state or not secrets.compare_digest(flow.get("state", ""), state):
            raise Forbidden("sign-in state does not match; start again")
        if not code:
            raise BadRequest("no authorization code")
        meta = _discover(flow["issuer"])
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": _callback_url(ctx),
            "client_id": conf.oidc_client_id,
            "code_verifier": flow["verifier"],
        }
        auth = (conf.oidc_client_id, conf.oidc_client_secret) if conf.oidc_client_secret else None
        answer = httpx.post(meta["token_endpoint"], data=form, auth=auth, timeout=10.0)
        if answer.status_code != 200:
            raise Forbidden(f"the token endpoint refused the code ({answer.status_code})")
        token = answer.json().get("access_token")
        if not isinstance(token, str):
            raise Forbidden("the token endpoint returned no access token")
        return _signed_in(ctx, token)
    except Exception as exc:
        ctx.session.oidc = {}
        return error_page(ctx, exc)
