"""Turn detection on a live stream: the Realtime API's `server_vad`.

`TurnDetector` says when speech starts, and when it has stopped long enough to end
the turn, from Silero's speech probability of each 32 ms window (a plain state
machine over numbers, with Silero's own hysteresis). `SpeechProbabilities` computes
those probabilities as samples arrive, window by window, with the same values the
whole stream would give at once (faster-whisper's Silero model scores each window
from the window and the last 64 samples before it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .voice_activity import MIN_SPEECH_MS, VAD_THRESHOLD

WINDOW_SAMPLES = 512  # Silero's window at 16 kHz
CONTEXT_SAMPLES = 64  # what Silero sees of the window before
WINDOW_MS = 32
# Silero's own hysteresis (faster_whisper.vad): speech ends below threshold - 0.15.
HYSTERESIS = 0.15
# The Realtime API's server_vad defaults.
PREFIX_PADDING_MS = 300
SILENCE_DURATION_MS = 500


@dataclass(frozen=True)
class TurnSettings:
    threshold: float = VAD_THRESHOLD
    prefix_padding_ms: int = PREFIX_PADDING_MS
    silence_duration_ms: int = SILENCE_DURATION_MS
    min_speech_ms: int = MIN_SPEECH_MS


@dataclass(frozen=True)
class TurnEvent:
    kind: str  # "speech_started" or "speech_stopped"
    ms: int  # from the start of the stream: the start includes the prefix padding, the stop the silence


@dataclass
class TurnDetector:
    """Speech start and stop on a stream of per-window speech probabilities (32 ms each)."""

    settings: TurnSettings = field(default_factory=TurnSettings)
    windows: int = 0  # windows seen so far
    speaking: bool = False
    _run: int = 0  # consecutive speech windows (before a start) or silent ones (after)
    _run_start: int = 0

    def push(self, probabilities) -> list[TurnEvent]:
        events = []
        s = self.settings
        min_speech = max(1, -(-s.min_speech_ms // WINDOW_MS))
        min_silence = max(1, -(-s.silence_duration_ms // WINDOW_MS))
        for probability in probabilities:
            index = self.windows
            self.windows += 1
            if not self.speaking:
                if probability >= s.threshold:
                    if self._run == 0:
                        self._run_start = index
                    self._run += 1
                    if self._run >= min_speech:
                        self.speaking, self._run = True, 0
                        events.append(TurnEvent("speech_started", max(0, self._run_start * WINDOW_MS - s.prefix_padding_ms)))
                else:
                    self._run = 0
            elif probability < s.threshold - HYSTERESIS:
                self._run += 1
                if self._run >= min_silence:
                    self.speaking, self._run = False, 0
                    events.append(TurnEvent("speech_stopped", (index + 1) * WINDOW_MS))
            else:
                self._run = 0
        return events

    def reset(self) -> None:
        """After a commit or a clear: the next turn starts from silence (the clock runs on)."""
        self.speaking, self._run = False, 0


class SpeechProbabilities:
    """Silero's speech probability of each complete 512-sample window, as samples arrive.

    faster-whisper's Silero model runs the windows of one call as a sequence (an LSTM
    whose state flows from window to window) and gives each window the last 64
    samples before it as context. Carrying that state and context from one push to
    the next gives exactly the probabilities of one call over the whole stream.
    """

    def __init__(self, model=None) -> None:
        if model is None:
            from faster_whisper.vad import get_vad_model

            model = get_vad_model()  # one per process (lru_cache); ONNX runs are thread-safe
        self._session = model.session
        self._pending = np.zeros(0, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)  # zeros before the first window
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        data = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32)])
        usable = len(data) - len(data) % WINDOW_SAMPLES
        self._pending = data[usable:]
        if not usable:
            return np.zeros(0, dtype=np.float32)
        windows = data[:usable].reshape(-1, WINDOW_SAMPLES)
        context = np.concatenate([self._context[None, :], windows[:-1, -CONTEXT_SAMPLES:]])
        scores, self._h, self._c = self._session.run(None, {"input": np.concatenate([context, windows], axis=1), "h": self._h, "c": self._c})
        self._context = windows[-1, -CONTEXT_SAMPLES:].copy()
        return np.asarray(scores, dtype=np.float32).reshape(-1)
