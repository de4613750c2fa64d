"""Raw PCM as it is recorded, to the growing 16 kHz samples every speech engine takes.

A take arrives as chunks of 16-bit little-endian mono PCM at the recorder's rate,
cut wherever the network cut them (a sample may be split across two chunks).
Resampling goes through PyAV's resampler (FFmpeg's swresample), the same one
audio.decode_audio uses for files; it keeps its filter state between chunks, so
the samples of a streamed take are exactly those of the same PCM uploaded as a
WAV file, whatever the chunking (tests/daemon/test_live_audio.py checks it).
"""

from __future__ import annotations

import time

import av
import numpy as np

from .errors import InvalidAudio
from .speech.base import SAMPLE_RATE

MIN_RATE, MAX_RATE = 8000, 48000


class AudioTooLong(ValueError):
    """More audio than a take may hold."""


class LiveAudio:
    """One take's samples, growing as PCM chunks are appended.

    Appends happen on one thread (the event loop). Another thread may read
    `newest()` at any time: it gets the samples written so far, which never
    change afterwards (the buffer only grows, and a grown buffer is a new array).
    """

    def __init__(self, rate: int, max_seconds: float) -> None:
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ValueError(f"rate must be from {MIN_RATE} to {MAX_RATE} Hz, got {rate}")
        self.rate = rate
        self.max_seconds = max_seconds
        self._max_input = int(max_seconds * rate)
        self._input_samples = 0  # at the input rate, for the length limit
        self._odd = b""  # the first byte of a sample split across two chunks
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self._buffer = np.zeros(SAMPLE_RATE, dtype=np.float32)
        # (buffer, samples written, when the newest arrived): replaced in one assignment,
        # so a reader on another thread always sees a consistent triple.
        self._view: tuple[np.ndarray, int, float] = (self._buffer, 0, time.monotonic())
        self.finished = False

    @property
    def seconds(self) -> float:
        """How much audio was received, in seconds."""
        return self._input_samples / self.rate

    def __len__(self) -> int:
        return self._view[1]

    def newest(self) -> tuple[np.ndarray, float]:
        """The samples so far (16 kHz float32) and when the newest of them arrived."""
        buffer, count, arrived = self._view
        return buffer[:count], arrived

    def append(self, pcm: bytes) -> int:
        """Add a chunk; returns how many 16 kHz samples it added. Raises AudioTooLong past the limit."""
        if self.finished:
            raise RuntimeError("the take has ended")
        data = self._odd + bytes(pcm)
        usable = len(data) - len(data) % 2
        self._odd = data[usable:]
        if not usable:
            return 0
        ints = np.frombuffer(data[:usable], dtype="<i2")
        if self._input_samples + ints.size > self._max_input:
            raise AudioTooLong(f"more than {self.max_seconds:g} s of audio")
        frame = av.AudioFrame.from_ndarray(ints.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._input_samples
        self._input_samples += ints.size
        return self._write(self._resampler.resample(frame))

    def finish(self) -> np.ndarray:
        """The whole take: flushes the resampler. Raises InvalidAudio for a split last sample or no samples."""
        if not self.finished:
            self.finished = True
            if self._odd:
                raise InvalidAudio("the audio ends in half a sample: 16-bit PCM has an even number of bytes")
            self._write(self._resampler.resample(None))
        samples, _ = self.newest()
        if samples.size == 0:
            raise InvalidAudio("the audio stream contains no samples")
        return samples

    def release(self) -> None:
        """Drop the samples (a cancelled or failed take)."""
        self.finished = True
        self._buffer = np.zeros(0, dtype=np.float32)
        self._view = (self._buffer, 0, time.monotonic())

    def _write(self, frames) -> int:
        added = [frame.to_ndarray().reshape(-1).astype(np.float32, copy=False) for frame in frames]
        count = sum(a.size for a in added)
        if not count:
            return 0
        _, written, _ = self._view
        needed = written + count
        if needed > self._buffer.size:
            grown = np.zeros(max(needed, 2 * self._buffer.size), dtype=np.float32)
            grown[:written] = self._buffer[:written]
            self._buffer = grown
        at = written
        for array in added:
            self._buffer[at : at + array.size] = array
            at += array.size
        self._view = (self._buffer, needed, time.monotonic())
        return count
