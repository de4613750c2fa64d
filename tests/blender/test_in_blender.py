"""The Blender add-on in real Blender (the bpy module from PyPI), against a tiny daemon.

The extension zip is built by plugins/blender/package.py, checked with Blender's
own `blender_ext.py validate`, installed with `bpy.ops.extensions.package_install_files`
into a temporary BLENDER_USER_RESOURCES, and then exercised by the checks in
tests/blender/inside/, run by pytest in one separate Python process (bpy holds
global state, and Blender puts an installed extension's wheels on sys.path at startup).
"""

import ast
import importlib.util
import json
import os
import subprocess
import sys
import wave
import xml.etree.ElementTree as ElementTree
import zipfile
from pathlib import Path

import pytest

from voicebrush_testing import parse_python

ROOT = Path(__file__).resolve().parents[2]
INSIDE = Path(__file__).resolve().parent / "inside"
SPEECH = ROOT / "tests" / "fixtures" / "speech" / "demo_prompt.wav"
PLATFORM_WHEELS = ("manylinux", "win_amd64", "macosx_11_0_arm64", "x86_64")


def _load_package_script():
    spec = importlib.util.spec_from_file_location("voicebrush_blender_package", ROOT / "plugins" / "blender" / "package.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


package = _load_package_script()


def inner_test_names():
    """Names of the test functions in tests/blender/inside, read without importing them (they need bpy)."""
    names = []
    for path in sorted(INSIDE.glob("test_*.py")):
        tree = parse_python(path.read_text(), str(path))
        names += ["%s::%s" % (path.stem, node.name) for node in tree.body
                  if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
    return names


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory):
    return Path(package.build(str(tmp_path_factory.mktemp("dist") / "voicebrush-blender.zip")))


@pytest.fixture(scope="module")
def blender_home(tmp_path_factory):
    """HOME with the ALSA virtual microphone `filemic` playing the spoken prompt; BLENDER_USER_RESOURCES beside it."""
    home = tmp_path_factory.mktemp("blender-home")
    raw = home / "speech.raw"
    with wave.open(str(SPEECH)) as clip:
        assert (clip.getframerate(), clip.getnchannels(), clip.getsampwidth()) == (16000, 1, 2)
        raw.write_bytes(clip.readframes(clip.getnframes()))
    (home / ".asoundrc").write_text(
        'pcm.filemic { type file; slave.pcm "null"; file "/dev/null"; infile "%s"; format "raw"; hint { show on } }\n'
        % raw)
    (home / "tmp").mkdir()
    (home / "user-resources").mkdir()
    return home


def blender_env(home, **extra):
    env = dict(os.environ)
    env.update(HOME=str(home), TMPDIR=str(home / "tmp"), BLENDER_USER_RESOURCES=str(home / "user-resources"))
    env.update(extra)
    return env


def test_package_validates_with_blender_ext(extension_zip):
    script = package.blender_ext_script()
    assert script is not None, "the bpy wheel (and its blender_ext.py) must be installed"
    result = subprocess.run([sys.executable, script, "validate", str(extension_zip)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(extension_zip) as archive:
        names = archive.namelist()
        manifest = archive.read("blender_manifest.toml").decode()
    assert 'id = "voicebrush"' in manifest and 'blender_version_min = "4.2.0"' in manifest
    for module in ("__init__.py", "operators.py", "panel.py", "preferences.py", "placement.py", "capture.py",
                   "voicebrush_client.py"):
        assert module in names
    assert "package.py" not in names
    wheels = [name for name in names if name.startswith("wheels/")]
    for project in ("sounddevice", "cffi"):
        for platform in PLATFORM_WHEELS:
            assert any(name.split("/")[1].startswith(project + "-") and (platform in name or name.endswith("-any.whl"))
                       for name in wheels), (project, platform, wheels)


def test_second_build_is_offline_and_fast(extension_zip, tmp_path):
    import time

    started = time.monotonic()
    package.build(str(tmp_path / "again.zip"), offline=True)
    assert time.monotonic() - started < 10


@pytest.fixture(scope="module")
def installed(extension_zip, blender_home):
    """The zip installed and enabled by Blender's own operator, in a fresh process."""
    result = subprocess.run([sys.executable, str(INSIDE / "install_extension.py"), str(extension_zip)],
                            capture_output=True, text=True, env=blender_env(blender_home), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_install_from_disk_enables_the_extension(installed):
    assert installed["result"] == ["FINISHED"]
    assert installed["enabled"]
    assert {"generate", "record", "cancel", "test_connection"} <= set(installed["operators"])
    # The bundled wheels for this platform (Linux x86_64) are unpacked; the others are not.
    assert "sounddevice.py" in installed["site_packages"]
    assert any(name.startswith("_cffi_backend") and name.endswith(".so") for name in installed["site_packages"])


@pytest.fixture(scope="module")
def inside_results(installed, blender_home, tiny_daemon):
    """Run tests/blender/inside in one Blender process; {test name: (outcome, message)}."""
    report = blender_home / "inside.xml"
    command = [sys.executable, "-m", "pytest", str(INSIDE), "--confcutdir", str(INSIDE), "-p", "no:cacheprovider",
               "-q", "--junitxml", str(report), "-o", "junit_family=xunit1"]
    env = blender_env(blender_home, VOICEBRUSH_TEST_SERVER=tiny_daemon.url, VOICEBRUSH_TEST_SPEECH=str(SPEECH))
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    print(result.stdout[-4000:])
    assert report.exists(), "Blender's test process died: %s" % (result.stdout + result.stderr)[-4000:]
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        name = "%s::%s" % (case.get("classname").rsplit(".", 1)[-1], case.get("name").split("[")[0])
        # A skip counts as a failure here: these checks must run.
        problem = next(iter(case.findall("failure") + case.findall("error") + case.findall("skipped")), None)
        outcome = "passed" if problem is None else problem.tag
        message = "" if problem is None else (problem.get("message") or "") + "\n" + (problem.text or "")
        previous = outcomes.get(name)
        if previous is None or previous[0] == "passed":
            outcomes[name] = (outcome, message)
    return outcomes


@pytest.mark.parametrize("name", inner_test_names())
def test_in_blender(inside_results, name):
    assert name in inside_results, "did not run in Blender: %s" % name
    outcome, message = inside_results[name]
    assert outcome == "passed", message
