"""The add-on's pure logic (naming, sizes, the job flow), without Blender.

The modules are loaded as one package from plugins/blender plus the shared
client, as they sit together in the built extension.
"""

import importlib
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pure_package():
    name = "voicebrush_blender_pure"
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [str(ROOT / "plugins" / "blender"), str(ROOT / "plugins" / "shared")]
        sys.modules[name] = package
    return name


def load(module):
    return importlib.import_module("%s.%s" % (_pure_package(), module))


naming, framing, jobs = load("naming"), load("framing"), load("jobs")


@pytest.mark.parametrize("prompt, name", [
    ("a ruined temple in a jungle clearing, overcast", "A ruined temple in a jungle clearing overcast"),
    ("  rainy   neon alley!! ", "Rainy neon alley"),
    ("", "Voicebrush"),
    ("...", "Voicebrush"),
    ("an old stone castle on a hill, oil painting, dramatic light, highly detailed", "An old stone castle on a hill oil painting"),
    ("Ölgemälde einer Burg", "Ölgemälde einer Burg"),
])
def test_name_from_prompt(prompt, name):
    assert naming.name_from_prompt(prompt) == name
    assert len(naming.name_from_prompt(prompt).encode("utf-8")) <= naming.MAX_NAME_BYTES


def test_fit_inside_keeps_the_aspect_and_touches_the_frame():
    assert framing.fit_inside(16.0, 9.0, 16 / 9) == pytest.approx((16.0, 9.0))
    assert framing.fit_inside(16.0, 9.0, 1.0) == pytest.approx((9.0, 9.0))
    assert framing.fit_inside(4.0, 9.0, 1.0) == pytest.approx((4.0, 4.0))


def test_frame_size_grows_with_distance_for_perspective_only():
    frame = [(0.5, 0.28125, -1.3888), (0.5, -0.28125, -1.3888), (-0.5, -0.28125, -1.3888), (-0.5, 0.28125, -1.3888)]
    width, height = framing.frame_size_at_distance(frame, 2 * 1.3888)
    assert (width, height) == pytest.approx((2.0, 1.125))
    assert framing.frame_size_at_distance(frame, 100.0, orthographic=True) == pytest.approx((1.0, 0.5625))


def test_generation_size_for_camera():
    assert framing.generation_size_for_camera(16 / 9, 256) == "256x144"
    assert framing.generation_size_for_camera(9 / 16, 768) == "432x768"
    assert framing.generation_size_for_camera(1.0, 512) == "512x512"


def test_request_sends_only_what_differs_from_the_daemon_defaults():
    assert jobs.GenerationRequest(prompt="fox").options() == {}
    request = jobs.GenerationRequest(prompt="fox", seed=5, steps=8, negative_prompt="blur", size="256x144")
    assert request.options() == {"seed": 5, "steps": 8, "negative_prompt": "blur", "size": "256x144"}
    with pytest.raises(jobs.VoicebrushError, match="Type or say a prompt first"):
        jobs.GenerationRequest(prompt="  ").check()


def test_random_seeds_fit_blender_integer_properties():
    assert jobs.pick_seed(42) == 42
    assert all(0 <= jobs.pick_seed(-1) <= 2 ** 31 - 1 for _ in range(200))


def test_images_carry_their_metadata():
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x00\x90" + b"\x00" * 20
    record = {"id": "j1", "prompt": "a fox", "negative_prompt": "", "seed": 2 ** 32 - 2, "steps": 4,
              "model": "tiny-sd2", "transcript": "a fox"}
    first, second = jobs.images_from_job(record, [png, png])
    assert (first.width, first.height, first.name) == (256, 144, "A fox")
    assert first.properties["seed"] == str(2 ** 32 - 2)  # too large for an IDProperty int: kept exact as text
    assert second.properties["seed"] == str(2 ** 32 - 1)
    assert first.properties["model"] == "tiny-sd2" and first.properties["transcript"] == "a fox"


def test_job_flow_against_the_daemon(tiny_daemon):
    job = jobs.GenerationJob(jobs.GenerationRequest(prompt="a red fox in the snow", steps=3, seed=1,
                                                    size="128x128", server=tiny_daemon.url))
    assert job.status_line() == "Waiting for the daemon..."
    job.start()
    assert job.wait(60)
    assert job.stage == "done", job.error
    assert (job.step, job.steps) == (3, 3) and job.fraction == 1.0
    assert job.preview_serial >= 1 and job.preview[:2] == b"\xff\xd8"  # the daemon's JPEG previews
    assert job.images[0].properties["seed"] == 1 and (job.images[0].width, job.images[0].height) == (128, 128)
    assert job.status_line() == "Done: A red fox in the snow"


def test_job_against_a_dead_daemon_fails_readably():
    job = jobs.GenerationJob(jobs.GenerationRequest(prompt="fox", server="http://127.0.0.1:9")).run()
    assert job.stage == "failed" and job.error.code == "unreachable"
    assert "Cannot reach the voicebrush daemon" in job.status_line()


def test_a_transcription_ends_with_its_text_or_a_readable_error(tiny_daemon):
    wav = (ROOT / "tests" / "fixtures" / "speech" / "demo_prompt.wav").read_bytes()
    heard = jobs.Transcription(wav, tiny_daemon.url).start()
    assert heard.wait(120) and heard.error is None and heard.text, heard.error
    assert heard.stage == "done"
    # A server that is not a URL, as a dead one, ends the same way: an error, no exception.
    for server, code in (("not a url", "bad_url"), ("http://127.0.0.1:9", "unreachable")):
        failed = jobs.Transcription(wav, server).run()
        assert failed.finished and failed.stage == "failed" and failed.error.code == code, (server, failed.error)
        assert failed.text is None


def test_a_streamed_take_for_its_words_gives_them_at_its_end_and_draws_nothing(tiny_daemon):
    """The take streamed while it was recorded (transcribe_only): the job finishes it; the
    daemon's job ends done, with the words the one-shot route hears and no picture."""
    import wave

    client = load("voicebrush_client").Client(tiny_daemon.url)
    wav = (ROOT / "tests" / "fixtures" / "speech" / "demo_prompt.wav").read_bytes()
    with wave.open(str(ROOT / "tests" / "fixtures" / "speech" / "demo_prompt.wav")) as clip:
        rate, pcm = clip.getframerate(), clip.readframes(clip.getnframes())
    take = client.start_dictation(rate=rate, transcribe_only=True)
    assert take.streaming
    for start in range(0, len(pcm), 6400):
        take.push(pcm[start:start + 6400])
    heard = jobs.Transcription(wav, tiny_daemon.url, dictation=take).run()
    assert heard.stage == "done" and heard.error is None, heard.error
    record = client.get_job(take.job_id)
    assert record["status"] == "done" and record["images"] == [], record
    assert heard.text == record["transcript"].strip() == client.transcribe(wav).strip()


def test_last_result_is_reused_only_for_the_same_request():
    cache = jobs.LastResult()
    request = jobs.GenerationRequest(prompt="fox", seed=3)
    cache.remember(request, ["image"])
    assert cache.recall(jobs.GenerationRequest(prompt="fox", seed=3)) == ["image"]
    assert cache.recall(jobs.GenerationRequest(prompt="fox", seed=4)) is None
