"""The AUTOMATIC1111 dialect (/sdapi/v1/...) in-process against the real app and the real
tiny engines: its answers' shapes, sampler names, `detail` on every error, HTTP Basic
auth with the token, interrupt and progress, and the extras upscaler.

Real clients (webuiapi, AI-Render's request bodies) are in test_a1111_clients.py."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from voicebrush_testing import wait_ready
from voicebrush_daemon.imaging.inputs import feathered
from voicebrush_daemon.imaging.schedulers import SCHEDULERS

# Runs twice: models in process, and as the studio cluster's front door.
pytestmark = pytest.mark.both_backends

FAST = {"steps": 2, "width": 64, "height": 64, "seed": 21}


def canvas(width: int = 64, height: int = 64, seed: int = 5) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def b64(image: Image.Image, uri: bool = False) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    text = base64.b64encode(buffer.getvalue()).decode("ascii")
    return "data:image/png;base64," + text if uri else text


def picture(text: str) -> Image.Image:
    assert not text.startswith("data:")  # A1111 answers raw base64
    image = Image.open(io.BytesIO(base64.b64decode(text)))
    image.load()
    return image


def assert_a1111_error(body: dict, detail: str | None = None, code: str | None = None, param: str | None = None):
    """The contract's error object, and A1111's detail string beside it."""
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert set(body["error"]) == {"message", "type", "code", "param"}, body
    if detail is not None:
        assert body["detail"] == detail, body
    if code is not None:
        assert body["error"]["code"] == code, body
    if param is not None:
        assert body["error"]["param"] == param, body


async def post(client, path: str, body: dict, **kwargs):
    response = await client.post(f"/sdapi/v1/{path}", json=body, **kwargs)
    return response, await response.json()


async def test_txt2img_answers_as_a1111_does(client):
    response, body = await post(client, "txt2img", {"prompt": "a lighthouse", "negative_prompt": "fog", "batch_size": 2, "sampler_name": "Euler a", **FAST})
    assert response.status == 200, body
    assert set(body) == {"images", "parameters", "info"}
    images = [picture(text) for text in body["images"]]
    assert [image.size for image in images] == [(64, 64), (64, 64)]
    info = json.loads(body["info"])  # a JSON string, as A1111 sends it
    assert (info["seed"], info["all_seeds"], info["prompt"], info["negative_prompt"]) == (21, [21, 22], "a lighthouse", "fog")
    assert info["sampler_name"] == "Euler a" and info["width"] == 64 and info["steps"] == 2
    assert info["infotexts"] == [image.text["parameters"] for image in images]
    assert info["infotexts"][1].splitlines()[-1].startswith("Steps: 2, Sampler: Euler a, CFG scale: 7.5, Seed: 22, Size: 64x64")
    assert body["parameters"]["prompt"] == "a lighthouse" and body["parameters"]["batch_size"] == 2
    job = await (await client.get(f"/v1/jobs/{info['job_id']}")).json()
    assert (job["scheduler"], job["mode"], job["n"]) == ("euler_a", "text", 2)


@pytest.mark.parametrize(
    "fields,scheduler",
    [
        ({"sampler_name": "DPM++ 2M Karras"}, "dpmpp_2m_karras"),  # the old one-name form
        ({"sampler_name": "DPM++ 2M", "scheduler": "Karras"}, "dpmpp_2m_karras"),  # A1111 1.9+
        ({"sampler_name": "LMS", "sampler_index": "Euler"}, "lms"),  # sampler_name wins
        ({"sampler_index": "k_heun"}, "heun"),  # an alias, in the older field
        ({"sampler_name": "DDIM", "scheduler": "Karras"}, "ddim"),  # a type it lacks: automatic
        ({"sampler_name": "Euler a", "scheduler": "automatic"}, "euler_a"),  # webuiapi's default type
        ({}, "dpmpp_2m"),
    ],
)
async def test_a1111_sampler_names_map_onto_the_daemons_schedulers(client, fields, scheduler):
    response, body = await post(client, "txt2img", {"prompt": "a fox", **FAST, "steps": 1, **fields})
    assert response.status == 200, body
    job = await (await client.get(f"/v1/jobs/{json.loads(body['info'])['job_id']}")).json()
    assert job["scheduler"] == scheduler


async def test_an_unknown_sampler_is_a1111s_404(client):
    for fields, param in (({"sampler_name": "DPM adaptive"}, "sampler_name"), ({"sampler_index": "Restart"}, "sampler_index")):
        response, body = await post(client, "txt2img", {"prompt": "a fox", **FAST, **fields})
        assert response.status == 404
        assert_a1111_error(body, "Sampler not found", "sampler_not_found", param)
    response, body = await post(client, "img2img", {"init_images": [b64(canvas())], "sampler_name": "warp drive"})
    assert response.status == 404
    assert_a1111_error(body, "Sampler not found")


async def test_every_sdapi_error_carries_a_detail(client):
    response, body = await post(client, "txt2img", {"prompt": "a fox", "steps": 501})
    assert response.status == 400
    assert_a1111_error(body, code="invalid_value", param="steps")
    assert body["detail"] == body["error"]["message"]
    response, body = await post(client, "txt2img", {"prompt": "a fox", "batch_size": 4, "n_iter": 3})
    assert response.status == 400
    assert_a1111_error(body, param="batch_size")
    response, body = await post(client, "img2img", {"prompt": "a fox"})
    assert response.status == 400
    assert_a1111_error(body, code="missing_field", param="init_images")
    response, body = await post(client, "img2img", {"init_images": ["bm90IGEgcGljdHVyZQ=="]})
    assert response.status == 400
    assert_a1111_error(body, code="invalid_image", param="init_images")
    response = await client.get("/sdapi/v1/no-such-route")
    assert response.status == 404
    assert_a1111_error(await response.json(), "Not Found")  # as FastAPI says it; AI-Render reads it
    response = await client.get("/sdapi/v1/txt2img")
    assert response.status == 405 and "POST" in response.headers["Allow"]
    assert_a1111_error(await response.json(), "Method Not Allowed")
    response = await client.post("/sdapi/v1/txt2img", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert_a1111_error(await response.json(), code="invalid_json")
    # The contract's own routes keep the plain error object.
    response = await client.get("/v1/no-such-route")
    assert set(await response.json()) == {"error"}


async def test_img2img_inpaints_with_a1111s_mask_rules(client):
    given = canvas()
    mask = Image.new("L", (64, 64), 255)
    mask.paste(0, (16, 16, 48, 48))  # black centre; inverted, the centre is what is repainted
    fields = {"init_images": [b64(given, uri=True)], "mask": b64(mask), "inpainting_mask_invert": 1, "mask_blur": 2, "denoising_strength": 0.8, "inpainting_fill": 1, "inpaint_full_res": True}
    response, body = await post(client, "img2img", {"prompt": "a window", **FAST, **fields})
    assert response.status == 200, body
    result = np.asarray(picture(body["images"][0]).convert("RGB"))
    untouched = np.asarray(feathered(Image.eval(mask, lambda v: 255 - v), 2)) == 0
    assert untouched.sum() > 0.4 * untouched.size
    assert np.array_equal(result[untouched], np.asarray(given)[untouched])
    assert body["parameters"]["init_images"] is None and body["parameters"]["mask"] is None  # left out, as A1111 does
    info = json.loads(body["info"])
    assert info["denoising_strength"] == 0.8 and info["is_using_inpainting_conditioning"] is True  # the 9-channel stand-in ran
    job = await (await client.get(f"/v1/jobs/{info['job_id']}")).json()
    assert (job["mode"], job["strength"], sorted(job["inputs"])) == ("inpaint", 0.8, ["image", "mask"])
    kept = await client.get(job["inputs"]["mask"].split(str(client.server.port), 1)[1])
    assert np.asarray(Image.open(io.BytesIO(await kept.read())))[32, 32] == 255  # stored white = repaint


async def test_img2img_sizes_resize_modes_and_denoising_zero(client):
    given = canvas(96, 64)
    # Sides are rounded down to multiples of 8; resize_mode 1 crops the 3:2 picture to 1:1.
    response, body = await post(client, "img2img", {"prompt": "a hill", "init_images": [b64(given)], "width": 70, "height": 70, "resize_mode": 1, "steps": 3, "denoising_strength": 0})
    assert response.status == 200, body
    assert picture(body["images"][0]).size == (64, 64)
    job = await (await client.get(f"/v1/jobs/{json.loads(body['info'])['job_id']}")).json()
    assert job["mode"] == "img2img" and job["progress"]["steps"] == 1  # denoising 0: the least the daemon runs
    # Without width and height: the picture's aspect at the native area.
    response, body = await post(client, "img2img", {"prompt": "a hill", "init_images": [b64(given)], "steps": 1, "include_init_images": True})
    assert response.status == 200, body
    assert picture(body["images"][0]).size == (312, 208)
    assert body["parameters"]["init_images"] == [b64(given)]


async def test_listing_routes_say_what_the_daemon_has(client):
    samplers = await (await client.get("/sdapi/v1/samplers")).json()
    names = [sampler["name"] for sampler in samplers]
    assert {"DPM++ 2M", "Euler a", "Euler", "DDIM", "LMS", "Heun", "DPM2", "UniPC", "PLMS", "DPM++ SDE"} <= set(names)
    assert all(set(sampler) == {"name", "aliases", "options"} for sampler in samplers)
    assert "k_lms" in next(s for s in samplers if s["name"] == "LMS")["aliases"]
    assert {s["label"] for s in await (await client.get("/sdapi/v1/schedulers")).json()} == {"Automatic", "Karras"}
    [model] = await (await client.get("/sdapi/v1/sd-models")).json()
    assert set(model) == {"title", "model_name", "hash", "sha256", "filename", "config"}
    options = await (await client.get("/sdapi/v1/options")).json()
    assert options["sd_model_checkpoint"] == model["title"]
    assert [u["name"] for u in await (await client.get("/sdapi/v1/upscalers")).json()] == ["None", "Lanczos", "Nearest"]
    assert await (await client.get("/sdapi/v1/scripts")).json() == {"txt2img": [], "img2img": []}
    progress = await (await client.get("/sdapi/v1/progress?skip_current_image=true")).json()
    assert progress["progress"] == 0 and progress["state"]["job_count"] == 0
    # Setting options: the loaded model (with or without A1111's hash) is fine, another is not.
    for checkpoint in (model["title"], model["title"] + " [abc123]"):
        response = await client.post("/sdapi/v1/options", json={"sd_model_checkpoint": checkpoint, "samples_format": "jpg"})
        assert response.status == 200 and await response.json() is None
    response, body = await post(client, "options", {"sd_model_checkpoint": "v1-5-pruned.safetensors"})
    assert response.status == 400
    assert_a1111_error(body, "model 'v1-5-pruned.safetensors' not found", "model_not_found")
    assert set(SCHEDULERS) >= {"lms", "heun", "dpm2", "dpmpp_sde_karras"}


async def test_interrupt_stops_the_running_generation_and_progress_follows_it(client):
    long = asyncio.ensure_future(client.post("/sdapi/v1/txt2img", json={"prompt": "slow", "steps": 400, "width": 128, "height": 128}))
    for _ in range(1200):  # a guard against a hang, not a speed check
        progress = await (await client.get("/sdapi/v1/progress")).json()
        if progress["state"]["sampling_step"] >= 1:
            break
        await asyncio.sleep(0.05)
    assert progress["state"]["job_count"] == 1 and progress["state"]["sampling_steps"] == 400
    assert 0 < progress["progress"] < 1
    response = await client.post("/sdapi/v1/interrupt")
    assert response.status == 200 and await response.json() == {}
    answer = await long
    assert answer.status == 409
    assert_a1111_error(await answer.json(), code="cancelled")
    jobs = (await (await client.get("/v1/jobs?limit=1")).json())["data"]
    assert jobs[0]["status"] == "cancelled"


async def test_extra_single_image_upscales_with_lanczos_and_nearest(client):
    given = canvas(40, 30)
    response, body = await post(client, "extra-single-image", {"image": b64(given, uri=True), "upscaler_1": "Lanczos", "upscaling_resize": 2})
    assert response.status == 200, body
    assert set(body) == {"image", "html_info"} and picture(body["image"]).size == (80, 60)
    # Nearest at 2x: every pixel a 2x2 block of the original's.
    response, body = await post(client, "extra-single-image", {"image": b64(given), "upscaler_1": "Nearest", "upscaling_resize": 2})
    big = np.asarray(picture(body["image"]).convert("RGB"))
    assert np.array_equal(big[::2, ::2], np.asarray(given))
    # To a size, cropped to fit (resize_mode 1), as AI-Render asks for it.
    response, body = await post(client, "extra-single-image", {"image": b64(given), "upscaler_1": "Lanczos", "resize_mode": 1, "upscaling_resize_w": 100, "upscaling_resize_h": 100})
    assert picture(body["image"]).size == (100, 100)
    response, body = await post(client, "extra-single-image", {"image": b64(given), "upscaler_1": "None"})
    assert np.array_equal(np.asarray(picture(body["image"]).convert("RGB")), np.asarray(given))
    response, body = await post(client, "extra-single-image", {"image": b64(given), "upscaler_1": "ESRGAN_4x"})
    assert response.status == 400
    assert_a1111_error(body, "could not find upscaler named ESRGAN_4x", param="upscaler_1")
    response, body = await post(client, "extra-single-image", {"image": b64(Image.new("RGB", (3000, 2000))), "upscaler_1": "Lanczos", "upscaling_resize": 4})
    assert response.status == 400
    assert_a1111_error(body, param="upscaling_resize")


async def test_basic_auth_with_the_token_as_password_on_sdapi_only(make_app, aiohttp_client):
    test_client = await aiohttp_client(make_app(token="s3cret"))
    await wait_ready(test_client)
    basic = "Basic " + base64.b64encode(b"anyone:s3cret").decode()
    wrong = "Basic " + base64.b64encode(b"anyone:guess").decode()
    response = await test_client.get("/sdapi/v1/sd-models")
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Basic")
    assert_a1111_error(await response.json(), "Not authenticated", "invalid_token")
    response = await test_client.get("/sdapi/v1/sd-models", headers={"Authorization": wrong})
    assert response.status == 401
    assert_a1111_error(await response.json(), "Incorrect username or password")
    for header in (basic, "Bearer s3cret", "Basic " + base64.b64encode(b":s3cret").decode()):
        assert (await test_client.get("/sdapi/v1/sd-models", headers={"Authorization": header})).status == 200, header
    for odd in ("Basic", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic " + base64.b64encode(b"\xff\xfe:x").decode()):
        assert (await test_client.get("/sdapi/v1/sd-models", headers={"Authorization": odd})).status == 401, odd
    # The contract's own routes stay Bearer-only.
    assert (await test_client.get("/v1/jobs", headers={"Authorization": basic})).status == 401
