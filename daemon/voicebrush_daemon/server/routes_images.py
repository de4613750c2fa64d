"""OpenAI-compatible synchronous generation, and serving stored images."""

from __future__ import annotations

import asyncio
import base64
import time

from aiohttp import web

from ..errors import ApiError
from ..jobs.model import CANCELLED, DONE, GENERATION
from .endpoint import endpoint
from .ranges import check_file_request
from .routes_jobs import job_from_options
from .schemas import ImageGenerationRequest, ImagesResponse
from .state import HUB, JOBS, STORE, image_url_maker

routes = web.RouteTableDef()

CLIENT_CHECK_S = 0.5  # how often a waiting request checks that its client is still there

FAILURE_STATUS = {"out_of_memory": 503, "storage_error": 507, "engine_error": 500, "shutdown": 503}


@routes.post("/v1/images/generations")
@endpoint(
    "Text to image (OpenAI-compatible); waits for the result. A client that disconnects cancels the generation.",
    json=ImageGenerationRequest,
    generates=True,
    responses={200: ("Images", ImagesResponse)},
    errors=(400, 409, 413, 429, 500, 503, 507),
)
async def create_images(request: web.Request, body: ImageGenerationRequest) -> web.Response:
    queue, hub, store = request.app[JOBS], request.app[HUB], request.app[STORE]
    job, options = job_from_options(GENERATION, body.to_options())
    with hub.subscribe(job.id) as subscription:
        queue.want_pngs(job.id)
        try:
            queue.submit_job(job, options)
            while not subscription.ended:
                await subscription.next(CLIENT_CHECK_S)
                if request.transport is None or request.transport.is_closing():
                    # Nobody will read the answer: free the worker for someone who will.
                    raise asyncio.CancelledError
        except asyncio.CancelledError:
            queue.cancel(job.id)
            raise
        finally:
            pngs = queue.take_pngs(job.id)
    if job.status == CANCELLED:
        if job.error and job.error.get("code") == "shutdown":
            raise ApiError(503, job.error["message"], "shutting_down", type="server_error")
        raise ApiError(409, "The generation was cancelled.", "cancelled")
    if job.status != DONE:
        error = job.error or {}
        code = error.get("code", "engine_error")
        raise ApiError(FAILURE_STATUS.get(code, 500), error.get("message", "The generation failed."), code, type="server_error")
    image_url = image_url_maker(request)
    data = []
    for index, name in enumerate(job.images):
        if options.response_format == "b64_json":
            png = pngs[index] if pngs else store.image_path(name).read_bytes()
            item = {"b64_json": base64.b64encode(png).decode("ascii")}
        else:
            item = {"url": image_url(name)}
        item["revised_prompt"] = job.prompt
        item["seed"] = job.seed + index
        data.append(item)
    return web.json_response({"created": int(time.time()), "model": job.model, "id": job.id, "seed": job.seed, "data": data})


@routes.get("/v1/images/{name}.png")
@endpoint(
    "A generated PNG with its parameters in text chunks",
    responses={200: ("PNG", {"image/png": {"type": "string", "format": "binary"}})},
    errors=(404, 412, 416),
)
async def get_image(request: web.Request) -> web.StreamResponse:
    path = request.app[STORE].image_path(request.match_info["name"])
    if path is None:
        raise ApiError(404, "No image with that name.", "image_not_found")
    check_file_request(request, path)  # a bad Range is a 416 in the error shape, not an empty one
    return web.FileResponse(path, headers={"Content-Type": "image/png", "Cache-Control": "private, max-age=31536000, immutable"})
