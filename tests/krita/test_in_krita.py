"""The Krita plugin inside real Krita (Debian's, under Xvfb), installed from the built zip.

One Krita launch runs every test in tests/krita/inside/ through a test-driver
plugin that calls pytest inside Krita and exits with its code: `check_*.py` first,
then `then_*.py` once Krita's event loop has caught up (see the driver's docstring).
Krita that cannot start, a missing or stale result file, zero tests or any failure
fails here.
"""

import builtins
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import wave
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
IMPORTER = Path("/usr/share/krita/pykrita/plugin_importer/plugin_importer.py")
KRITA_TIMEOUT_S = 900  # about 5 minutes on an idle 2-core machine; a loaded one needs room
SPEECH = ROOT / "tests" / "fixtures" / "speech"


def install_with_krita_importer(zip_path: Path, resources_dir: Path) -> list:
    """What Tools > Scripts > Import Python Plugin from File does, with Krita's own code."""
    spec = importlib.util.spec_from_file_location("krita_plugin_importer", IMPORTER)
    module = importlib.util.module_from_spec(spec)
    builtins.i18n = getattr(builtins, "i18n", lambda text: text)  # Krita defines it globally
    spec.loader.exec_module(module)
    return module.PluginImporter(str(zip_path), str(resources_dir), lambda plugin: True).import_all()


def build_zip(output: Path) -> Path:
    subprocess.run([sys.executable, str(ROOT / "plugins" / "krita" / "package.py"), "--output", str(output)],
                   check=True, capture_output=True)
    return output


def virtual_microphone(home: Path, clip: Path) -> Path:
    """An ALSA `filemic` device that plays `clip` (16 kHz mono s16 WAV) as microphone input."""
    with wave.open(str(clip), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        pcm = wav.readframes(wav.getnframes())
    raw = home / "microphone.raw"
    # Silence after the speech, so a recording that runs on past the clip reads zeros.
    raw.write_bytes(pcm + b"\0" * 16000 * 2 * 10)
    (home / ".asoundrc").write_text(
        'pcm.filemic { type file; slave.pcm "null"; file "/dev/null"; infile "%s"; format "raw";'
        ' hint { show on; description "voicebrush test microphone" } }\n' % raw)
    return raw


def warm_up(url: str) -> None:
    """One tiny generation first, so timings inside Krita are not the daemon's first-call cost."""
    request = urllib.request.Request(
        url + "/v1/images/generations", data=json.dumps({"prompt": "warm up", "size": "64x64", "steps": 1}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200


@pytest.fixture(scope="module")
def krita_run(tiny_daemon, tmp_path_factory):
    krita = shutil.which("krita")
    xvfb_run = shutil.which("xvfb-run")
    assert krita and xvfb_run, "Krita and xvfb-run are needed (Debian: apt-get install krita xvfb xauth)"
    assert IMPORTER.exists(), "Krita's plugin importer is missing: %s" % IMPORTER

    base = tmp_path_factory.mktemp("krita")
    home, results = base / "home", base / "results"
    for folder in (home, results, home / "runtime", home / "tmp", home / ".config"):
        folder.mkdir(parents=True, exist_ok=True)
    os.chmod(home / "runtime", 0o700)
    resources = home / ".local" / "share" / "krita"
    resources.mkdir(parents=True)

    imported = install_with_krita_importer(build_zip(base / "voicebrush-krita.zip"), resources)
    assert [p["name"] for p in imported] == ["voicebrush"]
    assert (resources / "actions" / "voicebrush.action").exists()
    pykrita = resources / "pykrita"
    shutil.copy(HERE / "driver" / "voicebrush_tests.desktop", pykrita)
    shutil.copytree(HERE / "driver" / "voicebrush_tests", pykrita / "voicebrush_tests")
    (home / ".config" / "kritarc").write_text(
        "[python]\nenable_voicebrush=true\nenable_voicebrush_tests=true\n"
        "[voicebrush]\nserver=%s\n" % tiny_daemon.url)
    # Another Krita on this machine must not swallow this one.
    (home / ".config" / "kritadisplayrc").write_text("[General]\nEnableSingleApplication=false\n")
    raw = virtual_microphone(home, SPEECH / "demo_prompt.wav")

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(home / "runtime"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "TMPDIR": str(home / "tmp"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "VOICEBRUSH_KRITA_TESTS": str(HERE / "inside"),
        "VOICEBRUSH_KRITA_RESULTS": str(results),
        "VOICEBRUSH_TEST_SERVER": tiny_daemon.url,
        "VOICEBRUSH_TEST_SPEECH": str(SPEECH),
        "VOICEBRUSH_TEST_MIC_RAW": str(raw),
        "VOICEBRUSH_KRITA_WATCHDOG_S": str(KRITA_TIMEOUT_S - 60),
    }
    if os.environ.get("VOICEBRUSH_KRITA_K"):
        env["VOICEBRUSH_KRITA_K"] = os.environ["VOICEBRUSH_KRITA_K"]
    warm_up(tiny_daemon.url)
    junit = results / "junit.xml"
    assert not junit.exists() and not (results / "junit-then.xml").exists()
    started = time.monotonic()
    for attempt in range(3):
        # xvfb-run -a takes the first free display from -n on; two runs starting together can both
        # pick it, and the loser's Krita cannot connect. Start from a number of our own, and retry that.
        display = str(100 + (os.getpid() * 7 + attempt * 97) % 800)
        process = subprocess.run(
            ["timeout", "-k", "5", str(KRITA_TIMEOUT_S), xvfb_run, "-a", "-n", display, "-s",
             "-screen 0 1920x1080x24", krita, "--nosplash"],
            env=env, cwd=str(base), capture_output=True, text=True)
        if "could not connect to display" not in process.stderr or junit.exists():
            break
    elapsed = time.monotonic() - started
    log = process.stdout[-20000:] + "\n--- stderr ---\n" + process.stderr[-8000:]
    (base / "krita.log").write_text(log)
    return {"rc": process.returncode, "log": log, "junit": junit, "junit_then": results / "junit-then.xml",
            "results": results, "elapsed": elapsed, "started": started}


def junit_cases(junit):
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    return suite.findall("testcase")


def test_all_inner_tests_pass_in_real_krita(krita_run):
    log = krita_run["log"]
    assert krita_run["rc"] != 124, "Krita did not finish in %d s (a plugin error leaves it idle):\n%s" % (
        KRITA_TIMEOUT_S, log)
    cases = []
    for junit in (krita_run["junit"], krita_run["junit_then"]):
        assert junit.exists(), "Krita wrote no %s (rc %s):\n%s" % (junit.name, krita_run["rc"], log)
        cases += junit_cases(junit)
    broken = ["%s: %s" % (case.get("name"), (child.get("message") or child.text or "")[:2000])
              for case in cases for child in case if child.tag in ("failure", "error", "skipped")]
    assert not broken, "inside Krita:\n" + "\n".join(broken) + "\n\n" + log[-6000:]
    assert len(cases) >= 10, "only %d tests ran inside Krita:\n%s" % (len(cases), log)
    assert krita_run["rc"] == 0, log
    print("Krita run with %d inner tests: %.1f s" % (len(cases), krita_run["elapsed"]))
    slowest = sorted(cases, key=lambda case: -float(case.get("time") or 0))[:8]
    print("slowest inside Krita: " + ", ".join("%s %.1f s" % (c.get("name"), float(c.get("time") or 0)) for c in slowest))
    # VOICEBRUSH_KRITA_SCREENSHOTS=docs/ refreshes the README's pictures of the plugin.
    keep = os.environ.get("VOICEBRUSH_KRITA_SCREENSHOTS")
    if keep:
        for picture in ("krita-docker.png", "krita-modes.png", "krita-fill-window.png", "krita-storyboard.png"):
            shutil.copy(krita_run["results"] / picture, Path(keep) / picture)
    timings = krita_run["results"] / "timings.txt"
    if timings.exists():
        print(timings.read_text())
