"""What each measurement does: the prompt, the seed, sizes, steps and rounds.

VOICEBRUSH_BENCH_QUICK=1 shrinks the work (tiny sizes, one clip) for the test
suite; the report says so and keeps the same keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

PROMPT = "a misty harbour at dawn, wide shot, oil painting"
SEED = 20240601
GENERATION_SIZE = 512  # the contract's overhead measurement: 512x512, 8 steps, n=1
GENERATION_STEPS = 8
DICTATION_STEPS = 25  # the daemon's default, what an artist gets

QUICK_ENV = "VOICEBRUSH_BENCH_QUICK"


@dataclass(frozen=True)
class Workload:
    """How much work each measurement does (smaller in quick mode, same shape)."""

    rounds: int
    generation_size: int = GENERATION_SIZE
    generation_steps: int = GENERATION_STEPS
    dictation_steps: int = DICTATION_STEPS
    asr_repeats: int = 2  # passes over the clips per engine
    max_clips: int | None = None
    quick: bool = False


def workload_for(rounds: int, quick: bool) -> Workload:
    rounds = max(1, rounds)
    # openai-whisper needs ~1.5 CPU-seconds per second of speech on 2 cores: half as
    # many passes as rounds keeps the default run within a few minutes.
    asr_repeats = max(1, rounds // 2)
    if quick:
        return Workload(rounds, generation_size=64, generation_steps=2, dictation_steps=2, asr_repeats=1, max_clips=1, quick=True)
    return Workload(rounds, asr_repeats=asr_repeats)


def quick_from_env() -> bool:
    return os.environ.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
