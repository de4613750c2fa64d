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
def daemon(tmp_path_factory):
    from voicebrush_testing import launch_daemon

    daemon = launch_daemon(tmp_path_factory.mktemp("sdk") / "data", token=TOKEN)
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
