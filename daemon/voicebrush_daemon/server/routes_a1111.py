"""The AUTOMATIC1111 dialect, /sdapi/v1/...: so clients written for A1111's API (the
`webuiapi` package, Blender's AI-Render, chat front ends) work unchanged.

A translation and nothing more: a request becomes the same GenerationOptions and
PictureInputs our own routes build, and runs the same way (synchronous.generate); the
answer is turned back into A1111's shapes (raw base64 images, `info` as a JSON string).
A1111's sampler names map onto the daemon's schedulers (imaging.schedulers). Every error
on these paths carries A1111's `detail` string beside the contract's `error` object
(`a1111_detail`, the outermost middleware); HTTP Basic auth with the token as the
password is the access middleware's.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import time
from typing import Any

from aiohttp import web
from PIL import Image

from .. import __version__
from ..errors import ApiError
from ..imaging.inputs import INPAINT, PictureInputError, as_rgb, png_bytes
from ..imaging.schedulers import AUTOMATIC, KARRAS, a1111_label, a1111_samplers, for_a1111
from ..pngmeta import read_png_metadata
from .endpoint import endpoint
from .pictures import decode, job_pictures
from .routes_meta import picture_modes
from .schemas import PICTURE_JSON_BYTES
from .schemas_a1111 import (
    A1111_DENOISING,
    A1111ErrorResponse,
    A1111Images,
    ExtrasImage,
    ExtrasSingleImageRequest,
    Img2ImgRequest,
    OptionsUpdate,
    ProgressAnswer,
    ProgressQuery,
    Samplers,
    Schedulers,
    ScriptsList,
    SDModels,
    Txt2ImgRequest,
    Upscalers,
)
from .state import JOBS
from .synchronous import Generated, generate

routes = web.RouteTableDef()

PREFIX = "/sdapi/"
SDAPI = "/sdapi/v1"
GENERATION_ERRORS = (400, 404, 409, 413, 429, 500, 503, 507)
# A1111's built-in upscalers (no model): name -> Pillow filter; "None" leaves the picture as it is.
UPSCALERS = {"None": None, "Lanczos": Image.Resampling.LANCZOS, "Nearest": Image.Resampling.NEAREST}
MAX_UPSCALED_PIXELS = 4096 * 4096  # AI-Render's own ceiling for an upscaled render
# The details FastAPI (under A1111) answers for what the daemon's middleware says by code.
DETAILS = {"not_found": "Not Found", "method_not_allowed": "Method Not Allowed"}


class A1111Error(ApiError):
    """An ApiError whose answer carries the `detail` AUTOMATIC1111 itself would send."""

    def __init__(self, status: int, message: str, code: str, *, detail: str, **kwargs) -> None:
        super().__init__(status, message, code, **kwargs)
        self.detail = detail

    def body(self) -> dict:
        return {**super().body(), "detail": self.detail}


@web.middleware
async def a1111_detail(request: web.Request, handler):
    """/sdapi/ errors gain A1111's `detail` (the error middleware inside has already given
    every error the contract's shape); other paths pass untouched."""
    response = await handler(request)
    if not request.path.startswith(PREFIX) or response.status < 400 or not isinstance(response, web.Response):
        return response
    try:
        body = json.loads(response.body)
    except (TypeError, ValueError):
        return response
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict) or "detail" in body:
        return response
    error = body["error"]
    if error.get("code") == "invalid_token":
        detail = "Incorrect username or password" if request.headers.get("Authorization") else "Not authenticated"
    else:
        detail = DETAILS.get(error.get("code")) or str(error.get("message", ""))
    answer = web.json_response({**body, "detail": detail}, status=response.status)
    for name, value in response.headers.items():
        if name.lower() not in ("content-type", "content-length"):
            answer.headers.add(name, value)
    return answer


# ---- generating ---------------------------------------------------------------


def scheduler_for(request: web.Request, body: Txt2ImgRequest) -> str | None:
    """Our scheduler for the request's sampler and schedule type (None: the default);
    a sampler the daemon does not have is A1111's 404."""
    if body.sampler is None:
        return None
    name = for_a1111(body.sampler, body.scheduler)
    if name is None or name not in request.app[JOBS].engines.image.schedulers:
        have = ", ".join(a1111_samplers())
        raise A1111Error(
            404,
            f"Sampler {body.sampler[:60]!r} not found; the samplers here: {have}.",
            "sampler_not_found",
            param="sampler_name" if body.sampler_name else "sampler_index",
            detail="Sampler not found",
        )
    return name


@routes.post(f"{SDAPI}/txt2img")
@endpoint(
    "Text to image (AUTOMATIC1111-compatible); waits for the result. A client that disconnects cancels it.",
    json=Txt2ImgRequest,
    generates=True,
    responses={200: ("Images", A1111Images), 404: ("Sampler not found", A1111ErrorResponse)},
    errors=GENERATION_ERRORS,
)
async def txt2img(request: web.Request, body: Txt2ImgRequest) -> web.Response:
    generated = await generate(request, body.to_options(scheduler_for(request, body)))
    return web.json_response(await a1111_answer(request, body, generated))


@routes.post(f"{SDAPI}/img2img")
@endpoint(
    "Image to image and inpainting (AUTOMATIC1111-compatible): init_images, denoising_strength, mask (white = repaint), "
    "mask_blur, inpainting_mask_invert, resize_mode. Waits for the result; a client that disconnects cancels it.",
    json=Img2ImgRequest,
    json_limit=PICTURE_JSON_BYTES,
    generates=True,
    responses={200: ("Images", A1111Images), 404: ("Sampler not found", A1111ErrorResponse)},
    errors=GENERATION_ERRORS,
)
async def img2img(request: web.Request, body: Img2ImgRequest) -> web.Response:
    options = body.to_options(scheduler_for(request, body))
    strength = A1111_DENOISING if body.denoising_strength is None else body.denoising_strength
    pictures = await job_pictures(
        body.init_images[0],
        body.mask,
        names={"image": "init_images", "strength": "denoising_strength"},
        # A1111 runs int(strength x steps) steps and accepts 0; the daemon runs at least one.
        strength=strength if strength > 0 else 1 / options.steps,
        invert_mask=bool(body.inpainting_mask_invert),
        mask_blur=body.mask_blur,
        resize_mode=body.resize_mode or 0,
    )
    generated = await generate(request, options, pictures)
    return web.json_response(await a1111_answer(request, body, generated))


async def a1111_answer(request: web.Request, body: Txt2ImgRequest, generated: Generated) -> dict[str, Any]:
    """A1111's {images, parameters, info}: raw base64 PNGs, the request as understood
    (init_images and mask left out unless include_init_images), info as a JSON string."""
    job, pngs = generated.job, generated.pngs
    loop = asyncio.get_running_loop()
    infotexts = await loop.run_in_executor(None, lambda: [read_png_metadata(png)["parameters"] for png in pngs])
    sampler, schedule = a1111_label(job.scheduler or "")
    width, height = (int(side) for side in job.size.split("x"))
    modes = picture_modes(request.app[JOBS].engines.image)["modes"]
    info = {
        "prompt": job.prompt,
        "all_prompts": [job.prompt] * len(pngs),
        "negative_prompt": job.negative_prompt,
        "all_negative_prompts": [job.negative_prompt] * len(pngs),
        "seed": job.seed,
        "all_seeds": generated.seeds,
        "subseed": job.seed,
        "all_subseeds": generated.seeds,
        "subseed_strength": 0,
        "width": width,
        "height": height,
        "sampler_name": sampler,
        "scheduler": schedule,
        "cfg_scale": job.guidance_scale,
        "steps": job.steps,
        "batch_size": body.batch_size or 1,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": job.model,
        "sd_model_hash": None,
        "sd_vae_name": None,
        "sd_vae_hash": None,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": job.strength or 0,
        "extra_generation_params": {"Schedule type": schedule} if schedule != AUTOMATIC else {},
        "index_of_first_image": 0,
        "infotexts": infotexts,
        "styles": [],
        "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(job.created)),
        "clip_skip": 1,
        # True when the 9-channel sd2-inpaint UNet ran (not the main model's masked latents).
        "is_using_inpainting_conditioning": job.mode == INPAINT and modes.get(INPAINT) not in (None, modes.get("text")),
        "version": f"voicebrush {__version__}",
        "job_id": job.id,
        "mode": job.mode,
    }
    parameters = body.model_dump(mode="json")
    if isinstance(body, Img2ImgRequest) and not body.include_init_images:
        parameters.update(init_images=None, mask=None)
    images = [base64.b64encode(png).decode("ascii") for png in pngs] if body.send_images is not False else []
    return {"images": images, "parameters": parameters, "info": json.dumps(info)}


# ---- upscaling ----------------------------------------------------------------


@routes.post(f"{SDAPI}/extra-single-image")
@endpoint(
    "Upscale one picture (AUTOMATIC1111-compatible extras): Lanczos or Nearest, by a factor (resize_mode 0) or to a size "
    "(resize_mode 1, cropped to fit unless upscaling_crop is false).",
    json=ExtrasSingleImageRequest,
    json_limit=PICTURE_JSON_BYTES,
    responses={200: ("Upscaled", ExtrasImage)},
    errors=(400, 413, 503),
)
async def extra_single_image(request: web.Request, body: ExtrasSingleImageRequest) -> web.Response:
    wanted = body.upscaler_1 or "None"
    upscaler = next((name for name in UPSCALERS if name.lower() == wanted.lower()), None)
    if upscaler is None:
        message = f"could not find upscaler named {wanted[:60]}"
        raise A1111Error(400, f"{message}; the upscalers here: {', '.join(UPSCALERS)}.", "invalid_value", param="upscaler_1", detail=message)
    try:
        png = await asyncio.get_running_loop().run_in_executor(None, upscaled, body, UPSCALERS[upscaler])
    except PictureInputError as exc:
        raise A1111Error(400, exc.message, exc.code, param=exc.param, detail=exc.message) from None
    return web.json_response({"image": base64.b64encode(png).decode("ascii"), "html_info": ""})


def upscaled(body: ExtrasSingleImageRequest, resample) -> bytes:
    """The PNG of body.image resized as A1111's extras resize it (CPU only: no model)."""
    image = decode(body.image, "image")
    if image.mode not in ("RGB", "RGBA"):
        image = as_rgb(image)
    if resample is None:
        return png_bytes(image)
    width, height = image.size
    if body.resize_mode == 1:
        target = (body.upscaling_resize_w or 512, body.upscaling_resize_h or 512)
        factor = max(target[0] / width, target[1] / height)
    else:
        target, factor = None, body.upscaling_resize or 2.0
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    if size[0] * size[1] > MAX_UPSCALED_PIXELS:
        side = int(math.sqrt(MAX_UPSCALED_PIXELS))
        raise PictureInputError(
            f"The upscaled picture would be {size[0]}x{size[1]}; at most {side}x{side} pixels' worth.",
            "upscaling_resize_w" if target is not None else "upscaling_resize",
        )
    image = image.resize(size, resample)
    if target is not None and body.upscaling_crop is not False:
        left, top = (size[0] - target[0]) // 2, (size[1] - target[1]) // 2
        image = image.crop((left, top, left + target[0], top + target[1]))
    return png_bytes(image)


# ---- what the daemon has --------------------------------------------------------


@routes.get(f"{SDAPI}/samplers")
@endpoint("The samplers (AUTOMATIC1111 names) the daemon runs", responses={200: ("Samplers", Samplers)})
async def samplers(request: web.Request) -> web.Response:
    have = set(request.app[JOBS].engines.image.schedulers) if request.app[JOBS].engines else set()
    listed = [
        {"name": sampler, "aliases": list(aliases), "options": {}}
        for sampler, aliases in a1111_samplers().items()
        if for_a1111(sampler) in have
    ]
    return web.json_response(listed)


@routes.get(f"{SDAPI}/schedulers")
@endpoint("The schedule types the daemon runs", responses={200: ("Schedule types", Schedulers)})
async def schedulers(request: web.Request) -> web.Response:
    listed = [
        {"name": "automatic", "label": AUTOMATIC, "aliases": None, "default_rho": -1.0, "need_inner_model": False},
        {"name": "karras", "label": KARRAS, "aliases": None, "default_rho": 7.0, "need_inner_model": False},
    ]
    return web.json_response(listed)


@routes.get(f"{SDAPI}/sd-models")
@endpoint("The loaded checkpoint", responses={200: ("Checkpoints", SDModels)}, errors=(503,))
async def sd_models(request: web.Request) -> web.Response:
    model = request.app[JOBS]._require_ready().image.model_id
    return web.json_response([{"title": model, "model_name": model, "hash": None, "sha256": None, "filename": model, "config": None}])


@routes.get(f"{SDAPI}/upscalers")
@endpoint("The upscalers extra-single-image takes", responses={200: ("Upscalers", Upscalers)})
async def upscalers(request: web.Request) -> web.Response:
    listed = [{"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": 4} for name in UPSCALERS]
    return web.json_response(listed)


@routes.get(f"{SDAPI}/scripts")
@endpoint("Scripts (none: the daemon runs no A1111 scripts)", responses={200: ("Scripts", ScriptsList)})
async def scripts(request: web.Request) -> web.Response:
    return web.json_response({"txt2img": [], "img2img": []})


@routes.get(f"{SDAPI}/progress")
@endpoint("The running job's progress, A1111-style (its state counts what is running and waiting)", query=ProgressQuery, responses={200: ("Progress", ProgressAnswer)}, errors=(400,))
async def progress(request: web.Request, query: ProgressQuery) -> web.Response:
    queue = request.app[JOBS]
    job = queue.running_job
    count = queue.running + queue.waiting
    state = {
        "skipped": False,
        "interrupted": False,
        "stopping_generation": False,
        "job": job.id if job else "",
        "job_count": count,
        "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(job.created)) if job else "0",
        "job_no": 0,
        "sampling_step": job.step if job else 0,
        "sampling_steps": (job.progress_steps or job.steps) if job else 0,
    }
    if job is None:
        return web.json_response({"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": None, "textinfo": None})
    # As A1111 reckons it: a little for having started, then the steps done.
    done = 0.01 + (state["sampling_step"] / state["sampling_steps"] if state["sampling_steps"] else 0.0)
    done = min(done, 1.0)
    elapsed = max(0.0, time.time() - job.created)
    return web.json_response({"progress": done, "eta_relative": elapsed / done - elapsed, "state": state, "current_image": None, "textinfo": None})


@routes.post(f"{SDAPI}/interrupt")
@endpoint("Cancel the running job (it stops within one denoising step)", responses={200: ("Done", {"type": "object"})})
async def interrupt(request: web.Request) -> web.Response:
    queue = request.app[JOBS]
    job = queue.running_job
    if job is not None:
        queue.cancel(job.id)
    return web.json_response({})


@routes.get(f"{SDAPI}/options")
@endpoint("Settings, A1111-style, as the daemon has them", responses={200: ("Options", {"type": "object"})}, errors=(503,))
async def get_options(request: web.Request) -> web.Response:
    image = request.app[JOBS]._require_ready().image
    sampler, _ = a1111_label(image.default_scheduler)
    return web.json_response(
        {
            "sd_model_checkpoint": image.model_id,
            "sd_checkpoint_hash": None,
            "sd_vae": "Automatic",
            "samples_format": "png",
            "CLIP_stop_at_last_layers": 1,
            "eta_noise_seed_delta": 0,
            "img2img_fix_steps": False,
            "live_previews_enable": False,
            "sampler_name": sampler,
        }
    )


@routes.post(f"{SDAPI}/options")
@endpoint(
    "Change settings: accepted and ignored, as the daemon's are set when it starts; a checkpoint other than the loaded one is refused",
    json=OptionsUpdate,
    responses={200: ("Done (null, as A1111 answers)", {"type": "null"})},
    errors=(400, 413, 503),
)
async def set_options(request: web.Request, body: OptionsUpdate) -> web.Response:
    model = request.app[JOBS]._require_ready().image.model_id
    wanted = body.sd_model_checkpoint
    if wanted is not None and wanted.split(" [")[0].strip().lower() != model.lower():
        message = f"model {wanted[:80]!r} not found"
        raise A1111Error(
            400, f"{message}: the daemon serves {model}; start it with another --preset to change models.", "model_not_found",
            param="sd_model_checkpoint", detail=message,
        )
    return web.json_response(None)
