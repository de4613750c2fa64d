"""Pictures in over HTTP, in-process against the real app and the real tiny engines:
/v1/jobs (JSON base64 and multipart files, dictation included) and OpenAI's
/v1/images/edits, every mode each takes; what the record and the history keep; health
and models; and bad pictures, each a clear 4xx that leaves the daemon serving."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import aiohttp
import numpy as np
import pytest
from PIL import Image

from voicebrush_testing import FIXTURES, wait_job, wait_ready
from voicebrush_daemon.imaging.inputs import feathered

# Runs twice: models in process, and as the studio cluster's front door.
pytestmark = pytest.mark.both_backends

FAST = {"steps": 2, "seed": 3}


def assert_error(body: dict, code: str | None = None, param: str | None = None):
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "code", "param"} and error["message"], error
    if code:
        assert error["code"] == code, error
    if param:
        assert error["param"] == param, error


def canvas(width: int = 64, height: int = 64, seed: int = 5, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, len(mode)), dtype=np.uint8)
    return Image.fromarray(pixels, mode)


def square_mask(width: int = 64, height: int = 64) -> Image.Image:
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    return mask


def encoded(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def b64(data: bytes, uri: bool = False) -> str:
    text = base64.b64encode(data).decode("ascii")
    return "data:image/png;base64," + text if uri else text


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


async def fetch_png(client, url: str) -> Image.Image:
    response = await client.get(url.split(str(client.server.port), 1)[1])
    assert response.status == 200 and response.content_type == "image/png", url
    image = Image.open(io.BytesIO(await response.read()))
    image.load()
    return image


def form(fields: dict, files: dict) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        data.add_field(name, str(value))
    for name, (filename, content, content_type) in files.items():
        data.add_field(name, content, filename=filename, content_type=content_type)
    return data


# ---- /v1/jobs: every mode, JSON and multipart ---------------------------------------


async def test_a_json_img2img_job_names_its_input_from_the_202_and_keeps_it_exactly(client):
    given = canvas(96, 64)
    response = await client.post("/v1/jobs", json={"prompt": "a forest at dusk", "image": b64(encoded(given), uri=True), **FAST})
    accepted = await response.json()
    assert response.status == 202, accepted
    assert (accepted["mode"], accepted["strength"]) == ("img2img", 0.75)
    assert list(accepted["inputs"]) == ["image"]  # named from the start, and already served
    assert np.array_equal(pixels(await fetch_png(client, accepted["inputs"]["image"])), pixels(given))
    done = await wait_job(client, accepted["id"])
    assert done["status"] == "done", done
    assert done["inputs"] == accepted["inputs"]
    # The input's aspect (3:2) at the tiny model's native area; round(0.75 x 2) steps ran.
    assert done["size"] == "312x208" and done["progress"] == {"step": 2, "steps": 2}
    image = await fetch_png(client, done["images"][0])
    assert image.size == (312, 208)
    assert "Denoising strength: 0.75" in image.text["parameters"]


async def test_a_multipart_inpaint_job_keeps_untouched_pixels_and_its_inputs(client):
    given, mask = canvas(), square_mask(32, 32)  # a mask of another size is stretched onto the image
    files = {"image": ("canvas.png", encoded(given), "image/png"), "mask": ("mask.png", encoded(mask), "image/png")}
    response = await client.post("/v1/jobs", data=form({"prompt": "a door", "strength": "0.9", "size": "64x64", **FAST}, files))
    accepted = await response.json()
    assert response.status == 202, accepted
    assert (accepted["mode"], accepted["strength"], sorted(accepted["inputs"])) == ("inpaint", 0.9, ["image", "mask"])
    done = await wait_job(client, accepted["id"])
    assert done["status"] == "done", done
    assert np.array_equal(np.asarray(await fetch_png(client, done["inputs"]["mask"])), np.asarray(mask))
    assert np.array_equal(pixels(await fetch_png(client, done["inputs"]["image"])), pixels(given))
    result = pixels(await fetch_png(client, done["images"][0]))
    # Outside the feathered mask (mask_blur 4 by default) every pixel is the input's.
    untouched = np.asarray(feathered(mask.resize((64, 64), Image.Resampling.BILINEAR), 4)) == 0
    assert untouched.sum() > 0.3 * untouched.size
    assert np.array_equal(result[untouched], pixels(given)[untouched])
    assert not np.array_equal(result, pixels(given))


async def test_a_depth_job_from_a_16_bit_map_keeps_it_at_16_bits(client):
    values = np.tile(np.linspace(0, 65535, 64).astype("<u2"), (48, 1))
    depth = Image.fromarray(values)
    response = await client.post("/v1/jobs", json={"prompt": "a canyon", "depth": b64(encoded(depth)), **FAST})
    accepted = await response.json()
    assert response.status == 202, accepted
    assert (accepted["mode"], accepted["strength"], list(accepted["inputs"])) == ("depth", 1.0, ["depth"])
    done = await wait_job(client, accepted["id"])
    assert done["status"] == "done", done
    kept = await fetch_png(client, done["inputs"]["depth"])
    assert kept.mode in ("I;16", "I") and np.array_equal(np.asarray(kept).astype(np.int64), values.astype(np.int64))
    assert done["size"] == "296x224"  # the map's 4:3 at the native area


async def test_dictation_over_the_canvas(client):
    """"Make it a forest at dusk" said over the canvas: speech and picture in one job."""
    files = {
        "file": ("take.mp3", (FIXTURES / "speech" / "fox.mp3").read_bytes(), "audio/mpeg"),
        "image": ("canvas.jpg", encoded(canvas(64, 64), "JPEG"), "image/jpeg"),
    }
    response = await client.post("/v1/jobs", data=form({"size": "64x64", "strength": "0.5", **FAST}, files))
    accepted = await response.json()
    assert response.status == 202, accepted
    assert accepted["mode"] == "img2img" and accepted["strength"] == 0.5
    done = await wait_job(client, accepted["id"])
    assert done["status"] == "done", done
    assert done["transcript"] and done["prompt"]  # heard something (the words depend on the CPU)
    assert done["progress"] == {"step": 1, "steps": 1}  # round(0.5 x 2)
    assert (await fetch_png(client, done["images"][0])).size == (64, 64)


# ---- /v1/images/edits (OpenAI): transparency is the mask ----------------------------


async def edit(client, image: bytes, mask: bytes | None = None, name: str = "image", **fields):
    files = {name: ("image.png", image, "image/png")}
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    response = await client.post("/v1/images/edits", data=form({"prompt": "a moon", "response_format": "b64_json", **FAST, **fields}, files))
    return response, await response.json()


async def test_an_edit_repaints_the_transparent_part_and_keeps_the_rest(client):
    given = canvas(mode="RGBA")
    given.putalpha(255)
    given.paste((0, 0, 0, 0), (16, 16, 48, 48))  # cleared: repaint here
    response, body = await edit(client, encoded(given), size="64x64")
    assert response.status == 200, body
    assert set(body) >= {"created", "data"} and body["data"][0]["revised_prompt"] == "a moon"
    result = pixels(Image.open(io.BytesIO(base64.b64decode(body["data"][0]["b64_json"]))))
    job = await (await client.get(f"/v1/jobs/{body['id']}")).json()
    assert job["mode"] == "inpaint" and sorted(job["inputs"]) == ["image", "mask"]
    stored_mask = np.asarray(await fetch_png(client, job["inputs"]["mask"]))
    assert stored_mask[20, 20] == 255 and stored_mask[2, 2] == 0  # white = repaint, as the history keeps masks
    untouched = np.asarray(feathered(Image.fromarray(stored_mask), 4)) == 0
    flattened = pixels(given.convert("RGB"))
    assert np.array_equal(result[untouched], flattened[untouched])


async def test_an_edit_with_a_mask_and_one_without_any_transparency(client):
    given = canvas()
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 32, 64))  # the mask's transparent half is repainted
    response, body = await edit(client, encoded(given), encoded(mask), size="64x64", n="2")
    assert response.status == 200, body
    assert [item["seed"] for item in body["data"]] == [3, 4]
    job = await (await client.get(f"/v1/jobs/{body['id']}")).json()
    assert job["mode"] == "inpaint" and job["strength"] == 1.0
    # No mask and no transparency: the whole picture redrawn (img2img), at strength.
    response, body = await edit(client, encoded(given), strength="0.5", response_format="url")
    assert response.status == 200, body
    job = await (await client.get(f"/v1/jobs/{body['id']}")).json()
    assert (job["mode"], job["strength"], list(job["inputs"])) == ("img2img", 0.5, ["image"])
    assert body["data"][0]["url"] == job["images"][0]
    # The SDK names a one-picture list "image[]".
    response, body = await edit(client, encoded(given), name="image[]", size="64x64")
    assert response.status == 200, body


async def test_edit_errors_name_the_field(client):
    response, body = await edit(client, b"not a picture")
    assert response.status == 400 and body["error"]["code"] == "invalid_image" and body["error"]["param"] == "image", body
    response = await client.post("/v1/images/edits", data=form({"prompt": "a moon"}, {}))
    assert response.status == 400
    assert_error(await response.json(), "missing_field", "image")
    response, body = await edit(client, encoded(canvas()), stream="true")
    assert response.status == 400 and body["error"]["param"] == "stream", body
    response, body = await edit(client, encoded(canvas()), encoded(canvas(8, 8)), strength="0")
    assert response.status == 400 and body["error"]["param"] == "strength", body
    # /v1/images/generations stays text-only, as OpenAI's: an image there is an unknown field.
    response = await client.post("/v1/images/generations", json={"prompt": "a moon", "image": b64(encoded(canvas())), "size": "64x64", **FAST})
    assert response.status == 200
    job = await (await client.get(f"/v1/jobs/{(await response.json())['id']}")).json()
    assert job["mode"] == "text" and job["inputs"] == {}


# ---- what health and models say ---------------------------------------------------


async def test_health_and_models_say_which_modes_run_on_which_weights(client):
    health = (await (await client.get("/v1/health")).json())["models"]
    assert set(health["modes"]) == {"text", "img2img", "inpaint", "depth"}
    assert health["modes"]["text"] == health["modes"]["img2img"] == health["image"]
    assert health["modes"]["inpaint"] and health["modes"]["inpaint"] != health["image"]  # the 9-channel stand-in
    assert health["modes"]["depth"]
    assert health["unets_loaded"]["main"] == health["image"]
    models = (await (await client.get("/v1/models")).json())["data"]
    images = {model["id"]: model for model in models if model["kind"] == "image"}
    assert images[health["image"]]["modes"] == ["text", "img2img"]
    assert images[health["modes"]["inpaint"]]["modes"] == ["inpaint"]
    assert images[health["modes"]["depth"]]["modes"] == ["depth"]
    for model in images.values():
        assert model["loaded"] == (model["id"] in health["unets_loaded"].values())


# ---- bad pictures: a clear 4xx, and the daemon keeps serving -------------------------


def truncated_png() -> bytes:
    data = encoded(canvas(64, 64))
    return data[: len(data) // 2]


def bomb_png(width: int = 60000, height: int = 60000) -> bytes:
    """A valid PNG header declaring 3.6 gigapixels, then a tiny IDAT: refused on the header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b"")


BAD = [
    ({"image": b"this is not a picture"}, {}, "invalid_image", "image"),
    ({"image": truncated_png()}, {}, "invalid_image", "image"),
    ({"image": bomb_png()}, {}, "invalid_image", "image"),
    ({"image": encoded(canvas()), "depth": b"\x89PNG\r\n\x1a\nrest"}, {}, "invalid_image", "depth"),
    ({"mask": encoded(square_mask())}, {}, "invalid_value", "mask"),
    ({"image": encoded(canvas()), "mask": encoded(square_mask()), "depth": encoded(Image.linear_gradient("L"))}, {}, "invalid_value", "mask"),
    ({"depth": encoded(Image.new("L", (64, 64), 90))}, {}, "invalid_image", "depth"),  # flat: no layout to follow
    ({"image": encoded(canvas())}, {"strength": "0"}, "invalid_value", "strength"),
    ({"image": encoded(canvas())}, {"strength": "1.01"}, "invalid_value", "strength"),
    ({"image": encoded(canvas())}, {"strength": "nan"}, "invalid_value", "strength"),
]


@pytest.mark.parametrize("pictures,fields,code,param", BAD)
async def test_bad_pictures_are_400_naming_the_field_as_files_and_as_base64(client, pictures, fields, code, param):
    files = {name: (f"{name}.png", data, "image/png") for name, data in pictures.items()}
    response = await client.post("/v1/jobs", data=form({"prompt": "a fox", **fields}, files))
    assert response.status == 400, await response.text()
    assert_error(await response.json(), code, param)
    body = {"prompt": "a fox", **{name: b64(data) for name, data in pictures.items()}}
    body.update({key: float(value) for key, value in fields.items()})
    response = await client.post("/v1/jobs", data=json.dumps(body), headers={"Content-Type": "application/json"})  # NaN as JSON's NaN
    assert response.status == 400, await response.text()
    assert_error(await response.json(), code, param)


async def test_base64_that_is_not_base64_and_pictures_of_the_wrong_type(client):
    for value, code in (("%%%not base64%%%", "invalid_image"), ("data:text/plain,hello", "invalid_image")):
        response = await client.post("/v1/jobs", json={"prompt": "a fox", "image": value})
        assert response.status == 400
        assert_error(await response.json(), code, "image")
    response = await client.post("/v1/jobs", json={"prompt": "a fox", "image": 5})
    assert response.status == 400
    assert_error(await response.json(), "invalid_value", "image")


def cmyk_jpeg() -> bytes:
    return encoded(canvas().convert("CMYK"), "JPEG")


def palette_png() -> bytes:
    return encoded(canvas().convert("P", palette=Image.Palette.ADAPTIVE, colors=16))


def animated_webp() -> bytes:
    frames = [Image.new("RGB", (64, 48), colour) for colour in ((200, 30, 30), (30, 200, 30))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    return buffer.getvalue()


ODD_BUT_FINE = {
    "a 1x1 picture": (encoded(Image.new("RGB", (1, 1), (9, 99, 199))), "256x256"),
    "a 16-bit grey PNG": (encoded(Image.fromarray(np.tile(np.arange(0, 65536, 1024, dtype="<u2"), (64, 1)))), "256x256"),
    "a CMYK JPEG": (cmyk_jpeg(), "256x256"),
    "a palette PNG": (palette_png(), "256x256"),
    "an animated WebP (its first frame)": (animated_webp(), "296x224"),
}


@pytest.mark.parametrize("what", list(ODD_BUT_FINE))
async def test_odd_pictures_are_converted_and_run(client, what):
    data, size = ODD_BUT_FINE[what]
    response = await client.post("/v1/jobs", json={"prompt": "a fox", "image": b64(data), "steps": 1})
    accepted = await response.json()
    assert response.status == 202, accepted
    done = await wait_job(client, accepted["id"])
    assert done["status"] == "done" and done["size"] == size, done
    kept = await fetch_png(client, done["inputs"]["image"])
    assert kept.mode == "RGB"
    if what.startswith("an animated"):
        assert kept.getpixel((0, 0)) == (200, 30, 30)


@pytest.mark.in_process_only  # brings its own engines: a model whose depth weights are absent
async def test_depth_without_the_depth_weights_is_400_with_the_fetch_command(make_app, aiohttp_client, tiny_engines, tmp_path):
    from voicebrush_daemon.imaging.diffusers_engine import DiffusersImageGenerator
    from voicebrush_daemon.jobs.worker import Engines

    image = tiny_engines.image
    no_depth = DiffusersImageGenerator(image.source, image.plan, mode_sources={})  # as a model whose depth weights are absent
    try:
        test_client = await aiohttp_client(make_app(load_engines=lambda: Engines(image=no_depth, speech=tiny_engines.speech)))
        health = await wait_ready(test_client)
        assert health["models"]["modes"]["depth"] is None
        depth = b64(encoded(Image.linear_gradient("L").resize((64, 64))))
        response = await test_client.post("/v1/jobs", json={"prompt": "a canyon", "depth": depth})
        assert response.status == 400
        body = await response.json()
        assert_error(body, "model_unavailable", "depth")
        assert "voicebrush models --fetch sd2-depth" in body["error"]["message"]
        images_dir = tmp_path / "data" / "images"
        assert not any(images_dir.glob("*-depth.png"))  # refused before anything was written
        # Everything else still runs.
        response = await test_client.post("/v1/jobs", json={"prompt": "a canyon", "image": depth, **FAST})
        assert response.status == 202
        assert (await wait_job(test_client, (await response.json())["id"]))["status"] == "done"
    finally:
        no_depth.close()
