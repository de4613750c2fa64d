"""Uploaded audio bytes to the samples every speech engine takes.

Decoding and resampling both go through PyAV (FFmpeg), which faster-whisper already
brings, so any container a browser, phone or recorder sends works the same way and
no system ffmpeg is needed. Bytes are decoded from memory; nothing touches a path.
"""

from __future__ import annotations

import io

import av
import numpy as np

from .errors import InvalidAudio
from .speech.base import SAMPLE_RATE

# The demuxers FFmpeg may pick for an upload: the contract's formats (wav, flac, ogg,
# mp3, webm, m4a) and a few plain audio containers. Playlist and concat demuxers
# (hls, concat, ...) are left out because they would open other files or URLs.
ALLOWED_DEMUXERS = (
    "wav",
    "w64",
    "flac",
    "ogg",
    "mp3",
    "aac",
    "matroska,webm",
    "mov,mp4,m4a,3gp,3g2,mj2",
    "aiff",
    "caf",
)

# An upload is at most 25 MB, but a tightly compressed one could decode to days of
# samples; an hour is far beyond any spoken prompt and still a few hundred MB.
MAX_SECONDS = 3600.0


def decode_audio(data: bytes, *, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Decode an audio file held in memory to float32 mono samples at 16 kHz.

    Raises InvalidAudio for anything that is not decodable audio, that decodes to no
    samples, or that is longer than `max_seconds`; never another exception.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidAudio(f"expected audio bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise InvalidAudio("the audio file is empty")
    try:
        samples = _decode(bytes(data), max_seconds)
    except InvalidAudio:
        raise
    except MemoryError:
        raise InvalidAudio("the audio is too large to decode") from None
    except Exception as exc:  # FFmpeg reports corrupt input through many exception types
        raise InvalidAudio(f"the file could not be decoded as audio ({_reason(exc)})") from None
    if samples.size == 0:
        raise InvalidAudio("the audio file contains no samples")
    return samples


def duration_seconds(samples: np.ndarray) -> float:
    """Length of decoded samples (as decode_audio returns them) in seconds."""
    return float(len(samples)) / SAMPLE_RATE


def _decode(data: bytes, max_seconds: float) -> np.ndarray:
    max_samples = int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    with av.open(
        io.BytesIO(data),
        mode="r",
        metadata_errors="ignore",
        container_options={"format_whitelist": ",".join(ALLOWED_DEMUXERS)},
    ) as container:
        if not container.streams.audio:
            raise InvalidAudio("the file has no audio stream")
        stream = container.streams.audio[0]
        # Packed float mono at 16 kHz: exactly what the engines take, no int16 round trip.
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in _decodable_frames(container, stream):
            for out in resampler.resample(frame):
                total += _append(chunks, out)
            if total > max_samples:
                raise InvalidAudio(f"the audio is longer than {max_seconds:.0f} seconds")
        for out in resampler.resample(None):  # flush what the resampler buffered
            total += _append(chunks, out)
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    samples = np.concatenate(chunks)[:max_samples]
    # Some decoders (and damaged files) yield NaN or out-of-range values; Whisper's
    # log-mel front end would turn those into garbage or NaN logits.
    np.nan_to_num(samples, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    np.clip(samples, -1.0, 1.0, out=samples)
    return samples


def _decodable_frames(container, stream):
    """Decoded frames, skipping the damaged packets FFmpeg can step over.

    A file that is broken from its first packet still fails: with no frames at all
    the caller reports no samples.
    """
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            continue
        yield from frames


def _append(chunks: list[np.ndarray], frame) -> int:
    array = frame.to_ndarray().reshape(-1).astype(np.float32, copy=False)
    if array.size:
        chunks.append(array)
    return int(array.size)


def _reason(exc: Exception) -> str:
    # FFmpegError's str() carries an errno and the input's name ("<none>" for memory);
    # its strerror alone reads better.
    text = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]
