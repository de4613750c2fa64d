"""Speech to text with OpenAI's reference implementation (PyTorch).

Slower than faster-whisper on CPU, but it is the reference, and it takes any
openai-whisper `.pt` checkpoint (fine-tunes are often published only that way).
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np

from .base import Segment, TranscribeOptions, Transcript
from .voice_activity import kept_segments, speech_request

BEAM_SIZE = 5  # as faster-whisper's default, so the two engines decode alike


class OpenAIWhisperTranscriber:
    engine = "openai-whisper"

    def __init__(
        self,
        model: str | Path,
        *,
        model_id: str | None = None,
        device: str = "cpu",
        download_root: str | Path | None = None,
    ) -> None:
        """Load a model by name (e.g. "small.en", from `download_root`) or from a local `.pt`.

        whisper.load_model opens checkpoints with torch.load(weights_only=True), so a
        `.pt` can hold only tensors and plain containers, never code.
        """
        import whisper

        self.device = device
        self.model_id = model_id or (Path(model).stem if Path(str(model)).suffix == ".pt" else str(model))
        self._model = whisper.load_model(
            str(model), device=device, download_root=str(download_root) if download_root else None
        )

    @property
    def english_only(self) -> bool:
        return not self._model.is_multilingual

    def transcribe(self, samples: np.ndarray, options: TranscribeOptions = TranscribeOptions()) -> Transcript:
        request = speech_request(samples, options, english_only=self.english_only)
        if request.stretches is None:
            return request.transcript()
        sampling = request.temperature[0] > 0
        result = self._model.transcribe(
            request.stretches.samples,
            language=request.language,
            task="transcribe",
            temperature=request.temperature,
            # Beam search only applies at temperature 0; sampling uses best_of.
            beam_size=None if sampling else BEAM_SIZE,
            best_of=BEAM_SIZE if sampling else None,
            initial_prompt=options.prompt or None,
            condition_on_previous_text=False,  # see faster_whisper_engine
            fp16=self.device == "cuda",
            verbose=None,  # no progress bar, no printing
        )
        raw = [
            Segment(
                start=float(s["start"]),
                end=float(s["end"]),
                text=s["text"],
                no_speech_prob=float(s["no_speech_prob"]),
                avg_logprob=float(s["avg_logprob"]),
            )
            for s in result["segments"]
        ]
        return request.transcript(kept_segments(raw, request.stretches), result.get("language"))

    def close(self) -> None:
        model, self._model = getattr(self, "_model", None), None
        del model
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
