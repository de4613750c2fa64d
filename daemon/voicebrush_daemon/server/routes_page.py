"""The web page: `GET /` and its static files, shipped in the package (voicebrush_daemon/page/).

Plain HTML, CSS and JavaScript modules that use only the API; nothing is built at install
time. The files are a fixed table read once from the package: no request names a path on
disk. They need no token (there is nothing of the artist's in them); the page asks for the
token itself and sends it as Bearer on every API call.
"""

from __future__ import annotations

import functools
from importlib import resources

from aiohttp import web

from ..errors import ApiError
from .endpoint import endpoint

routes = web.RouteTableDef()

PAGE_PACKAGE = "voicebrush_daemon"
PAGE_FOLDER = "page"
# Every file the page is made of, with its type. The page's own code is the only script
# it may run: no inline script, no eval, connections to this daemon only.
ASSETS = {
    "page.css": "text/css",
    "main.js": "text/javascript",
    "api.js": "text/javascript",
    "messages.js": "text/javascript",
    "voice.js": "text/javascript",
    "pcm-tap.js": "text/javascript",
    "picture.js": "text/javascript",
    "history.js": "text/javascript",
    "storyboard.js": "text/javascript",
    "icon.svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        # blob: the pictures, fetched with the token; data: the progress previews (JPEG base64).
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
    # Small files that change with the daemon: always revalidated, never stale.
    "Cache-Control": "no-cache",
}


@functools.lru_cache(maxsize=None)
def page_file(name: str) -> bytes:
    return resources.files(PAGE_PACKAGE).joinpath(PAGE_FOLDER, name).read_bytes()


def _answer(name: str, content_type: str) -> web.Response:
    return web.Response(body=page_file(name), content_type=content_type, charset="utf-8" if not content_type.startswith("image/") else None, headers=PAGE_HEADERS)


TEXT = {"type": "string"}


@routes.get("/")
@endpoint(
    "The web page: speak (or type) a picture in the browser; it uses only this API (no token needed to load it)",
    public=True,
    responses={200: ("The page (sent with a Content-Security-Policy that allows no inline script)", {"text/html": TEXT})},
)
async def page(request: web.Request) -> web.Response:
    return _answer("index.html", "text/html")


@routes.get("/page/{asset}")
@endpoint(
    "One of the web page's files (its styles, script modules and icon)",
    public=True,
    path_parameters={"asset": {"schema": {"type": "string", "enum": sorted(ASSETS)}, "description": "A file the page loads."}},
    responses={200: ("The file", {kind: TEXT for kind in sorted(set(ASSETS.values()))})},
    errors=(404,),
)
async def page_asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    content_type = ASSETS.get(name)
    if content_type is None:
        raise ApiError(404, "The web page has no file of that name.", "not_found", param="asset")
    return _answer(name, content_type)
