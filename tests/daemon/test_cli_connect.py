"""Which daemon a client command talks to, and what it says when there is none.

The rule (also in `voicebrush --help` and the README): `--server URL` and
`$VOICEBRUSH_SERVER` name a daemon that must answer; with neither, the daemon at
http://127.0.0.1:7860, and when none answers there the command runs in this process,
loading only the models it needs.
"""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from voicebrush_testing import FIXTURES, ROOT, daemon_command, daemon_env, free_port

SPEECH = FIXTURES / "speech"
DEFAULT_PORT = 7860


def run(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(daemon_command(*args), capture_output=True, text=True, env=env or daemon_env(), timeout=timeout, cwd=ROOT)


def test_a_named_daemon_that_does_not_answer_fails_the_same_from_the_flag_and_the_environment(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    args = ("generate", "a fox", "-o", str(tmp_path / "fox.png"), "--preset", "tiny")
    from_flag = run(*args, "--server", url, env=daemon_env(VOICEBRUSH_SERVER=""))
    from_env = run(*args, env=daemon_env(VOICEBRUSH_SERVER=url))
    for result, source in ((from_flag, "--server"), (from_env, "$VOICEBRUSH_SERVER")):
        assert result.returncode == 1
        assert result.stderr.strip() == (
            f"voicebrush: cannot reach a voicebrush daemon at {url} (from {source}). Is it running? Start one with "
            "`voicebrush serve`, or leave out --server and $VOICEBRUSH_SERVER to run the command in this process."
        )
        assert not (tmp_path / "fox.png").exists()


@pytest.fixture
def nothing_on_the_default_port():
    """127.0.0.1:7860 bound but not listening, so a connection there is refused for the
    whole test whatever else runs on this machine."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        holder.bind(("127.0.0.1", DEFAULT_PORT))
    except OSError as exc:
        holder.close()
        raise AssertionError(f"port {DEFAULT_PORT} is taken on this machine ({exc}); this test needs it free of any daemon") from None
    yield
    holder.close()


def test_with_no_daemon_anywhere_transcribe_loads_only_the_speech_model_here(nothing_on_the_default_port, tmp_path):
    """The newcomer's `voicebrush transcribe memo.wav`: no daemon, the real preset (sd2),
    whose 5 GB image model is not on this machine. Only Whisper is loaded."""
    env = daemon_env(VOICEBRUSH_SERVER="", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty-hf"))
    result = run("transcribe", str(SPEECH / "fox.mp3"), "--preset", "sd2", "--asr-model", "tiny.en", "--format", "json", "--device", "cpu", "--data-dir", str(tmp_path / "data"), env=env)
    assert result.returncode == 0, result.stderr
    assert "no daemon at http://127.0.0.1:7860; transcribing in this process (Whisper tiny.en, faster-whisper)" in result.stderr
    body = json.loads(result.stdout)
    assert "fox" in body["text"].lower() and body["model"] == "tiny.en"
    assert "listening" not in result.stdout + result.stderr


def test_with_no_daemon_a_missing_image_model_is_one_line_that_offers_the_tiny_preset(nothing_on_the_default_port, tmp_path):
    env = daemon_env(VOICEBRUSH_SERVER="", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty-hf"))
    result = run("generate", "a fox", "-o", str(tmp_path / "fox.png"), "--preset", "sd2-base", "--data-dir", str(tmp_path / "data"), env=env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("voicebrush:")]
    assert "no daemon at http://127.0.0.1:7860; running this command in this process" in lines[0]
    assert "stable-diffusion-2-1-base" in lines[1] and "--preset tiny" in lines[1] and len(lines) == 2
    assert "Traceback" not in result.stderr and "listening" not in result.stdout


def test_a_token_error_names_the_cli_options(start_daemon, tmp_path):
    daemon = start_daemon(token="the-right-token")
    for token_args, env in ((("--token", "wrong"), daemon_env(VOICEBRUSH_TOKEN="")), ((), daemon_env(VOICEBRUSH_TOKEN="also-wrong"))):
        result = run("history", "list", "--server", daemon.url, *token_args, env=env)
        assert result.returncode == 1
        assert result.stderr.strip() == (
            f"voicebrush: the daemon at {daemon.url} refused the token. Pass the token it was started with: "
            "--token TOKEN, or set $VOICEBRUSH_TOKEN."
        )
    generate = run("generate", "a fox", "-o", str(tmp_path / "fox.png"), "--server", daemon.url, env=daemon_env(VOICEBRUSH_TOKEN="wrong"))
    assert generate.returncode == 1 and "--token TOKEN, or set $VOICEBRUSH_TOKEN" in generate.stderr
    assert "voicebrush settings" not in generate.stderr  # the plugins' wording
    result = run("history", "list", "--server", daemon.url, env=daemon_env(VOICEBRUSH_TOKEN="the-right-token"))
    assert result.returncode == 0, result.stderr
    assert "(no jobs yet)" in result.stdout
