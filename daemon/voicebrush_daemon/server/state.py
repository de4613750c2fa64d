"""Typed application state: what every handler may reach, and nothing global."""

from aiohttp import web

from ..jobs.events import EventHub
from ..jobs.store import JobStore
from ..jobs.worker import JobQueue
from ..settings import Settings
from .middleware import host_name

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", JobStore)
HUB = web.AppKey("hub", EventHub)
JOBS = web.AppKey("jobs", JobQueue)


def public_base(request: web.Request) -> str:
    """scheme://host[:port] of this daemon as the client should address it.

    --public-url when the operator gave one (a proxy, a tunnel). Otherwise the Host the
    client used, which the access middleware has already checked: without a token it is
    one of the daemon's own names (a rebound page's Host gets 403 before it gets here);
    with a token it came with the token. The plugins' client sends its token only to the
    host it was set up with, so the URL must carry that same name to be fetchable."""
    settings = request.app[SETTINGS]
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = request.headers.get("Host")
    if host_name(host) is None:
        # No Host (HTTP/1.0) or a malformed one, with a token: the address the connection
        # reached. Not request.host, which would resolve our own name on the event loop.
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        address, port = (sockname[0], sockname[1]) if sockname else (settings.host, settings.port)
        host = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    return f"{request.scheme}://{host}"


def image_url_maker(request: web.Request):
    """Absolute image URLs, built from public_base."""
    base = public_base(request)

    def image_url(name: str) -> str:
        return f"{base}/v1/images/{name}.png"

    return image_url
