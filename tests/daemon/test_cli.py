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


@pytest.mark.parametrize("command", ["serve", "generate", "transcribe", "dictate", "models", "bench", "storyboard"])
def test_every_command_has_help(command):
    result = run(command, "--help", timeout=60)
    assert result.returncode == 0
    assert "usage: voicebrush " + command in result.stdout
    assert len(result.stdout.splitlines()) > 5


def test_top_level_help_lists_commands_and_examples():
    result = run("--help", timeout=60)
    assert result.returncode == 0
    for word in ("serve", "generate", "transcribe", "dictate", "models", "bench", "examples:"):
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


def test_generate_starts_a_daemon_in_process_when_none_runs(tmp_path):
    env = daemon_env(VOICEBRUSH_SERVER=f"http://127.0.0.1:{free_port()}", HF_HUB_OFFLINE="1")
    output = tmp_path / "local.png"
    result = run("generate", "a castle", "-o", str(output), "--preset", "tiny", "--device", "cpu", "--data-dir", str(tmp_path / "d"), "--steps", "1", "--size", "64x64", "--n", "2", env=env)
    assert result.returncode == 0, result.stderr
    assert "starting one in this process" in result.stderr
    assert Image.open(tmp_path / "local-1.png").size == (64, 64)
    assert Image.open(tmp_path / "local-2.png").size == (64, 64)


def test_generate_reports_a_dead_server_in_one_line(tmp_path):
    result = run("generate", "x", "-o", str(tmp_path / "x.png"), "--server", f"http://127.0.0.1:{free_port()}", timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("voicebrush: Cannot reach")
    assert "Traceback" not in result.stderr


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
