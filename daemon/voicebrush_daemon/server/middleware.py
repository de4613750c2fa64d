"""The gates every request passes: error shape, Host, Origin, cross-site writes, token.

One middleware owns the error shape, so no handler can leak a traceback or an
HTML error page: every 4xx/5xx leaves as {"error": {message, type, code, param}}.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
from urllib.parse import urlsplit

from aiohttp import web

from ..errors import ApiError
from ..settings import Settings, is_loopback_host

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "invalid_token",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "queue_full",
}


def error_response(error: ApiError) -> web.Response:
    response = web.json_response(error.body(), status=error.status)
    for name, value in error.headers.items():
        if name.lower() == "connection" and value.lower() == "close":
            # The request's body could not be read to its end: this connection cannot
            # carry another request, and the client must not reuse it.
            response.force_close()
            continue
        response.headers[name] = value
    return response


@web.middleware
async def error_shape(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason if exc.status != 404 else f"No route for {request.method} {request.path[:200]}."
        if exc.status == 405:
            message = f"{request.method} is not allowed on {request.path[:200]}."
        error = ApiError(exc.status, message, HTTP_CODES.get(exc.status, f"http_{exc.status}"))
        response = error_response(error)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError(500, "Internal error; the daemon log has the details.", "internal_error"))


def origin_allowed(origin: str, settings: Settings) -> bool:
    if origin in settings.allowed_origins:
        return True
    try:
        parts = urlsplit(origin)
        host, port = parts.hostname, parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False  # "null" (file://, sandboxed frames) and anything stranger
    if is_loopback_host(host):
        return True
    port = port or (443 if parts.scheme == "https" else 80)
    return host == settings.host and port == settings.port


def normalise_origin(origin: str) -> str:
    """scheme://host[:port] as browsers send it: lower case, no path, no trailing slash."""
    return origin.strip().rstrip("/").lower()


# AUTOMATIC1111's routes: its clients authenticate with HTTP Basic (A1111's --api-auth),
# so there the token is also accepted as the password (any user name).
BASIC_AUTH_PREFIX = "/sdapi/"


def supplied_token(request: web.Request) -> str:
    """The token the request carries: a Bearer token, or on BASIC_AUTH_PREFIX paths the
    password of HTTP Basic credentials; "" when none."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic" and request.path.startswith(BASIC_AUTH_PREFIX):
        try:
            credentials = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return ""
        return credentials.partition(":")[2]
    return ""


CORS_METHODS = "GET, POST, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"
CORS_EXPOSED = "Retry-After, Content-Type"
CORS_MAX_AGE_S = "600"


def cors_origin(request: web.Request, settings: Settings) -> str | None:
    """The request's Origin when the operator allowed it with --allow-origin, else None."""
    origin = request.headers.get("Origin")
    if origin is None or not settings.allowed_origins:
        return None
    allowed = {normalise_origin(o) for o in settings.allowed_origins}
    return origin if normalise_origin(origin) in allowed else None


def make_cors_headers(settings: Settings):
    """on_response_prepare hook: CORS headers on every answer (errors and event streams
    included, or a browser could not read them) to an origin the operator allowed, and
    none at all otherwise."""

    async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
        origin = cors_origin(request, settings)
        if origin is None:
            return
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
        response.headers["Vary"] = "Origin"

    return add_cors_headers


# host[:port] with host a DNS name or an IPv4 literal, or [IPv6][:port]. Anything else
# (userinfo, spaces, a path, an empty value) is no Host we answer to.
HOST_HEADER = re.compile(r"^(?:(?P<name>[A-Za-z0-9._-]+)|\[(?P<ipv6>[0-9A-Fa-f:.]+)\])(?::[0-9]{1,5})?$")
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_name(header: str | None) -> str | None:
    """The name in a Host header, lower case and without brackets or port; None if malformed."""
    match = HOST_HEADER.match(header or "")
    if match is None:
        return None
    return (match["name"] or match["ipv6"]).lower()


def own_host_names(settings: Settings) -> frozenset[str]:
    """The names a request may give in its Host header to a daemon without a token.

    DNS rebinding points a web page's own name at 127.0.0.1; its requests then carry
    that foreign name as Host (and, for GETs, no Origin). Only names the operator gave
    us (--host, --allow-origin, --public-url) and loopback names are ours."""
    names = {"localhost", "127.0.0.1", "::1"}
    if settings.host.strip("[]").lower() not in WILDCARD_HOSTS:
        names.add(settings.host.strip("[]").lower())
    for url in (*settings.allowed_origins, settings.public_url or ""):
        try:
            hostname = urlsplit(url.strip()).hostname
        except ValueError:
            hostname = None
        if hostname:
            names.add(hostname.lower())
    return frozenset(names)


def host_allowed(name: str | None, own_names: frozenset[str]) -> bool:
    # Loopback is any 127.x literal, ::1 or exactly "localhost": "localhost." and
    # "127.0.0.1.evil.example" are names someone else's DNS answers for.
    return name is not None and (name in own_names or is_loopback_host(name))


def make_access_middleware(settings: Settings):
    token = settings.token.encode() if settings.token else None
    allowed = tuple(normalise_origin(o) for o in settings.allowed_origins)
    settings_for_origins = settings if allowed == settings.allowed_origins else _with_origins(settings, allowed)
    own_names = own_host_names(settings_for_origins)

    @web.middleware
    async def access(request: web.Request, handler):
        # With a token, a rebound page cannot read anything: it does not have the token.
        # Without one, the Host header is the only sign that a page's name was rebound.
        if token is None and not host_allowed(host_name(request.headers.get("Host")), own_names):
            raise ApiError(
                403,
                "This daemon answers to localhost, 127.0.0.1 and the names given with --host, --allow-origin or --public-url; "
                "this request named another host.",
                "forbidden_host",
            )
        origin = request.headers.get("Origin")
        if origin is not None and not origin_allowed(normalise_origin(origin), settings_for_origins):
            # Browsers must not drive a local daemon from a web page.
            raise ApiError(403, "Requests from web pages on other sites are not allowed.", "forbidden_origin")
        if (
            request.method not in SAFE_METHODS
            and request.headers.get("Sec-Fetch-Site", "").strip().lower() == "cross-site"
            and cors_origin(request, settings) is None
        ):
            # The browser says a page on another site sent this write, whatever Origin
            # and Referer say (or leave out). Only an --allow-origin page may.
            raise ApiError(403, "Requests from web pages on other sites are not allowed.", "forbidden_origin")
        if request.method == "OPTIONS" and origin is not None and cors_origin(request, settings):
            # A CORS preflight carries no credentials: answer it before the token check.
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Methods": CORS_METHODS,
                    "Access-Control-Allow-Headers": CORS_HEADERS,
                    "Access-Control-Max-Age": CORS_MAX_AGE_S,
                },
            )
        if token is not None and not (request.method == "GET" and request.path == "/v1/health"):
            supplied = supplied_token(request)
            # compare_digest: the time taken does not reveal how much of the token matched.
            # The supplied value is never logged or echoed, right or wrong.
            if not supplied or not hmac.compare_digest(supplied.encode("utf-8", "surrogateescape"), token):
                basic = request.path.startswith(BASIC_AUTH_PREFIX)
                raise ApiError(
                    401,
                    "Missing or wrong token: send 'Authorization: Bearer TOKEN' with the daemon's token"
                    + (" (or HTTP Basic auth with the token as the password)." if basic else "."),
                    "invalid_token",
                    type="authentication_error",
                    headers={"WWW-Authenticate": 'Basic realm="voicebrush"' if basic else 'Bearer realm="voicebrush"'},
                )
        return await handler(request)

    return access


def _with_origins(settings: Settings, origins: tuple[str, ...]) -> Settings:
    from dataclasses import replace

    return replace(settings, allowed_origins=origins)
