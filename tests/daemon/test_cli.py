"""The `voicebrush` command as a user runs it: real processes, real daemon."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from PIL import Image

from voicebrush_testing import FIXTURES, ROOT, daemon_command, daemon_env, free_port

SPEECH = FIXTURES / "speech"


def run(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(daemon_command(*args), capture_output=True, text=True, env=env or daemon_env(), timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("command", ["serve", "generate", "transcribe", "dictate", "storyboard", "history", "models", "bench"])
def test_every_command_has_help(command):
    result = run(command, "--help", timeout=60)
    assert result.returncode == 0
    assert "usage: voicebrush " + command in result.stdout
    assert len(result.stdout.splitlines()) > 5


def test_top_level_help_lists_commands_and_examples():
    result = run("--help", timeout=60)
    assert result.returncode == 0
    for word in ("serve", "generate", "transcribe", "dictate", "history", "models", "bench", "examples:"):
        assert word in result.stdout


def test_serve_refuses_a_public_address_without_a_token(tmp_path):
    result = run("serve", "--host", "0.0.0.0", "--preset", "tiny", "--data-dir", str(tmp_path), timeout=60)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("voicebrush:")]
    assert len(lines) == 1 and "token" in lines[0]
    env = daemon_env(VOICEBRUSH_TOKEN="")
    assert run("serve", "--host", "::", "--preset", "tiny", "--data-dir", str(tmp_path), env=env, timeout=60).returncode != 0


def test_serve_with_missing_weights_fails_fast_with_one_line(tmp_path):
    env = daemon_env(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    started = time.monotonic()
    result = run("serve", "--preset", "sd2-base", "--port", "0", "--data-dir", str(tmp_path / "data"), env=env, timeout=120)
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("voicebrush:")]
    assert len(error_lines) == 1, result.stderr
    assert "stable-diffusion-2-1-base" in error_lines[0] and "voicebrush models" in error_lines[0]
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60


def test_generate_writes_a_png_through_the_daemon(tiny_daemon, tmp_path):
    output = tmp_path / "fox.png"
    result = run("generate", "a red fox in the snow", "-o", str(output), "--server", tiny_daemon.url, "--steps", "2", "--size", "96x64", "--seed", "11")
    assert result.returncode == 0, result.stderr
    image = Image.open(output)
    assert image.size == (96, 64)
    assert json.loads(image.text["voicebrush"])["seed"] == 11
    assert "wrote" in result.stdout


def test_generate_in_process_loads_no_speech_model_and_says_no_listening(tmp_path):
    """--in-process: the models run here for the one command. Only the image model is
    loaded (a Whisper model that does not exist is never asked for), and no "listening"
    line is printed for a port that is gone when the command ends."""
    output = tmp_path / "local.png"
    result = run("generate", "a castle", "-o", str(output), "--in-process", "--preset", "tiny", "--asr-model", "no-such-whisper", "--device", "cpu", "--data-dir", str(tmp_path / "d"), "--steps", "1", "--size", "64x64", "--n", "2", "--seed", "41")
    assert result.returncode == 0, result.stderr
    assert "running this command in this process" in result.stderr
    assert "listening" not in result.stdout + result.stderr
    # Each file's own seed: image i of seed S is seed S + i, as its PNG says.
    assert "local-1.png  (seed 41, 64x64)" in result.stdout and "local-2.png  (seed 42, 64x64)" in result.stdout
    for name, seed in (("local-1.png", 41), ("local-2.png", 42)):
        with Image.open(tmp_path / name) as image:
            assert image.size == (64, 64)
            assert json.loads(image.text["voicebrush"])["seed"] == seed


def test_transcribe_prints_what_was_said(tiny_daemon):
    result = run("transcribe", str(SPEECH / "fox.mp3"), "--server", tiny_daemon.url)
    assert result.returncode == 0, result.stderr
    assert "fox" in result.stdout.lower()
    srt = run("transcribe", str(SPEECH / "fox.mp3"), "--server", tiny_daemon.url, "--format", "srt")
    assert "-->" in srt.stdout


def test_dictate_records_from_a_microphone(tiny_daemon, tmp_path):
    """The real capture path: sounddevice -> PortAudio -> ALSA, with an ALSA `file`
    device as the microphone (no sound card here), fed with a spoken prompt."""
    raw = tmp_path / "mic.raw"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(SPEECH / "demo_prompt.wav"), "-f", "s16le", "-ac", "1", "-ar", "16000", str(raw)], check=True)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(
        'pcm.filemic { type file; slave.pcm "null"; file "/dev/null"; infile "%s"; format "raw"; hint { show on } }\n' % raw
    )
    seconds = raw.stat().st_size / 32000
    env = daemon_env(HOME=str(home))
    output = tmp_path / "dictated.png"
    result = run("dictate", "--seconds", f"{seconds:.2f}", "--input-device", "filemic", "--server", tiny_daemon.url, "--steps", "2", "-o", str(output), "--keep-audio", str(tmp_path / "heard.wav"), env=env)
    assert result.returncode == 0, result.stderr
    assert "harbo" in result.stderr.lower()  # "heard: ..." is printed while it works
    assert output.exists() and json.loads(Image.open(output).text["voicebrush"])["transcript"]
    assert (tmp_path / "heard.wav").stat().st_size > 16000


def test_storyboard_writes_a_pdf_and_a_png_sheet(tiny_daemon, tmp_path):
    import pypdf

    from voicebrush_daemon.storyboards.sheet import choose_grid

    script = tmp_path / "script.txt"
    script.write_text("\n".join(f"{i}. a harbour at dawn, take {i}" for i in range(1, 17)) + "\n", encoding="utf-8")
    output = tmp_path / "board.pdf"
    result = run("storyboard", str(script), "-o", str(output), "--server", tiny_daemon.url, "--size", "64x64", "--steps", "1", "--style", "ink")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "16 of 16 panels" in result.stdout
    assert "shot 16/16 done" in result.stderr
    per_page = choose_grid((64, 64)).per_page
    assert per_page < 16 and len(pypdf.PdfReader(output).pages) == 2
    png = tmp_path / "spoken.png"
    result = run("storyboard", "--audio", str(SPEECH / "storyboard.wav"), "-o", str(png), "--server", tiny_daemon.url, "--size", "64x64", "--steps", "1")
    assert result.returncode == 0, result.stderr
    assert "lighthouse" in result.stderr.lower()  # heard: ...
    assert Image.open(png).format == "PNG"


def test_storyboard_refuses_what_is_not_a_script(tiny_daemon, tmp_path):
    binary = tmp_path / "take.txt"
    binary.write_bytes(bytes(range(256)) * 4)
    for args, words in (([str(binary), "-o", str(tmp_path / "b.pdf")], "not a UTF-8 text file"),
                        ([str(tmp_path / "missing.txt"), "-o", str(tmp_path / "b.pdf")], "cannot read"),
                        ([str(binary), "-o", str(tmp_path / "b.jpg")], "-o must end in .png or .pdf")):
        result = run("storyboard", *args, "--server", tiny_daemon.url, timeout=60)
        assert result.returncode == 1
        assert words in result.stderr and "Traceback" not in result.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("shot one.\nnext shot.\n")
    result = run("storyboard", str(empty), "-o", str(tmp_path / "b.png"), "--server", tiny_daemon.url, timeout=60)
    assert result.returncode == 1 and "no shot to draw" in result.stderr


def test_models_lists_presets_and_how_to_fetch(tmp_path):
    env = daemon_env(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    result = run("models", "--data-dir", str(tmp_path), env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "sd2 " in result.stdout and "missing" in result.stdout
    assert "voicebrush models --fetch sd2" in result.stdout
    assert "tiny.en" in result.stdout and "bundled" in result.stdout


def test_sigterm_stops_the_daemon_cleanly(start_daemon):
    daemon = start_daemon()
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 15


def test_dictate_without_a_microphone_says_so_and_how_to_choose(tmp_path):
    home = tmp_path / "home"  # no ~/.asoundrc: PortAudio sees no device at all here
    home.mkdir()
    result = run("dictate", "--seconds", "1", "-o", str(tmp_path / "x.png"), "--server", f"http://127.0.0.1:{free_port()}", env=daemon_env(HOME=str(home)), timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("voicebrush: no microphone found: sounddevice (PortAudio) sees no input device at all.")
    assert "--input-device NAME_OR_NUMBER" in result.stderr and "voicebrush dictate --file take.wav" in result.stderr
    assert "Error querying device" not in result.stderr and "Traceback" not in result.stderr


def test_dictate_with_an_unknown_input_device_lists_the_ones_there_are(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text('pcm.filemic { type file; slave.pcm "null"; file "/dev/null"; infile "/dev/null"; format "raw"; hint { show on } }\n')
    result = run("dictate", "--seconds", "1", "--input-device", "no-such-mic", "-o", str(tmp_path / "x.png"), env=daemon_env(HOME=str(home)), timeout=60)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "voicebrush: no input device matches 'no-such-mic'. sounddevice sees these input devices:"
    assert any("filemic (ALSA" in line for line in lines[1:-1])
    assert "--input-device" in lines[-1]


def test_dictate_turns_a_recorded_take_into_a_picture(tiny_daemon, tmp_path):
    output = tmp_path / "take.png"
    result = run("dictate", "--file", str(SPEECH / "demo_prompt.wav"), "--server", tiny_daemon.url, "--steps", "2", "--seed", "5", "-o", str(output))
    assert result.returncode == 0, result.stderr
    assert "heard:" in result.stderr and "harbo" in result.stderr.lower()
    with Image.open(output) as image:
        meta = json.loads(image.text["voicebrush"])
        assert "harbo" in meta["transcript"].lower() and meta["seed"] == 5
        assert image.size == (344, 192)  # "wide shot" in the take: 16:9
    assert f"wrote {output}  (seed 5, 344x192)" in result.stdout


def test_generate_reads_the_framing_words_of_a_typed_prompt(tiny_daemon, tmp_path):
    """The help's own example gives a wide picture, as saying it would."""
    output = tmp_path / "harbour.png"
    result = run("generate", "a misty harbour at dawn, wide shot, without boats", "-o", str(output), "--server", tiny_daemon.url, "--steps", "1")
    assert result.returncode == 0, result.stderr
    with Image.open(output) as image:
        assert image.size == (344, 192)
        meta = json.loads(image.text["voicebrush"])
    assert meta["prompt"] == "a misty harbour at dawn, wide shot" and meta["negative_prompt"] == "boats"
    assert "prompt: 'a misty harbour at dawn, wide shot'  (without: 'boats')" in result.stderr
    assert "344x192" in result.stdout
    assert "wide shot" in run("generate", "--help", timeout=60).stdout


def test_bench_help_names_the_preset_it_runs():
    text = " ".join(run("bench", "--help", timeout=60).stdout.split())
    assert "tiny (offline stand-in, default)" in text
    assert "sd2 (768x768, default)" not in text
    assert "sd2 (768x768, default)" in " ".join(run("serve", "--help", timeout=60).stdout.split())
