"""`voicebrush serve` starting up, as an operator meets it: bind first, one line for each
way a start can fail, "listening" only once it is true, and none of the libraries' noise."""

from __future__ import annotations

import socket
import subprocess
import sys

from voicebrush_testing import ROOT, daemon_command, daemon_env, launch_daemon

# The libraries' warnings. (Their progress bars show only for work longer than
# LONG_WORK_S, which on a loaded machine even the tiny model's load can be: that is
# checked on the bars themselves below, not by timing a load.)
LIBRARY_NOISE = ("requires torchvision", "[transformers]", "[diffusers]", "Traceback")
LOADING = "loading the models"


def serve(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(daemon_command("serve", "--preset", "tiny", *args), capture_output=True, text=True, env=env or daemon_env(), timeout=timeout, cwd=ROOT)


def voicebrush_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("voicebrush:")]


def test_a_port_held_by_a_voicebrush_daemon_is_named_before_any_model_loads(tiny_daemon, tmp_path):
    port = tiny_daemon.url.rsplit(":", 1)[1]
    result = serve("--port", port, "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    (line,) = voicebrush_lines(result.stderr)
    assert f"a voicebrush daemon (version " in line and f"already answers on http://127.0.0.1:{port}" in line and "--port" in line
    assert LOADING not in result.stderr  # it bound first: no model was loaded for nothing
    assert "listening" not in result.stdout


def test_a_port_held_by_another_program_is_said_so(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)  # accepts, never answers like a daemon
        result = serve("--port", str(other.getsockname()[1]), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    (line,) = voicebrush_lines(result.stderr)
    assert "already in use by another program" in line and "--port" in line
    assert LOADING not in result.stderr and "listening" not in result.stdout


def test_a_missing_device_stops_the_start_in_one_line_with_code_2(tmp_path):
    import torch

    # Whichever accelerator this machine lacks (here: CUDA; on a CUDA box: Apple's mps).
    device, absent = ("cuda", "no CUDA GPU") if not torch.cuda.is_available() else ("mps", "no Apple GPU")
    result = serve("--device", device, "--port", "0", "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2, result.stderr
    (line,) = voicebrush_lines(result.stderr)
    assert f"device {device} was asked for" in line and absent in line and "--device cpu" in line
    assert "Traceback" not in result.stderr and "listening" not in result.stdout
    assert LOADING not in result.stderr
    # The same for a one-shot command that would run the models in this process.
    one_shot = subprocess.run(daemon_command("generate", "a fox", "-o", str(tmp_path / "fox.png"), "--in-process", "--preset", "tiny", "--device", device, "--data-dir", str(tmp_path / "data")), capture_output=True, text=True, env=daemon_env(), timeout=180, cwd=ROOT)
    assert one_shot.returncode == 2
    assert f"device {device} was asked for" in voicebrush_lines(one_shot.stderr)[-1] and "Traceback" not in one_shot.stderr


def test_a_data_dir_in_use_by_a_running_daemon_is_refused(tiny_daemon):
    result = serve("--port", "0", "--data-dir", str(tiny_daemon.data_dir))
    assert result.returncode == 1
    (line,) = voicebrush_lines(result.stderr)
    assert f"(pid {tiny_daemon.process.pid}) is using the data dir {tiny_daemon.data_dir}" in line and "--data-dir" in line


def test_missing_weights_print_no_listening_line_and_offer_the_tiny_preset(tmp_path):
    env = daemon_env(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = subprocess.run(daemon_command("serve", "--preset", "sd2", "--port", "0", "--data-dir", str(tmp_path / "data")), capture_output=True, text=True, env=env, timeout=180, cwd=ROOT)
    assert result.returncode == 2
    (line,) = voicebrush_lines(result.stderr)
    assert "stable-diffusion-2-1" in line and "voicebrush models --fetch sd2" in line and "--preset tiny" in line
    assert "listening" not in result.stdout


def test_serve_says_listening_once_ready_and_nothing_from_the_libraries(tmp_path):
    """A first start (the tiny model is built, then loaded): our lines only."""
    daemon = launch_daemon(tmp_path / "fresh")
    try:
        # launch_daemon read the "listening" line; by then the models were ready.
        import urllib.request

        with urllib.request.urlopen(daemon.url + "/v1/health", timeout=10) as response:
            assert response.status == 200
    finally:
        assert daemon.stop() == 0
    log = daemon.log()
    assert LOADING in log and "models ready" in log
    for noise in LIBRARY_NOISE:
        assert noise not in log, noise


def test_one_shot_commands_print_no_library_noise(tmp_path):
    env = daemon_env(HF_HUB_OFFLINE="1")
    common = ("--in-process", "--preset", "tiny", "--device", "cpu", "--data-dir", str(tmp_path / "data"))
    runs = [
        ("models", "--data-dir", str(tmp_path / "data")),
        ("generate", "a red fox", "-o", str(tmp_path / "fox.png"), "--steps", "1", "--size", "64x64", *common),
        ("transcribe", str(ROOT / "tests" / "fixtures" / "speech" / "fox.mp3"), *common),
    ]
    for args in runs:
        result = subprocess.run(daemon_command(*args), capture_output=True, text=True, env=env, timeout=240, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        for noise in LIBRARY_NOISE:
            assert noise not in result.stderr + result.stdout, (args[0], noise, result.stderr)


def test_library_progress_bars_are_kept_but_appear_only_for_long_work():
    """Downloads and long loads keep their bars (tqdm shows them after LONG_WORK_S);
    a quick load's bar never shows."""
    code = (
        "from voicebrush_daemon.cli.console import LONG_WORK_S, quiet_libraries\n"
        "quiet_libraries()\n"
        "import diffusers.utils.logging as d, transformers.utils.logging as t, huggingface_hub.utils as h\n"
        "bars = [d.tqdm(total=3), t.tqdm(total=3), h.tqdm(total=3)]\n"
        "print([(bar.disable, bar.delay == LONG_WORK_S > 0) for bar in bars])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=daemon_env(), timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[(False, True), (False, True), (False, True)]"
