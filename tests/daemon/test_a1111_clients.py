"""AUTOMATIC1111 clients we did not write, unchanged, against a real `voicebrush serve`:

- the `webuiapi` package (it sends sampler_index beside sampler_name, a few dozen fields
  the daemon ignores, and HTTP Basic auth), against a daemon with a token;
- request bodies as Blender's AI-Render add-on builds them (sd_backends/automatic1111_api.py
  and operators.py: its generic params, mapped, with the render as a data: URI; its
  upscale body), sent with its headers and no auth, as it does to a local server.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import requests
import webuiapi
from PIL import Image

from voicebrush_daemon.imaging.inputs import feathered

TOKEN = "webui-test-token-0123456789"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, serve_args):
    """Once in process, once as the studio cluster's front door (conftest `serve_args`)."""
    from voicebrush_testing import launch_daemon

    daemon = launch_daemon(tmp_path_factory.mktemp("a1111") / "data", *serve_args, token=TOKEN, timeout=300)
    yield daemon
    daemon.stop()


@pytest.fixture
def api(daemon):
    # As its README shows it for a server started with --api-auth; the user name is anything.
    return webuiapi.WebUIApi(baseurl=daemon.url + "/sdapi/v1", username="artist", password=TOKEN, sampler="Euler a", steps=2)


def canvas(width: int = 64, height: int = 64, seed: int = 9) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def test_webuiapi_txt2img_and_its_listings(api, daemon):
    result = api.txt2img(prompt="a lighthouse at dusk", negative_prompt="fog", width=64, height=64, seed=5, batch_size=2)
    assert [image.size for image in result.images] == [(64, 64), (64, 64)]
    assert result.info["all_seeds"] == [5, 6] and result.info["prompt"] == "a lighthouse at dusk"  # info parsed from its JSON string
    assert result.info["infotexts"][0] == result.images[0].info["parameters"]
    assert "Sampler: Euler a" in result.info["infotexts"][0]
    assert "Euler a" in api.util_get_sampler_names() and "LMS" in api.util_get_sampler_names()
    assert api.util_get_scheduler_names() == ["automatic", "karras"]
    assert api.util_get_model_names() == [api.util_get_current_model()]
    api.util_set_model(api.util_get_current_model())  # POST /options with the loaded model
    assert [u["name"] for u in api.get_upscalers()] == ["None", "Lanczos", "Nearest"]
    assert api.get_progress()["state"]["job_count"] == 0
    api.util_wait_for_ready(check_interval=0.1)  # idle: returns at once
    assert api.interrupt() == {}


def test_webuiapi_img2img_inpaint_and_upscale(api):
    given = canvas()
    result = api.img2img(images=[given], prompt="a forest", denoising_strength=0.6, width=64, height=64, seed=7)
    assert result.image.size == (64, 64) and result.info["denoising_strength"] == 0.6
    assert result.info["mode"] == "img2img"
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 64, 24))  # the sky
    result = api.img2img(images=[given], mask_image=mask, prompt="a stormy sky", denoising_strength=1.0, mask_blur=3, inpainting_fill=1, width=64, height=64, seed=7)
    assert result.info["mode"] == "inpaint"
    untouched = np.asarray(feathered(mask, 3)) == 0
    assert np.array_equal(np.asarray(result.image.convert("RGB"))[untouched], np.asarray(given)[untouched])
    upscaled = api.extra_single_image(image=given, upscaler_1=webuiapi.Upscaler.Lanczos, upscaling_resize=2)
    assert upscaled.image.size == (128, 128) and upscaled.info == ""


def test_webuiapi_sees_a1111s_errors(api, daemon):
    with pytest.raises(RuntimeError) as raised:
        api.txt2img(prompt="a fox", sampler_name="DPM adaptive", width=64, height=64)
    status, text = raised.value.args
    assert status == 404 and json.loads(text)["detail"] == "Sampler not found"
    stranger = webuiapi.WebUIApi(baseurl=daemon.url + "/sdapi/v1", username="artist", password="wrong")
    with pytest.raises(RuntimeError) as raised:
        stranger.txt2img(prompt="a fox", width=64, height=64)
    assert raised.value.args[0] == 401 and TOKEN not in raised.value.args[1]


# ---- AI-Render's request bodies ------------------------------------------------------


def ai_render_headers() -> dict:
    # create_headers() in its automatic1111_api.py
    return {"User-Agent": "Blender/4.2.0", "Accept": "*/*", "Accept-Encoding": "gzip, deflate, br"}


def ai_render_img2img_body(render_png: bytes, *, resolution=(1920, 1080), percentage=10, image_similarity=0.4, seed=2147483000, steps=3, sampler="LMS") -> dict:
    """The body AI-Render posts to /sdapi/v1/img2img, built as its code documents it."""
    # operators.py: the generic params, from the scene's render settings and its properties
    params = {
        "prompt": "a castle on a hill, matte painting",
        "negative_prompt": "ugly, blurry",
        "width": round(resolution[0] * percentage / 100),
        "height": round(resolution[1] * percentage / 100),
        "image_similarity": image_similarity,
        "seed": seed,
        "cfg_scale": 7.0,
        "steps": steps,
        "sampler": sampler,
    }
    # automatic1111_api.map_params, then the render as a data: URI
    params["denoising_strength"] = round(1 - params["image_similarity"], 2)
    params["sampler_index"] = params["sampler"]
    params["init_images"] = ["data:image/png;base64," + base64.b64encode(render_png).decode()]
    return params


def ai_render_reads(response) -> Image.Image:
    """What its handle_success does with the answer."""
    response_obj = response.json()
    base64_img = response_obj.get("images", [False])[0] or response_obj.get("image")
    return Image.open(io.BytesIO(base64.b64decode(base64_img.replace("data:image/png;base64,", ""))))


def test_ai_render_sends_its_render_to_img2img(tiny_daemon):
    render = Image.new("RGBA", (192, 108), (0, 0, 0, 0))  # a render with a transparent film
    render.paste((40, 90, 200, 255), (30, 20, 160, 90))
    buffer = io.BytesIO()
    render.save(buffer, format="PNG")
    body = ai_render_img2img_body(buffer.getvalue())
    response = requests.post(tiny_daemon.url + "/sdapi/v1/img2img", json=body, headers=ai_render_headers(), timeout=120)
    assert response.status_code == 200, response.text
    assert ai_render_reads(response).size == (192, 104)  # 192x108, rounded down to multiples of 8
    info = json.loads(response.json()["info"])
    job = requests.get(f"{tiny_daemon.url}/v1/jobs/{info['job_id']}", timeout=10).json()
    assert (job["mode"], job["strength"], job["scheduler"], job["seed"]) == ("img2img", 0.6, "lms", 2147483000)
    # Its sampler list has some the daemon lacks: it reads A1111's 404 detail for them.
    response = requests.post(tiny_daemon.url + "/sdapi/v1/img2img", json=ai_render_img2img_body(buffer.getvalue(), sampler="DPM fast"), headers=ai_render_headers(), timeout=60)
    assert response.status_code == 404 and response.json()["detail"] == "Sampler not found"


def test_ai_render_upscales_with_the_upscaler_list_it_loads(tiny_daemon):
    # load_upscaler_models: every upscaler but "None" is offered
    listed = requests.get(tiny_daemon.url + "/sdapi/v1/upscalers", headers={"Accept": "application/json"}, timeout=5).json()
    offered = [model["name"] for model in listed if model["name"] != "None"]
    assert offered == ["Lanczos", "Nearest"]
    buffer = io.BytesIO()
    canvas(96, 54).save(buffer, format="PNG")
    data = {  # upscale() in its automatic1111_api.py, upscale factor 2
        "resize_mode": 0,
        "show_extras_results": True,
        "gfpgan_visibility": 0,
        "codeformer_visibility": 0,
        "codeformer_weight": 0,
        "upscaling_resize": 2.0,
        "upscaling_resize_w": 192,
        "upscaling_resize_h": 108,
        "upscaling_crop": True,
        "upscaler_1": offered[0],
        "upscaler_2": "None",
        "extras_upscaler_2_visibility": 0,
        "upscale_first": True,
        "image": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(),
    }
    response = requests.post(tiny_daemon.url + "/sdapi/v1/extra-single-image", json=data, headers=ai_render_headers(), timeout=60)
    assert response.status_code == 200, response.text
    assert ai_render_reads(response).size == (192, 108)
