"""Helpers for the streaming tests: spoken clips as raw PCM, paced like a recorder, and WAVs of them.

Imported by name (tests/daemon is on sys.path when pytest collects these modules).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SPEECH = ROOT / "tests" / "fixtures" / "speech"
CHUNK_S = 0.1  # a recorder's buffer


def clip_pcm(name: str = "demo_prompt.wav", rate: int = 16_000) -> bytes:
    """A shipped clip as 16-bit mono PCM at `rate` (decoded and resampled by the daemon's own decoder)."""
    import av

    from voicebrush_daemon.audio import decode_audio

    samples = decode_audio((SPEECH / name).read_bytes())
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    if rate == 16_000:
        return pcm.tobytes()
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 16_000
    frame.pts = 0
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)] + [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out).astype("<i2").tobytes()


def silence(seconds: float, rate: int = 16_000, noise: float = 0.0) -> bytes:
    """Digital silence, or faint noise (no speech in it) when `noise` is above 0."""
    count = int(seconds * rate)
    if noise <= 0:
        return b"\0\0" * count
    rng = np.random.default_rng(7)
    return (rng.normal(0, noise, count) * 32767).clip(-32767, 32767).astype("<i2").tobytes()


def wav(pcm: bytes, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm)
    return out.getvalue()


def chunks(pcm: bytes, rate: int = 16_000, seconds: float = CHUNK_S) -> list[bytes]:
    size = max(2, int(rate * seconds) * 2)
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


async def paced(pieces, rate: int = 16_000, realtime: bool = True, marks: dict | None = None):
    """An async body that yields chunks as a recorder would (each after its duration)."""
    started = time.monotonic()
    sent = 0.0
    for piece in pieces:
        if realtime:
            delay = started + sent - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        sent += len(piece) / 2 / rate
        yield piece
    if marks is not None:
        marks["body_end"] = time.monotonic()


def pcm_type(rate: int = 16_000) -> dict[str, str]:
    return {"Content-Type": f"audio/L16;rate={rate};channels=1"}


async def read_sse(response, events: list, stamps: list | None = None) -> None:
    """(event, data) pairs of an aiohttp SSE response into `events` until the stream ends."""
    name, data = None, []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if name is not None:
                events.append((name, json.loads("\n".join(data))))
                if stamps is not None:
                    stamps.append(time.monotonic())
            name, data = None, []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
