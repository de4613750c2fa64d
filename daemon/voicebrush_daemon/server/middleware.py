"""The three gates every request passes: error shape, Origin, token.

One middleware owns the error shape, so no handler can leak a traceback or an
HTML error page: every 4xx/5xx leaves as {"error": {message, type, code, param}}.
"""

from __future__ import annotations

import hmac
import logging
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


def make_access_middleware(settings: Settings):
    token = settings.token.encode() if settings.token else None

    @web.middleware
    async def access(request: web.Request, handler):
        origin = request.headers.get("Origin")
        if origin is not None and not origin_allowed(origin, settings):
            # Browsers must not drive a local daemon from a web page.
            raise ApiError(403, "Requests from web pages on other sites are not allowed.", "forbidden_origin")
        if token is not None and not (request.method == "GET" and request.path == "/v1/health"):
            supplied = request.headers.get("Authorization", "")
            scheme, _, value = supplied.partition(" ")
            # compare_digest: the time taken does not reveal how much of the token matched.
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token):
                raise ApiError(
                    401,
                    "Missing or wrong token: send 'Authorization: Bearer TOKEN' with the daemon's token.",
                    "invalid_token",
                    type="authentication_error",
                    headers={"WWW-Authenticate": 'Bearer realm="voicebrush"'},
                )
        response = await handler(request)
        if origin is not None and origin in settings.allowed_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    return access
