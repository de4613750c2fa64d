"""The official OpenAI Python SDK, unchanged, against a real `voicebrush serve` with a token.

"Existing clients work unchanged" is checked with a client we did not write: the SDK
builds its own requests (multipart for audio, JSON for images, its own headers) and
parses our answers and errors into its own types.
"""

from __future__ import annotations

import base64
import io

import requests
import openai
import pytest
from PIL import Image

from voicebrush_testing import FIXTURES

TOKEN = "sdk-test-token-0123456789"
SPEECH = FIXTURES / "speech"
FAST = {"steps": 2}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, serve_args):
    """Once in process, once as the studio cluster's front door (conftest `serve_args`)."""
    from voicebrush_testing import launch_daemon

    daemon = launch_daemon(tmp_path_factory.mktemp("sdk") / "data", *serve_args, token=TOKEN, timeout=300)
    yield daemon
    daemon.stop()


@pytest.fixture
def sdk(daemon):
    return openai.OpenAI(base_url=daemon.url + "/v1", api_key=TOKEN, max_retries=0, timeout=120)


def test_transcription_in_each_response_format(sdk):
    with open(SPEECH / "fox.mp3", "rb") as audio:
        result = sdk.audio.transcriptions.create(model="whisper-1", file=audio)
    assert "fox" in result.text.lower()

    with open(SPEECH / "castle.ogg", "rb") as audio:
        verbose = sdk.audio.transcriptions.create(model="whisper-1", file=audio, response_format="verbose_json", language="en")
    assert "castle" in verbose.text.lower()
    assert verbose.language in ("en", "english") and verbose.duration > 1
    assert verbose.segments and verbose.segments[0].end > verbose.segments[0].start

    with open(SPEECH / "demo_prompt.wav", "rb") as audio:
        text = sdk.audio.transcriptions.create(model="whisper-1", file=audio, response_format="text")
    assert isinstance(text, str) and "harbo" in text.lower()
    with open(SPEECH / "demo_prompt.wav", "rb") as audio:
        srt = sdk.audio.transcriptions.create(model="whisper-1", file=audio, response_format="srt")
    assert srt.startswith("1\n") and " --> " in srt
    with open(SPEECH / "demo_prompt.wav", "rb") as audio:
        vtt = sdk.audio.transcriptions.create(model="whisper-1", file=audio, response_format="vtt")
    assert vtt.startswith("WEBVTT")


def test_images_as_base64_and_as_urls(sdk, daemon):
    result = sdk.images.generate(
        model="dall-e-2", prompt="a lighthouse in a storm", n=2, size="256x256", response_format="b64_json", extra_body={**FAST, "seed": 7}
    )
    pictures = [Image.open(io.BytesIO(base64.b64decode(item.b64_json))) for item in result.data]
    assert [p.size for p in pictures] == [(256, 256), (256, 256)]
    assert pictures[0].tobytes() != pictures[1].tobytes()  # n images of one request differ
    assert result.data[0].revised_prompt == "a lighthouse in a storm"
    assert "Seed: 7" in pictures[0].text["parameters"]

    # The same request as URLs (OpenAI's default format).
    by_url = sdk.images.generate(model="dall-e-3", prompt="a lighthouse in a storm", n=2, size="256x256", extra_body={**FAST, "seed": 7})
    url = by_url.data[0].url
    assert url.startswith(daemon.url + "/v1/images/")  # absolute, as OpenAI's are
    fetched = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(fetched.content)).tobytes() == pictures[0].tobytes()  # same seed, same pixels


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _job(daemon, job_id: str) -> dict:
    return requests.get(f"{daemon.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).json()


def test_images_edit_with_and_without_a_mask(sdk, daemon):
    import numpy as np

    from voicebrush_daemon.imaging.inputs import feathered

    rng = np.random.default_rng(3)
    canvas = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB")
    # No mask: the picture's own fully transparent pixels are repainted (OpenAI's rule).
    holed = canvas.convert("RGBA")
    holed.paste((0, 0, 0, 0), (0, 0, 64, 20))
    result = sdk.images.edit(
        model="dall-e-2", image=("canvas.png", _png(holed), "image/png"), prompt="a night sky", size="64x64",
        response_format="b64_json", extra_body={**FAST, "seed": 4},
    )
    edited = np.asarray(Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json))).convert("RGB"))
    hole = Image.new("L", (64, 64), 0)
    hole.paste(255, (0, 0, 64, 20))
    untouched = np.asarray(feathered(hole, 4)) == 0
    assert untouched[40:].all() and np.array_equal(edited[untouched], np.asarray(canvas)[untouched])
    assert result.data[0].revised_prompt == "a night sky"

    # With a mask (its transparent part is repainted), n=2, and strength as an extra_body field.
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (32, 0, 64, 64))
    with_mask = sdk.images.edit(
        image=("canvas.png", _png(canvas), "image/png"), mask=("mask.png", _png(mask), "image/png"), prompt="a tower",
        n=2, size="64x64", response_format="b64_json", extra_body={**FAST, "strength": 0.9, "seed": 4},
    )
    assert len(with_mask.data) == 2
    job = _job(daemon, with_mask.model_extra["id"])
    assert (job["mode"], job["strength"], sorted(job["inputs"])) == ("inpaint", 0.9, ["image", "mask"])

    # No mask, no transparency: img2img; the answer as URLs, OpenAI's default.
    redrawn = sdk.images.edit(image=("canvas.png", _png(canvas), "image/png"), prompt="a watercolour", extra_body={**FAST, "strength": 0.5})
    assert redrawn.data[0].url.startswith(daemon.url + "/v1/images/")
    job = _job(daemon, redrawn.model_extra["id"])
    assert (job["mode"], job["strength"], job["size"]) == ("img2img", 0.5, "256x256")

    with pytest.raises(openai.BadRequestError) as bad:
        sdk.images.edit(image=("canvas.png", b"not a picture", "image/png"), prompt="a tower", extra_body=FAST)
    assert bad.value.code == "invalid_image" and bad.value.param == "image"


def test_models_list(sdk):
    ids = [model.id for model in sdk.models.list()]
    assert "tiny-sd2" in ids and any("tiny.en" in i for i in ids)


def test_errors_arrive_as_the_sdks_own_exceptions(sdk, daemon):
    with pytest.raises(openai.BadRequestError) as bad_size:
        sdk.images.generate(prompt="a fox", size="100x100", extra_body=FAST)
    assert bad_size.value.status_code == 400 and bad_size.value.param == "size" and bad_size.value.code

    with pytest.raises(openai.BadRequestError) as bad_audio:
        sdk.audio.transcriptions.create(model="whisper-1", file=("notes.wav", b"this is not audio", "audio/wav"))
    assert bad_audio.value.code == "invalid_audio"

    stranger = openai.OpenAI(base_url=daemon.url + "/v1", api_key="wrong-token", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError) as refused:
        stranger.models.list()
    assert refused.value.status_code == 401 and TOKEN not in str(refused.value)
