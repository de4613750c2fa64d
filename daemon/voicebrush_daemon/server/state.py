"""Typed application state: what every handler may reach, and nothing global."""

from aiohttp import web

from ..jobs.events import EventHub
from ..jobs.store import JobStore
from ..jobs.worker import JobQueue
from ..settings import Settings

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", JobStore)
HUB = web.AppKey("hub", EventHub)
JOBS = web.AppKey("jobs", JobQueue)


def image_url_maker(request: web.Request):
    """Absolute image URLs, built from the address the client used to reach us."""
    base = f"{request.scheme}://{request.host}"

    def image_url(name: str) -> str:
        return f"{base}/v1/images/{name}.png"

    return image_url
