"""Who is looking at the dashboard, and whether a form really comes from it.

Sign-in keeps the API key in a cookie that scripts cannot read (HttpOnly), that the browser
sends only to this site's own pages (SameSite=Strict) and only over HTTPS when the page came
over HTTPS (Secure). The key's tenant is found as the API finds it (`Tenants.identify`), so a
key sees exactly what it sees through the API. Without `TWILIO_JOBS_API_KEYS` the API is open,
and so is the dashboard.

Every form that changes anything carries a CSRF token: a random value kept in a second cookie
(double submit), checked in constant time, and the request's `Origin`, when the browser sends
one, must be this site.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qsl, urlsplit

from fastapi import Request
from starlette.responses import Response

from twilio_jobs.errors import Forbidden, Unauthorized
from twilio_jobs.tenancy import Tenants

KEY_COOKIE = "tj_key"
CSRF_COOKIE = "tj_csrf"
CSRF_FIELD = "csrf"
MAX_FORM_BYTES = 16384


def tenants(request: Request) -> Tenants:
    found: Tenants = request.app.state.tenants
    return found


def owner(request: Request) -> str:
    """The tenant of the signed-in key (or of an `Authorization` header); Unauthorized when
    keys are on and neither holds a valid one."""
    known = tenants(request)
    if not known.enabled:
        return ""
    header = request.headers.get("authorization")
    if header:
        return known.identify(header)
    key = request.cookies.get(KEY_COOKIE)
    if not key:
        raise Unauthorized("Sign in with an API key")
    return known.identify(f"Bearer {key}")


def csrf_token(request: Request) -> str:
    """The browser's CSRF token (made now when it has none; `remember` stores it)."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token:
        token = request.state.__dict__.setdefault("new_csrf", secrets.token_urlsafe(32))
    return token


def remember(request: Request, response: Response) -> Response:
    """Set the cookies this request made."""
    token = request.state.__dict__.get("new_csrf")
    if token:
        secure = _secure(request)
        response.set_cookie(
            CSRF_COOKIE, token, httponly=True, samesite="strict", path="/ui", secure=secure
        )
    return response


def sign_in(request: Request, response: Response, key: str) -> None:
    response.set_cookie(
        KEY_COOKIE, key, httponly=True, samesite="strict", path="/ui", secure=_secure(request)
    )


def sign_out(response: Response) -> None:
    response.delete_cookie(KEY_COOKIE, path="/ui")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


async def form(request: Request) -> dict[str, str]:
    """The posted form, once its CSRF token and origin are checked; Forbidden if not."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        parts = urlsplit(origin)
        if parts.netloc != request.headers.get("host", request.url.netloc):
            raise Forbidden("Cross-site form refused")
    elif origin == "null":
        raise Forbidden("Cross-site form refused")
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise Forbidden("Form too large")
    fields = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    expected = request.cookies.get(CSRF_COOKIE, "")
    given = fields.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        raise Forbidden("Missing or wrong CSRF token: reload the page and try again")
    return fields


__all__ = ["csrf_token", "form", "owner", "remember", "sign_in", "sign_out"]
