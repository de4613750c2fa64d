"""`voicebrush bench`: what the daemon adds on top of the models, and how fast they are.

One module per thing measured, each a function over loaded engines:

- `overhead`: one generation through the HTTP API against the same call in-process
  (`overhead_ratio`), interleaved;
- `asr`: each Whisper engine's real-time factor and word error rate on the shipped
  clips (`asr_rtf`), and faster-whisper's shorter encoder window;
- `dictation`: speech uploaded to PNG fetched, as a client sees it (`e2e_dictation_s`);
- `gpu`: with CUDA, the full-size SD2 architecture (random weights): step time, stock
  diffusers against the daemon's plan, TFLOP/s, low-VRAM peak;

and below them `workload` (sizes, steps, rounds; VOICEBRUSH_BENCH_QUICK), `clips` (the
spoken fixtures), `loopback` (the daemon in this process), `machine`, `report` (the
table). `run.run_bench` runs them in order and writes the report.
"""

from .asr import compare_engines, word_errors
from .clips import clip_texts, speech_clips
from .report import format_table
from .run import gpu_skip_reason, run_bench
from .workload import QUICK_ENV

__all__ = ["run_bench", "format_table", "gpu_skip_reason", "word_errors", "compare_engines", "clip_texts", "speech_clips", "QUICK_ENV"]
