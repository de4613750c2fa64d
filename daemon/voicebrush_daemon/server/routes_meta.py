"""What the daemon is and whether it is ready: health, models, OpenAPI."""

from __future__ import annotations

from aiohttp import web

from .. import __version__
from ..models import ModelUnavailable
from .endpoint import endpoint
from .openapi import openapi_document
from .schemas import Health, HealthUnavailable, ModelList
from .state import JOBS, SETTINGS, STORE

routes = web.RouteTableDef()


@routes.get("/v1/health")
@endpoint(
    "Readiness (no token needed)",
    public=True,
    responses={
        200: ("Ready", Health),
        503: ("Models loading (status loading) or failed to load (status error, with the reason)", HealthUnavailable),
    },
)
async def health(request: web.Request) -> web.Response:
    queue, store = request.app[JOBS], request.app[STORE]
    if queue.state == "loading":
        return web.json_response(
            {"status": "loading", "version": __version__, "error": {"message": "Models are loading.", "type": "server_error", "code": "loading", "param": None}},
            status=503,
            headers={"Retry-After": "5"},
        )
    if queue.state == "error":
        code = "model_missing" if isinstance(queue.load_error, ModelUnavailable) else "model_unavailable"
        return web.json_response(
            {"status": "error", "version": __version__, "error": {"message": f"The model failed to load: {queue.load_error}", "type": "server_error", "code": code, "param": None}},
            status=503,
        )
    engines = queue.engines
    body = {
        "status": "ok",
        "version": __version__,
        "device": engines.image.device,
        "models": {
            "image": engines.image.model_id,
            "speech": engines.speech.model_id,
            "speech_engine": engines.speech.engine,
            "native_size": "{}x{}".format(*engines.image.native_size),
            "schedulers": list(engines.image.schedulers),
        },
        "queue": {"running": queue.running, "waiting": queue.waiting},
        "storage": {"ok": store.last_error is None, "error": store.last_error},
    }
    return web.json_response(body)


@routes.get("/v1/models")
@endpoint("Loaded models", responses={200: ("Models", ModelList)}, errors=(503,))
async def list_models(request: web.Request) -> web.Response:
    queue = request.app[JOBS]
    queue._require_ready()
    image, speech = queue.engines.image, queue.engines.speech
    return web.json_response(
        {
            "object": "list",
            "data": [
                {"id": image.model_id, "object": "model", "created": 0, "owned_by": "voicebrush", "kind": "image", "device": image.device},
                {"id": speech.model_id, "object": "model", "created": 0, "owned_by": "voicebrush", "kind": "speech", "engine": speech.engine},
            ],
        }
    )


@routes.get("/openapi.json")
@endpoint("This document", responses={200: ("OpenAPI 3.1", {"type": "object"})})
async def openapi(request: web.Request) -> web.Response:
    queue, settings = request.app[JOBS], request.app[SETTINGS]
    schedulers = list(queue.engines.image.schedulers) if queue.engines else ["dpmpp_2m", "ddim", "euler"]
    return web.json_response(openapi_document(request.app, schedulers, auth=bool(settings.token), budget=queue.budget))
