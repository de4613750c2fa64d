"""OpenAI-compatible images: generations and edits (both wait for the result), and serving stored images."""

from __future__ import annotations

import base64
import time

from aiohttp import web

from ..errors import ApiError
from .endpoint import endpoint
from .pictures import edit_pictures
from .ranges import check_file_request
from .schemas import ImageEditForm, ImageGenerationRequest, ImagesResponse
from .state import STORE, image_url_maker
from .synchronous import Generated, generate

routes = web.RouteTableDef()


@routes.post("/v1/images/generations")
@endpoint(
    "Text to image (OpenAI-compatible); waits for the result. A client that disconnects cancels the generation.",
    json=ImageGenerationRequest,
    generates=True,
    responses={200: ("Images", ImagesResponse)},
    errors=(400, 409, 413, 429, 500, 503, 507),
)
async def create_images(request: web.Request, body: ImageGenerationRequest) -> web.Response:
    generated = await generate(request, body.to_options())
    return web.json_response(openai_images(request, generated))


@routes.post("/v1/images/edits")
@endpoint(
    "Edit a picture (OpenAI-compatible images.edit): its transparent part (or the mask's) is repainted; without any "
    "transparency the whole picture is redrawn (img2img, at strength). Waits for the result; a client that disconnects "
    "cancels it.",
    form=ImageEditForm,
    generates=True,
    responses={200: ("Images", ImagesResponse)},
    errors=(400, 409, 413, 429, 500, 503, 507),
)
async def create_edits(request: web.Request, body: ImageEditForm) -> web.Response:
    pictures = await edit_pictures(body.picture, body.mask, strength=body.strength)
    generated = await generate(request, body.to_options(), pictures)
    return web.json_response(openai_images(request, generated))


def openai_images(request: web.Request, generated: Generated) -> dict:
    """OpenAI's images answer: b64_json or absolute URLs, each with its revised prompt
    (what was drawn) and, as an extension, its seed."""
    job, options = generated.job, generated.options
    image_url = image_url_maker(request)
    data = []
    for index, (name, seed) in enumerate(zip(job.images, generated.seeds)):
        if options.response_format == "b64_json":
            item = {"b64_json": base64.b64encode(generated.pngs[index]).decode("ascii")}
        else:
            item = {"url": image_url(name)}
        data.append({**item, "revised_prompt": job.prompt, "seed": seed})
    return {"created": int(time.time()), "model": job.model, "id": job.id, "seed": job.seed, "data": data}


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
