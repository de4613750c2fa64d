"""2. Speech to text: each Whisper engine on the same weights and the shipped clips, its
real-time factor and word error rate, and faster-whisper's shorter encoder window
against the full 30 s one."""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Any

from ..settings import Settings
from .clips import read_clip, speech_clips
from .report import progress, rounded, say
from .workload import Workload

# Engines whose accuracy differs by no more than this are "equally accurate".
EQUAL_WER = 0.02


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference words) after Whisper's English normaliser (harbour = harbor)."""
    from whisper.normalizers import EnglishTextNormalizer

    normalise = EnglishTextNormalizer()
    ref, hyp = normalise(reference).split(), normalise(hypothesis).split()
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref_word != hyp_word))
    return row[len(hyp)], len(ref)


def measure_asr(settings: Settings, default_transcriber, work: Workload) -> dict[str, Any]:
    from ..audio import decode_audio
    from ..speech import ENGINES, load_transcriber

    clips = [(name, words, decode_audio(read_clip(name))) for name, words in speech_clips(work.max_clips)]
    by_engine: dict[str, Any] = {}
    for engine in [settings.asr_engine] + [e for e in ENGINES if e != settings.asr_engine]:
        if engine == settings.asr_engine:
            transcriber, load_s = default_transcriber, None
        else:
            say(f"loading {engine} ...")
            started = time.perf_counter()
            try:
                transcriber = load_transcriber(replace(settings, asr_engine=engine))
            except Exception as exc:  # the other engine is a comparison, not the goal
                by_engine[engine] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            load_s = time.perf_counter() - started
        try:
            by_engine[engine] = transcribe_clips(transcriber, clips, work.asr_repeats)
            by_engine[engine]["load_s"] = round(load_s, 3) if load_s is not None else None
        finally:
            if transcriber is not default_transcriber:
                transcriber.close()
    rtf = {engine: result.get("rtf") for engine, result in by_engine.items()}
    wer = {engine: result.get("wer") for engine, result in by_engine.items()}
    faster, verdict = compare_engines(rtf, wer)
    window = compare_windows(default_transcriber, clips, work.asr_repeats) if hasattr(default_transcriber, "full_window") else None
    return {
        "engine": settings.asr_engine,
        "model": getattr(default_transcriber, "model_id", None),
        "rtf": rtf[settings.asr_engine],
        "rtf_by_engine": rtf,
        "wer_by_engine": wer,
        "faster_engine": faster,
        "verdict": verdict,
        "by_engine": by_engine,
        "window": window,
    }


def transcribe_clips(transcriber, clips, repeats: int) -> dict[str, Any]:
    from ..speech.base import SAMPLE_RATE, TranscribeOptions

    say(f"speech: {transcriber.engine} {transcriber.model_id}, {len(clips)} clips x {repeats}")
    options = TranscribeOptions(language="en")
    started = time.perf_counter()
    transcriber.transcribe(clips[0][2], options)  # warm-up: lazy initialisation, caches
    first_s = time.perf_counter() - started
    rows, edits, words = [], 0, 0
    for name, expected, samples in progress(clips, transcriber.engine):
        seconds, cpu_seconds, text = [], [], ""
        for _ in range(repeats):
            started, cpu = time.perf_counter(), time.process_time()
            text = transcriber.transcribe(samples, options).text
            seconds.append(time.perf_counter() - started)
            cpu_seconds.append(time.process_time() - cpu)
        row = {"file": name, "audio_s": round(len(samples) / SAMPLE_RATE, 3), "seconds": rounded(seconds), "cpu_seconds": rounded(cpu_seconds), "text": text, "expected": expected}
        if expected is not None:
            e, n = word_errors(expected, text)
            edits, words = edits + e, words + n
            row["wer"] = round(e / n, 4) if n else None
        rows.append(row)
    audio_s = sum(row["audio_s"] for row in rows)
    transcribe_s = sum(statistics.median(row["seconds"]) for row in rows)
    cpu_s = sum(statistics.median(row["cpu_seconds"]) for row in rows)
    return {
        "model": transcriber.model_id,
        "rtf": round(transcribe_s / audio_s, 4),
        # CPU seconds (all threads) per second of audio: the cost, whatever else runs.
        "cpu_rtf": round(cpu_s / audio_s, 4),
        "wer": round(edits / words, 4) if words else None,
        "audio_s": round(audio_s, 3),
        "transcribe_s": round(transcribe_s, 4),
        "first_s": round(first_s, 4),
        "clips": rows,
    }


def compare_windows(transcriber, clips, repeats: int) -> dict[str, Any]:
    """faster-whisper's shorter encoder window against Whisper's full 30 s one, on the
    same loaded model, interleaved transcription by transcription."""
    from ..speech.base import SAMPLE_RATE, TranscribeOptions

    say(f"speech: {transcriber.engine} {transcriber.model_id}, shorter vs 30 s encoder window, {len(clips)} clips x {repeats}")
    options = TranscribeOptions(language="en")
    kept, retries_before = transcriber.full_window, transcriber.full_window_retries
    seconds: dict[bool, float] = {False: 0.0, True: 0.0}  # full window? -> summed clip medians
    edits: dict[bool, int] = {False: 0, True: 0}
    same_words, words = 0, 0
    try:
        for _name, expected, samples in progress(clips, "encoder windows"):
            timings: dict[bool, list[float]] = {False: [], True: []}
            heard: dict[bool, str] = {}
            for _ in range(repeats):
                for full in (False, True):
                    transcriber.full_window = full
                    started = time.perf_counter()
                    heard[full] = transcriber.transcribe(samples, options).text
                    timings[full].append(time.perf_counter() - started)
            for full in (False, True):
                seconds[full] += statistics.median(timings[full])
                if expected is not None:
                    edits[full] += word_errors(expected, heard[full])[0]
            same_words += word_errors(heard[True], heard[False])[0] == 0  # punctuation and case aside
            words += word_errors(expected, "")[1] if expected is not None else 0
    finally:
        transcriber.full_window = kept
    audio_s = sum(len(samples) for _, _, samples in clips) / SAMPLE_RATE
    return {
        "rtf_short_window": round(seconds[False] / audio_s, 4),
        "rtf_full_window": round(seconds[True] / audio_s, 4),
        "speedup": round(seconds[True] / seconds[False], 3) if seconds[False] else None,
        "wer_short_window": round(edits[False] / words, 4) if words else None,
        "wer_full_window": round(edits[True] / words, 4) if words else None,
        "same_words_clips": same_words,
        "clips": len(clips),
        # Short-window transcripts that repeated themselves and were decoded again.
        "full_window_retries": transcriber.full_window_retries - retries_before,
    }


def compare_engines(rtf: dict[str, float | None], wer: dict[str, float | None]) -> tuple[str | None, str]:
    """(the faster engine, one sentence: how much faster, and whether at equal accuracy)."""
    measured = {engine: value for engine, value in rtf.items() if value}
    if len(measured) < 2:
        return (next(iter(measured), None), "only one engine could be measured")
    fast, slow = sorted(measured, key=measured.get)[:2]
    speedup = measured[slow] / measured[fast]
    if wer.get(fast) is None or wer.get(slow) is None:
        accuracy = "accuracy not measured (no known words for the clips)"
    elif abs(wer[fast] - wer[slow]) <= EQUAL_WER:
        accuracy = f"at equal accuracy (WER {wer[fast]:.1%} vs {wer[slow]:.1%})"
    elif wer[fast] < wer[slow]:
        accuracy = f"and more accurate (WER {wer[fast]:.1%} vs {wer[slow]:.1%})"
    else:
        accuracy = f"but less accurate (WER {wer[fast]:.1%} vs {wer[slow]:.1%})"
    return fast, f"{fast} is {speedup:.1f}x faster than {slow} {accuracy}"
