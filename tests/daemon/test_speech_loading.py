"""Choosing the speech engine and weights; missing weights fail fast with one line.

The Hugging Face hub reads HF_HOME and HF_HUB_OFFLINE when it is imported, so the
cache cases run in a fresh interpreter with an empty cache of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from conftest_speech import ROOT, speech_data_dir

from voicebrush_daemon.models import ModelUnavailable
from voicebrush_daemon.settings import Settings
from voicebrush_daemon.speech import asr_model_name, load_transcriber
from voicebrush_daemon.speech.ct2_whisper import bundled_model_dir

__all__ = ["speech_data_dir"]  # fixture


def run_isolated(tmp_path: Path, script: str, **extra_env: str) -> dict:
    """Run `script` (which prints one JSON line last) with empty model caches, offline."""
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT / "daemon"),
        **extra_env,
    }
    env.pop("HF_HUB_CACHE", None)
    prelude = textwrap.dedent(
        f"""
        import json, socket, time
        from pathlib import Path
        # Failing fast means failing without waiting on a network: every connection
        # attempt is recorded and refused (a hub download would try one).
        CONNECTS = []
        def _refuse(self, address, *_):
            CONNECTS.append(repr(address))
            raise OSError("no network in this test")
        socket.socket.connect = _refuse
        socket.socket.connect_ex = lambda self, address: (CONNECTS.append(repr(address)), 111)[1]
        from voicebrush_daemon.models import ModelUnavailable
        from voicebrush_daemon.settings import Settings
        from voicebrush_daemon.speech import describe_asr_models, load_transcriber
        DATA = Path({str(tmp_path / "data")!r})
        def attempt(**kw):
            allow = kw.pop("allow_download", False)
            start, tried = time.monotonic(), len(CONNECTS)
            try:
                t = load_transcriber(Settings(data_dir=DATA, device="cpu", **kw), allow_download=allow)
                return {{"loaded": [t.engine, t.model_id], "seconds": time.monotonic() - start, "connects": CONNECTS[tried:]}}
            except ModelUnavailable as exc:
                return {{"error": str(exc), "seconds": time.monotonic() - start, "connects": CONNECTS[tried:]}}
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_missing_models_fail_within_seconds_with_one_line(tmp_path):
    out = run_isolated(
        tmp_path,
        """
        print(json.dumps([
            attempt(preset="sd2"),
            attempt(preset="sd2", asr_engine="openai-whisper"),
            attempt(preset="sd2", allow_download=True),
            attempt(preset="sd2-base", asr_engine="openai-whisper", allow_download=True),
            attempt(preset="/models/my-checkpoint.safetensors", asr_model="Systran/faster-whisper-medium.en"),
        ]))
        """,
    )
    for result, model in zip(out, ["small.en", "small.en", "small.en", "small.en", "Systran/faster-whisper-medium.en"]):
        assert "error" in result, result
        message = result["error"]
        assert model in message and "voicebrush models" in message and "\n" not in message
        # Within seconds however busy the machine: no connection was even tried (a
        # timing bound here failed once at 5.8 s under load, with nothing wrong).
        assert result["connects"] == [], result


def test_models_listing_says_what_is_missing_and_how_to_fetch_it(tmp_path):
    rows = run_isolated(tmp_path, "print(json.dumps(describe_asr_models(Settings(preset='sd2', data_dir=DATA))))")
    by_key = {(r["name"], r["engine"]): r for r in rows}
    selected = [r for r in rows if r["selected"]]
    assert [(r["name"], r["engine"]) for r in selected] == [("small.en", "faster-whisper")]
    small = by_key[("small.en", "faster-whisper")]
    assert small["status"] == "missing" and small["location"] is None
    assert small["fetch"] == "voicebrush models --fetch small.en"
    assert by_key[("small.en", "openai-whisper")]["fetch"] == "voicebrush models --fetch small.en --asr-engine openai-whisper"
    for engine in ("faster-whisper", "openai-whisper"):
        tiny = by_key[("tiny.en", engine)]
        assert tiny["status"] == "bundled" and tiny["fetch"] is None


def test_cached_models_load_from_the_caches_without_network(tmp_path):
    # Lay the bundled tiny.en out as the hub and openai-whisper would have cached it.
    snapshot = tmp_path / "hf" / "hub" / "models--Systran--faster-whisper-tiny.en" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    for f in bundled_model_dir().iterdir():
        (snapshot / f.name).symlink_to(f)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("a" * 40)
    out = run_isolated(
        tmp_path,
        """
        from voicebrush_daemon.speech.ct2_whisper import ensure_openai_checkpoint
        import os, shutil
        root = Path(os.environ["XDG_CACHE_HOME"]) / "whisper"
        root.mkdir(parents=True)
        shutil.copy(ensure_openai_checkpoint(DATA / "models"), root / "base.en.pt")
        rows = {(r["name"], r["engine"]): r for r in describe_asr_models(Settings(preset="sd2", asr_model="tiny.en", data_dir=DATA))}
        print(json.dumps([
            attempt(preset="sd2", asr_model="tiny.en"),
            attempt(preset="sd2", asr_model="base.en", asr_engine="openai-whisper"),
            rows[("tiny.en", "faster-whisper")],
        ]))
        """,
    )
    assert out[0]["loaded"] == ["faster-whisper", "tiny.en"]
    assert out[1]["loaded"] == ["openai-whisper", "base.en"]
    assert out[2]["status"] == "cached" and "models--Systran--faster-whisper-tiny.en" in out[2]["location"]


def test_preset_defaults():
    assert asr_model_name(Settings(preset="sd2")) == "small.en"
    assert asr_model_name(Settings(preset="sd2-base")) == "small.en"
    assert asr_model_name(Settings(preset="/models/anything.safetensors")) == "small.en"
    assert asr_model_name(Settings(preset="tiny")) == "tiny.en"
    assert asr_model_name(Settings(preset="tiny", asr_model="base.en")) == "base.en"


@pytest.mark.parametrize(
    "settings, fragment",
    [
        (Settings(preset="tiny", asr_model="large-v9"), "unknown Whisper model large-v9"),
        (Settings(preset="tiny", asr_model="large-v9", asr_engine="openai-whisper"), "unknown Whisper model large-v9"),
        (Settings(preset="tiny", asr_model="/nowhere/model.pt", asr_engine="openai-whisper"), "no such file"),
        (Settings(preset="tiny", asr_engine="whisper.cpp"), "unknown speech engine"),
    ],
)
def test_bad_names_are_model_unavailable(settings, fragment, tmp_path):
    with pytest.raises(ModelUnavailable, match=fragment):
        load_transcriber(replace(settings, data_dir=tmp_path))


def test_a_path_must_suit_the_engine(tmp_path):
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"not used")
    with pytest.raises(ModelUnavailable, match="CTranslate2 model folder"):
        load_transcriber(Settings(asr_model=str(pt), data_dir=tmp_path))
    with pytest.raises(ModelUnavailable, match=r"\.pt checkpoint"):
        load_transcriber(Settings(asr_model=str(bundled_model_dir()), asr_engine="openai-whisper", data_dir=tmp_path))


def test_local_model_folder_and_checkpoint_load_by_path(tmp_path, speech_data_dir):
    from voicebrush_daemon.speech.ct2_whisper import ensure_openai_checkpoint

    folder = load_transcriber(Settings(asr_model=str(bundled_model_dir()), data_dir=tmp_path, device="cpu"))
    assert folder.engine == "faster-whisper" and folder.model_id == "model"
    folder.close()
    checkpoint = ensure_openai_checkpoint(speech_data_dir / "models")
    pt = load_transcriber(Settings(asr_model=str(checkpoint), asr_engine="openai-whisper", data_dir=tmp_path, device="cpu"))
    assert pt.engine == "openai-whisper" and pt.model_id == checkpoint.stem
    pt.close()


def test_a_damaged_checkpoint_is_model_unavailable_not_a_traceback(tmp_path):
    damaged = tmp_path / "small.en.pt"
    damaged.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(ModelUnavailable, match="could not be loaded") as info:
        load_transcriber(Settings(asr_model=str(damaged), asr_engine="openai-whisper", data_dir=tmp_path, device="cpu"))
    assert "\n" not in str(info.value)
