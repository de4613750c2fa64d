"""The Krita plugin's parts that need no Krita: options, sizes, names, packaging, recording."""

import ast
import builtins
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from voicebrush_testing import parse_python

ROOT = Path(__file__).resolve().parents[2]
KRITA_PLUGIN = ROOT / "plugins" / "krita"
sys.path.insert(0, str(KRITA_PLUGIN))

from voicebrush import options  # noqa: E402
from voicebrush.options import Rect  # noqa: E402


def test_target_is_the_selection_clipped_to_the_canvas():
    assert options.target_rect(400, 300, (50, 40, 200, 100)) == Rect(50, 40, 200, 100)
    assert options.target_rect(400, 300, (350, -20, 100, 100)) == Rect(350, 0, 50, 80)
    assert options.target_rect(400, 300, None) == Rect(0, 0, 400, 300)
    assert options.target_rect(400, 300, (500, 500, 10, 10)) == Rect(0, 0, 400, 300)  # outside: the canvas


def test_generation_size_keeps_the_target_aspect_in_multiples_of_8():
    assert options.generation_size(Rect(0, 0, 200, 100), 256) == (256, 128)
    assert options.generation_size(Rect(0, 0, 3000, 1000), 768) == (768, 256)
    assert options.generation_size(Rect(0, 0, 256, 256), 256) == (256, 256)


def test_native_side_is_read_from_health():
    assert options.native_side_from_health({"models": {"native_size": "256x256"}}) == 256
    assert options.native_side_from_health({"models": {"native_size": [768, 512]}}) == 768
    assert options.native_side_from_health({"status": "ok"}) == options.DEFAULT_NATIVE_SIDE


def test_layer_names_from_prompts():
    assert options.layer_name("  rainy neon alley,\n low angle ") == "rainy neon alley, low angle"
    long_name = options.layer_name("a very long prompt about a castle on a hill under a stormy sky at night")
    assert len(long_name) <= 49 and long_name.endswith("\u2026") and " " not in long_name[-2:]
    assert options.layer_name("") == "Voicebrush"
    assert options.variant_name("boats", 1, 101) == "boats #2 (seed 101)"


def test_seed_modes():
    assert options.choose_seed(options.SEED_RANDOM, last_seed=5) is None
    assert options.choose_seed(options.SEED_REUSE, last_seed=5) == 5
    assert options.choose_seed(options.SEED_REUSE, last_seed=None) is None
    assert options.choose_seed(options.SEED_FIXED, fixed_seed=42) == 42


def test_request_options_leave_defaults_to_the_daemon():
    request = options.GenerationRequest(" a cat ", negative_prompt="", steps=0, seed=None, variants=12)
    assert request.prompt == "a cat" and request.variants == 8
    assert request.job_options((256, 128)) == {"size": (256, 128), "n": 8}
    full = options.GenerationRequest("a cat", negative_prompt="dogs", steps=20, seed=7).job_options("64x64")
    assert full == {"size": "64x64", "n": 1, "negative_prompt": "dogs", "steps": 20, "seed": 7}


def test_plugin_sources_are_python37_syntax():
    for path in (KRITA_PLUGIN / "voicebrush").glob("*.py"):
        parse_python(path.read_text(), str(path), feature_version=(3, 7))


def test_only_krita_glue_imports_krita():
    for path in (KRITA_PLUGIN / "voicebrush").glob("*.py"):
        tree = parse_python(path.read_text(), str(path))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        if path.name not in ("krita_glue.py", "__init__.py"):
            assert "krita" not in imported, path.name


def test_zip_passes_kritas_own_importer(tmp_path):
    output = tmp_path / "voicebrush-krita.zip"
    subprocess.run([sys.executable, str(KRITA_PLUGIN / "package.py"), "--output", str(output)], check=True)
    names = zipfile.ZipFile(output).namelist()
    assert "voicebrush/" in names and "voicebrush/voicebrush_client.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    importer_path = Path("/usr/share/krita/pykrita/plugin_importer/plugin_importer.py")
    spec = importlib.util.spec_from_file_location("krita_plugin_importer", importer_path)
    module = importlib.util.module_from_spec(spec)
    builtins.i18n = getattr(builtins, "i18n", lambda text: text)
    spec.loader.exec_module(module)
    resources = tmp_path / "resources"
    resources.mkdir()
    imported = module.PluginImporter(str(output), str(resources), lambda plugin: True).import_all()
    assert [(p["name"], p["ui_name"]) for p in imported] == [("voicebrush", "Voicebrush")]
    assert (resources / "pykrita" / "voicebrush.desktop").exists()
    assert (resources / "pykrita" / "voicebrush" / "voicebrush_client.py").exists()
    assert "<shortcut>Ctrl+Alt+D</shortcut>" in (resources / "actions" / "voicebrush.action").read_text()


def test_sounddevice_recorder_reads_the_alsa_virtual_microphone(tmp_path):
    """The sounddevice back end (used where Krita's PyQt lacks QtMultimedia), through ALSA's file plugin."""
    raw = tmp_path / "speech.raw"
    samples = bytes(range(256)) * 200
    raw.write_bytes(samples + b"\0" * 64000)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(
        'pcm.filemic { type file; slave.pcm "null"; file "/dev/null"; infile "%s"; format "raw"; hint { show on } }\n'
        % raw)
    script = (
        "import sys, time\n"
        "sys.path.insert(0, %r)\n"
        "from PyQt5.QtCore import QCoreApplication\n"
        "app = QCoreApplication([])\n"
        "from voicebrush import audio\n"
        "recorder = audio.make_recorder('filemic', backend='sounddevice')\n"
        "recorder.start()\n"
        "deadline = time.monotonic() + 10\n"
        "while len(recorder._pcm) < %d and time.monotonic() < deadline: time.sleep(0.05)\n"
        "sys.stdout.buffer.write(recorder.stop())\n" % (str(KRITA_PLUGIN), len(samples)))
    env = dict(os.environ, HOME=str(home))
    # The venv has sounddevice; PyQt5 comes from Debian, as in Krita.
    env["PYTHONPATH"] = "/usr/lib/python3/dist-packages"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout[:len(samples)] == samples


# -- refine and fill ----------------------------------------------------------------

from voicebrush import canvas, generation, spoken  # noqa: E402
from voicebrush.client import VoicebrushError  # noqa: E402


def test_the_mode_follows_strength_and_fill():
    assert canvas.canvas_mode(1.0, False) == canvas.TEXT == "text"
    assert canvas.canvas_mode(0.5, False) == canvas.REFINE == "img2img"
    assert canvas.canvas_mode(1.0, True) == canvas.canvas_mode(0.6, True) == canvas.FILL == "inpaint"
    assert canvas.check_strength("0.25") == 0.25
    for bad in (0, -0.1, 1.01, "much", None, float("nan")):
        with pytest.raises(VoicebrushError) as raised:
            canvas.check_strength(bad)
        assert raised.value.code == "invalid_value" and "strength" in str(raised.value)


@pytest.mark.parametrize("canvas_size, selection, expected", [
    # No selection: the whole canvas, whatever its size.
    ((256, 256), None, Rect(0, 0, 256, 256)),
    ((1001, 333), None, Rect(0, 0, 1001, 333)),
    # 16 px of context around a small selection, then multiples of 8.
    ((400, 300), (100, 100, 80, 40), Rect(84, 84, 112, 72)),
    # Context of an eighth of the longer side on a big one (200 -> 25 px).
    ((1000, 1000), (300, 300, 200, 100), Rect(275, 275, 256, 152)),
    # At the canvas edge: clipped, and grown to a multiple of 8 on the side with room.
    ((400, 300), (0, 0, 50, 50), Rect(0, 0, 72, 72)),
    ((400, 300), (370, 260, 30, 40), Rect(352, 244, 48, 56)),
    # A canvas narrower than the rounding: as wide as the canvas, never past it.
    ((100, 60), (10, 10, 80, 40), Rect(0, 0, 100, 60)),
])
def test_padded_region_for_refine_and_fill(canvas_size, selection, expected):
    region = canvas.padded_region(canvas_size[0], canvas_size[1], selection)
    assert region == expected
    assert region.x >= 0 and region.y >= 0
    assert region.x + region.width <= canvas_size[0] and region.y + region.height <= canvas_size[1]
    if selection is not None:
        x, y, w, h = selection
        assert region.x <= x and region.y <= y  # it holds the whole selection
        assert region.x + region.width >= min(canvas_size[0], x + w)
        assert region.y + region.height >= min(canvas_size[1], y + h)
        for side, limit in ((region.width, canvas_size[0]), (region.height, canvas_size[1])):
            assert side % 8 == 0 or side == limit


def test_what_is_sent_is_capped_at_the_generation_size():
    big = Rect(0, 0, 8000, 8000)
    size = canvas.generation_size_for(big, 768)
    assert size == (768, 768) and canvas.send_size(big, size) == (768, 768)
    wide = Rect(0, 0, 3000, 1000)
    assert canvas.send_size(wide, canvas.generation_size_for(wide, 768)) == (768, 256)
    small = Rect(10, 10, 120, 64)
    assert canvas.send_size(small, canvas.generation_size_for(small, 256)) is None  # sent as read


def test_result_names_say_what_made_them():
    assert canvas.result_name("stormy clouds at sunset", canvas.TEXT, 1.0, 7) == "stormy clouds at sunset"
    assert canvas.result_name("stormy clouds at sunset", canvas.FILL, 1.0, 7) == "stormy clouds at sunset (fill, seed 7)"
    assert canvas.result_name("a rainy neon alley", canvas.REFINE, 0.6, 42) == "a rainy neon alley (refine 60%, seed 42)"
    assert canvas.result_name("a rainy neon alley", canvas.FILL, 0.55, None) == "a rainy neon alley (fill 55%)"
    long_name = canvas.result_name("a castle on a hill under a stormy sky at night with lightning", canvas.REFINE, 0.5, 3)
    assert long_name.endswith("\u2026 (refine 50%, seed 3)") and len(long_name) <= 64


@pytest.mark.parametrize("said, prompt, refine", [
    ("a rainy neon alley from my sketch", "a rainy neon alley", True),
    ("From my sketch, a castle on a hill.", "a castle on a hill", True),
    ("stormy clouds, keep the layout", "stormy clouds", True),
    ("keeping my composition, a forest at night", "a forest at night", True),
    ("a harbour at dawn based on this", "a harbour at dawn", True),
    ("a ship, based on my drawing, at sunset", "a ship, at sunset", True),
    ("a misty harbour at dawn", "a misty harbour at dawn", False),
    ("a sketch of a cat", "a sketch of a cat", False),  # a sketch as the subject is no control
    ("a layout of a city keeps changing", "a layout of a city keeps changing", False),
])
def test_spoken_refine_control(said, prompt, refine):
    assert spoken.spoken_refine(said) == (prompt, refine)


class RecordingClient(object):
    """Stands in for voicebrush_client.Client in the pure test of generation.run: records the jobs."""

    def __init__(self, transcript_prompt=None):
        self.jobs = []
        self.transcript_prompt = transcript_prompt

    def health(self):
        return {"status": "ok", "models": {"native_size": "256x256"}}

    def run_job(self, prompt=None, audio=None, audio_filename=None, on_event=None, cancelled=None, **options):
        from voicebrush.client import JobResult

        self.jobs.append(dict(options, prompt=prompt, audio=audio))
        if audio is not None and self.transcript_prompt:
            on_event("transcript", {"transcript": self.transcript_prompt, "prompt": self.transcript_prompt,
                                    "negative_prompt": "people"})
            if cancelled():
                on_event("cancelled", {})
                raise VoicebrushError("cancelled", code="cancelled")
        on_event("done", {})
        return JobResult({"seed": 5, "prompt": prompt or self.transcript_prompt}, [b"png"])


CAPTURE = generation.CanvasCapture(Rect(10, 20, 120, 60), region=Rect(0, 0, 160, 104), image_png=b"canvas",
                                   mask_png=b"mask", has_selection=True)


def test_generation_sends_the_pictures_each_mode_needs():
    request = options.GenerationRequest
    client = RecordingClient()
    text = generation.run(client, request("a cat", steps=4), CAPTURE)
    assert (text.mode, text.rect) == ("text", Rect(10, 20, 120, 60))
    assert client.jobs[-1] == {"prompt": "a cat", "audio": None, "size": (256, 128), "n": 1, "steps": 4}
    refine = generation.run(client, request("a cat", strength=0.5), CAPTURE)
    assert (refine.mode, refine.strength, refine.rect) == ("img2img", 0.5, Rect(0, 0, 160, 104))
    assert client.jobs[-1]["image"] == b"canvas" and "mask" not in client.jobs[-1]
    assert client.jobs[-1]["strength"] == 0.5 and client.jobs[-1]["size"] == (256, 168)
    fill = generation.run(client, request("a cat", fill=True), CAPTURE)
    assert fill.mode == "inpaint" and fill.label() == "fill, seed 5"
    assert (client.jobs[-1]["image"], client.jobs[-1]["mask"], client.jobs[-1]["strength"]) == (b"canvas", b"mask", 1.0)
    without = generation.CanvasCapture(Rect(0, 0, 64, 64))
    with pytest.raises(VoicebrushError) as raised:
        generation.run(client, request("a cat", fill=True), without)
    assert raised.value.code == "no_selection" and "Select an area first" in str(raised.value)
    assert len(client.jobs) == 3  # nothing sent for it


def test_typed_and_spoken_from_my_sketch_refine():
    client = RecordingClient()
    typed = generation.run(client, options.GenerationRequest("a neon alley, from my sketch"), CAPTURE)
    assert (typed.mode, typed.strength, typed.prompt) == ("img2img", canvas.SPOKEN_REFINE_STRENGTH, "a neon alley")
    assert client.jobs[-1]["prompt"] == "a neon alley" and client.jobs[-1]["image"] == b"canvas"

    spoken_client = RecordingClient(transcript_prompt="a neon alley keep the layout")
    events = []
    said = generation.run(spoken_client, options.GenerationRequest(""), CAPTURE, audio=b"wav",
                          on_event=lambda name, data: events.append(name))
    first, second = spoken_client.jobs
    assert first["audio"] == b"wav" and "image" not in first
    assert second["audio"] is None and second["prompt"] == "a neon alley" and second["image"] == b"canvas"
    assert second["negative_prompt"] == "people" and second["strength"] == canvas.SPOKEN_REFINE_STRENGTH
    assert said.mode == "img2img" and said.rect == CAPTURE.region
    assert events == ["transcript", "done"]  # the stopped first job's end is not reported

    plain = RecordingClient(transcript_prompt="a neon alley at night")
    heard = generation.run(plain, options.GenerationRequest(""), CAPTURE, audio=b"wav")
    assert len(plain.jobs) == 1 and heard.mode == "text"


def test_refine_words_are_taken_out_of_the_prompt_in_every_mode():
    client = RecordingClient()
    outcome = generation.run(client, options.GenerationRequest("a neon alley, keep the layout", strength=0.3), CAPTURE)
    assert (outcome.mode, outcome.strength, client.jobs[-1]["prompt"]) == ("img2img", 0.3, "a neon alley")
    outcome = generation.run(client, options.GenerationRequest("clouds, from my sketch", fill=True), CAPTURE)
    assert (outcome.mode, client.jobs[-1]["prompt"]) == ("inpaint", "clouds")
    with pytest.raises(VoicebrushError) as raised:
        generation.run(client, options.GenerationRequest("from my sketch"), CAPTURE)
    assert raised.value.code == "empty_prompt"
