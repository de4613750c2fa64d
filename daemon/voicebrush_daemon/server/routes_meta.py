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
            **picture_modes(engines.image),
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
    modes = picture_modes(image)
    serving: dict[str, list[str]] = {}  # model id -> the modes it runs
    for mode, model in modes["modes"].items():
        if model is not None:
            serving.setdefault(model, []).append(mode)
    loaded = set(modes["unets_loaded"].values())
    images = [
        {"id": model, "object": "model", "created": 0, "owned_by": "voicebrush", "kind": "image", "device": image.device,
         "modes": served, "loaded": model in loaded}
        for model, served in serving.items()
    ]
    return web.json_response(
        {
            "object": "list",
            "data": [
                *images,
                {"id": speech.model_id, "object": "model", "created": 0, "owned_by": "voicebrush", "kind": "speech", "engine": speech.engine},
            ],
        }
    )


def picture_modes(image) -> dict:
    """What health and /v1/models say about the modes: which weights each mode runs on
    (null: it cannot run here, e.g. depth without sd2-depth) and which UNets are in
    memory now (a mode's own UNet loads on its first use)."""
    models_for_modes = getattr(image, "models_for_modes", None)
    modes = models_for_modes() if models_for_modes else {"text": image.model_id}
    return {"modes": modes, "unets_loaded": dict(getattr(image, "loaded_unets", {"main": image.model_id}))}


@routes.get("/openapi.json")
@endpoint("This document", responses={200: ("OpenAPI 3.1", {"type": "object"})})
async def openapi(request: web.Request) -> web.Response:
    queue, settings = request.app[JOBS], request.app[SETTINGS]
    schedulers = list(queue.engines.image.schedulers) if queue.engines else ["dpmpp_2m", "ddim", "euler"]
    return web.json_response(openapi_document(request.app, schedulers, auth=bool(settings.token), budget=queue.budget))
