"""The Krita plugin's code on PyQt6, the Qt of Krita 6.

Debian ships only Krita 5 (PyQt5; tested for real in tests/krita/). Krita 6 cannot be
installed here, so this runs the same plugin code on PyQt6 from PyPI (installed by
`make install` into .cache/pyqt6), offscreen, with a stand-in for Krita's `krita` module
(tests/plugins/pyqt6/krita.py): the docker's panel and its worker threads, the blocking
scripting API, krita_glue's pixel conversion, and recording through Qt 6's
QAudioSource from a PulseAudio server's virtual microphone, against a real
`--preset tiny` daemon.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from voicebrush_testing import FIXTURES, ROOT, free_port

PYQT6 = ROOT / ".cache" / "pyqt6"
HERE = ROOT / "tests" / "plugins" / "pyqt6"


@pytest.fixture
def sound_server(tmp_path):
    """A private PulseAudio server whose default source reads a FIFO: (PULSE_SERVER, fifo)."""
    pulseaudio = shutil.which("pulseaudio")
    assert pulseaudio, "pulseaudio is missing: `make test` installs it (Debian package pulseaudio)"
    runtime = tmp_path / "pulse"
    runtime.mkdir()
    fifo = runtime / "mic.fifo"
    socket_path = runtime / "native"
    script = runtime / "voicebrush.pa"
    script.write_text(
        "load-module module-native-protocol-unix auth-anonymous=1 socket=%s\n"
        "load-module module-null-sink sink_name=silence\n"
        "load-module module-pipe-source source_name=voicebrush_mic file=%s format=s16le rate=16000 channels=1\n"
        "set-default-source voicebrush_mic\n" % (socket_path, fifo))
    env = dict(os.environ, HOME=str(runtime), XDG_RUNTIME_DIR=str(runtime))
    log = open(runtime / "pulseaudio.log", "wb")
    server = subprocess.Popen(
        [pulseaudio, "-n", "-F", str(script), "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
         "--use-pid-file=no", "--disable-shm=yes", "--log-target=stderr"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not (socket_path.exists() and fifo.exists()):
        assert server.poll() is None and time.monotonic() < deadline, (runtime / "pulseaudio.log").read_text()[-2000:]
        time.sleep(0.05)
    yield "unix:%s" % socket_path, fifo
    server.terminate()
    server.wait(timeout=10)
    log.close()


def test_the_plugin_runs_on_pyqt6(tiny_daemon, sound_server, tmp_path):
    assert (PYQT6 / "PyQt6").is_dir(), "PyQt6 is missing from %s: run `make install`" % PYQT6
    pulse_server, fifo = sound_server
    out = tmp_path / "report.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PULSE_SERVER=pulse_server, HOME=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(PYQT6), str(HERE), str(ROOT / "plugins" / "krita")]))
    result = subprocess.run(
        [sys.executable, str(HERE / "drive_plugin.py"), tiny_daemon.url, str(FIXTURES / "speech" / "fox_44k_stereo.wav"),
         "http://127.0.0.1:%d" % free_port(), str(out), str(fifo)],
        env=env, capture_output=True, timeout=300)
    assert result.returncode == 0 and out.exists(), result.stderr.decode(errors="replace")[-3000:]
    report = json.loads(out.read_text())

    assert report["qt6"] is True and report["pyqt"].startswith("6.")
    assert report["registered"] == {"dockers": ["voicebrush"], "extensions": ["VoicebrushExtension"]}
    assert report["connected"], report["status"]

    docker = report["docker"]
    assert docker["ok"], docker
    assert docker["layer"]["name"] == "a lighthouse in a storm" and docker["layer"]["rect"] == [0, 0, 256, 256]
    assert docker["above_background"] == ["Background", "a lighthouse in a storm"] and docker["active_is_new"]
    assert docker["exact_pixels"]  # PNG -> QImage -> Krita's BGRA bytes, unchanged
    assert docker["progress_steps"] == [1, 2, 3, 4] and docker["previews"] >= 1
    assert docker["last_seed"] == 7 and "seed 7" in docker["message"]

    selection = report["selection"]
    assert selection["layer"]["rect"] == [10, 20, 120, 60] and selection["layer"]["bytes"] == 120 * 60 * 4
    assert selection["generated_size"] == [256, 128]  # the selection's 2:1, in multiples of 8

    assert report["api"]["layer"]["name"] == "an old stone castle" and report["api"]["top"] == "an old stone castle"
    heard = report["transcript"]["text"].lower()  # "a red fox in the snow", see test_speech_heard_elsewhere.py
    assert sum(word in heard for word in ("red", "fox", "snow")) >= 2, heard

    down = report["down"]
    assert down["code"] == "unreachable" and down["seconds"] < 10 and down["generate_enabled"]
    assert "Cannot reach the voicebrush daemon" in down["message"]

    recorder = report["recorder"]
    assert recorder["devices"], recorder  # the sound server's virtual microphone, seen through QMediaDevices
    # The fed samples arrive through QAudioSource unchanged, from the start of the speech.
    # (Qt's PulseAudio source drops part of a pipe-fed stream here, as plain QAudioSource
    # does without the plugin, so only the first 32 ms are required whole.)
    assert recorder["speech_at"] >= 0 and recorder["speech_unbroken"] >= 1024, recorder
    assert recorder["levels"] > 0 and recorder["max_level"] > 0
