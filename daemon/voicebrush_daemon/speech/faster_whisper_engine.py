"""Speech to text with faster-whisper (CTranslate2): the default engine.

int8 on CPU (the fastest CPU setting at Whisper's accuracy), float16 on CUDA.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np

from .base import SAMPLE_RATE, Segment, TranscribeOptions, Transcript
from .voice_activity import checked_language, checked_samples, find_speech, joined_text, kept_segments, temperatures

BEAM_SIZE = 5


class FasterWhisperTranscriber:
    engine = "faster-whisper"

    def __init__(self, model_dir: str | Path, *, model_id: str, device: str = "cpu", cpu_threads: int = 0) -> None:
        """Load a CTranslate2 Whisper model from a local folder.

        `device` is "cpu" or "cuda"; finding and downloading the folder is load_transcriber's job.
        """
        from faster_whisper import WhisperModel

        self.model_id = model_id
        self.device = device
        self.compute_type = "float16" if device == "cuda" else "int8"
        self._model = WhisperModel(
            str(model_dir),
            device=device,
            compute_type=self.compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )

    @property
    def english_only(self) -> bool:
        return not self._model.model.is_multilingual

    def transcribe(self, samples: np.ndarray, options: TranscribeOptions = TranscribeOptions()) -> Transcript:
        language = checked_language(options.language, english_only=self.english_only)
        temperature = temperatures(options.temperature)
        samples = checked_samples(samples)
        duration = len(samples) / SAMPLE_RATE
        stretches = find_speech(samples)
        if stretches is None:
            return Transcript(text="", language=language or "en", duration=duration)
        raw_segments, info = self._model.transcribe(
            stretches.samples,
            language=language,
            task="transcribe",
            beam_size=BEAM_SIZE,
            temperature=list(temperature),
            initial_prompt=options.prompt or None,
            # A dictated prompt is short; conditioning on earlier text only lets one
            # hallucination breed the next.
            condition_on_previous_text=False,
            vad_filter=False,  # voice_activity.find_speech already did it, identically for both engines
        )
        raw = [
            Segment(start=s.start, end=s.end, text=s.text, no_speech_prob=s.no_speech_prob, avg_logprob=s.avg_logprob)
            for s in raw_segments  # a generator: decoding happens here
        ]
        segments = kept_segments(raw, stretches)
        return Transcript(text=joined_text(segments), language=info.language or language or "en", duration=duration, segments=segments)

    def close(self) -> None:
        model, self._model = getattr(self, "_model", None), None
        del model
        gc.collect()
