"""A prompt typed for our own routes reads as speech does; the OpenAI route stays literal.

`voicebrush generate "a misty harbour at dawn, wide shot"` (the help's own example)
gives a 16:9 picture, as saying those words does. OpenAI's images.generate takes the
prompt exactly as OpenAI does: no control words.
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from voicebrush_daemon import spoken

from voicebrush_testing import wait_job

# Runs twice: models in process, and as the studio cluster's front door.
pytestmark = pytest.mark.both_backends

TINY_NATIVE = (256, 256)


@pytest.mark.parametrize(
    "typed, prompt, negative, aspect",
    [
        ("a misty harbour at dawn, wide shot", "a misty harbour at dawn, wide shot", "", 16 / 9),
        ("a rainy neon alley at night without people", "a rainy neon alley at night", "people", None),
        ("a lighthouse, portrait", "a lighthouse", "", 2 / 3),
        ("an old castle, no text, no watermark, landscape", "an old castle", "text, watermark", 3 / 2),
        # What speech would drop as chatter stays in a typed prompt.
        ("paint splatter on a brick wall", "paint splatter on a brick wall", "", None),
        ("draw me a fox", "draw me a fox", "", None),
    ],
)
def test_typed_prompts_keep_their_words_and_give_their_controls(typed, prompt, negative, aspect):
    read = spoken.read_controls(typed)
    assert (read.prompt, read.negative_prompt, read.aspect) == (prompt, negative, aspect)


def test_speech_still_drops_its_chatter():
    said = spoken.interpret("um, can you draw me a fox in the snow, please")
    assert said.prompt == "a fox in the snow"


async def test_a_typed_job_reads_the_controls_as_speech_does(client):
    job = await (await client.post("/v1/jobs", json={"prompt": "a misty harbour at dawn, wide shot, without boats", "steps": 1})).json()
    final = await wait_job(client, job["id"])
    assert final["status"] == "done", final
    assert final["size"] == "344x192"  # 16:9 at the tiny model's native area, as a spoken "wide shot"
    assert final["prompt"] == "a misty harbour at dawn, wide shot"
    assert final["negative_prompt"] == "boats"
    # A size given wins over the words, and a typed negative prompt is kept beside the spoken one.
    job = await (await client.post("/v1/jobs", json={"prompt": "a harbour, wide shot, no boats", "negative_prompt": "blur", "size": "64x64", "steps": 1})).json()
    final = await wait_job(client, job["id"])
    assert final["size"] == "64x64" and final["negative_prompt"] == "blur, boats"


async def test_the_openai_route_takes_the_prompt_literally(client):
    prompt = "a misty harbour at dawn, wide shot, without boats"
    response = await client.post("/v1/images/generations", json={"prompt": prompt, "steps": 1, "response_format": "b64_json"})
    body = await response.json()
    assert response.status == 200, body
    item = body["data"][0]
    assert item["revised_prompt"] == prompt
    with Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))) as image:
        assert image.size == TINY_NATIVE
