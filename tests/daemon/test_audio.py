"""Decoding uploads: every container the contract names, resampling, and bad bytes."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
import soundfile

from conftest_speech import CLIPS, SPEECH, clip_bytes

from voicebrush_daemon.audio import decode_audio, duration_seconds
from voicebrush_daemon.errors import InvalidAudio

# Lengths of the committed clips as ffprobe reports them (seconds).
DURATIONS = {
    "demo_prompt.wav": 5.164,
    "fox_44k_stereo.wav": 3.713,
    "alley.flac": 4.731,
    "castle.ogg": 5.843,
    "fox.mp3": 3.788,  # includes the encoder's padding
    "harbour.webm": 5.171,
    "alley.m4a": 4.731,
}


def envelope(samples: np.ndarray) -> np.ndarray:
    """RMS per 20 ms, the shape of the speech regardless of codec."""
    frames = len(samples) // 320
    return np.sqrt((samples[: frames * 320].reshape(frames, 320) ** 2).mean(axis=1))


def wav_bytes(samples: np.ndarray, rate: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    out = io.BytesIO()
    soundfile.write(out, samples, rate, subtype=subtype, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_each_shipped_format_decodes_to_16k_mono_float32(name):
    samples = decode_audio(clip_bytes(name))
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert duration_seconds(samples) == pytest.approx(DURATIONS[name], abs=0.08)
    assert 0.3 < float(np.abs(samples).max()) <= 1.0


@pytest.mark.parametrize(
    "lossy, lossless",
    [("harbour.webm", "demo_prompt.wav"), ("alley.m4a", "alley.flac"), ("fox.mp3", "fox_44k_stereo.wav")],
)
def test_lossy_formats_decode_to_the_same_speech_as_lossless(lossy, lossless):
    a, b = envelope(decode_audio(clip_bytes(lossy))), envelope(decode_audio(clip_bytes(lossless)))
    # Codecs add a little delay; the best alignment within 100 ms must match closely.
    best = max(_aligned_correlation(a, b, shift) for shift in range(-5, 6))
    assert best > 0.95


def _aligned_correlation(a: np.ndarray, b: np.ndarray, shift: int) -> float:
    if shift < 0:
        a, b = b, a
        shift = -shift
    n = min(len(a) - shift, len(b))
    return float(np.corrcoef(a[shift : shift + n], b[:n])[0, 1])


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "FLOAT"])
def test_resamples_any_rate_and_sample_format_to_16k(rate, subtype):
    t = np.arange(int(rate * 1.5)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    samples = decode_audio(wav_bytes(tone, rate, subtype))
    assert len(samples) == pytest.approx(24_000, abs=40)
    spectrum = np.abs(np.fft.rfft(samples[2000:-2000]))
    peak_hz = np.argmax(spectrum) * 16_000 / len(samples[2000:-2000])
    assert peak_hz == pytest.approx(1000, abs=5)
    assert float(np.abs(samples).max()) == pytest.approx(0.5, abs=0.05)


def test_stereo_is_mixed_down_not_one_channel_dropped():
    t = np.arange(16_000) / 16_000
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    right = 0.5 * np.sin(2 * np.pi * 880 * t)
    samples = decode_audio(wav_bytes(np.stack([left, right], axis=1), 16_000))
    spectrum = np.abs(np.fft.rfft(samples))
    assert spectrum[440] > 0.3 * spectrum.max() and spectrum[880] > 0.3 * spectrum.max()


def test_decodes_from_a_bytearray_or_memoryview():
    data = clip_bytes("fox.mp3")
    assert len(decode_audio(bytearray(data))) == len(decode_audio(memoryview(data)))


def _zero_length_wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(b"")
    return out.getvalue()


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="PNG")
    return out.getvalue()


BAD_INPUTS = {
    "empty": b"",
    "text": b"this is not audio at all\n" * 20,
    "zero-length wav": _zero_length_wav(),
    "wav header only": _zero_length_wav()[:30],
    "png image": _png(),
    "random bytes": np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    "truncated flac": clip_bytes("alley.flac")[:200],
    # Playlist and concat demuxers would open other files; they must not be probed.
    "hls playlist": b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/hostname\n#EXT-X-ENDLIST\n",
    "ffconcat": b"ffconcat version 1.0\nfile '/usr/share/sounds/alsa/Front_Center.wav'\n",
    "json": b'{"prompt": "a red fox"}',
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bytes_that_are_not_audio_raise_invalid_audio(name):
    with pytest.raises(InvalidAudio) as info:
        decode_audio(BAD_INPUTS[name])
    assert str(info.value)  # a message a client can show


def test_not_bytes_at_all_is_invalid_audio():
    with pytest.raises(InvalidAudio):
        decode_audio("demo_prompt.wav")  # a path is never opened


def test_empty_and_sampleless_files_say_so():
    with pytest.raises(InvalidAudio, match="empty"):
        decode_audio(b"")
    with pytest.raises(InvalidAudio, match="no samples"):
        decode_audio(_zero_length_wav())


def test_audio_longer_than_the_limit_is_refused():
    with pytest.raises(InvalidAudio, match="longer than"):
        decode_audio(clip_bytes("castle.ogg"), max_seconds=2)


def test_damaged_files_give_samples_or_invalid_audio_never_another_error():
    rng = np.random.default_rng(2024)
    for name in sorted(CLIPS):
        data = clip_bytes(name)
        for _ in range(6):
            damaged = bytearray(data)
            if rng.random() < 0.5:
                damaged = damaged[: int(rng.integers(1, len(damaged)))]
            for pos in rng.integers(0, len(damaged), size=int(rng.integers(1, 40))):
                damaged[pos] = int(rng.integers(0, 256))
            try:
                samples = decode_audio(bytes(damaged))
            except InvalidAudio:
                continue
            assert samples.dtype == np.float32 and samples.size > 0
            assert np.all(np.isfinite(samples)) and float(np.abs(samples).max()) <= 1.0


def test_duration_seconds_counts_16k_samples():
    assert duration_seconds(np.zeros(24_000, dtype=np.float32)) == 1.5
    assert duration_seconds(np.zeros(0, dtype=np.float32)) == 0.0


def test_fixture_folder_documents_how_the_clips_were_made():
    script = (SPEECH / "make_clips.sh").read_text()
    for name in CLIPS:
        assert name in script
