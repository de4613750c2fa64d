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
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 7))


def test_only_krita_glue_imports_krita():
    for path in (KRITA_PLUGIN / "voicebrush").glob("*.py"):
        tree = ast.parse(path.read_text())
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
