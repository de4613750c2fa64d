"""`voicebrush bench`: what the daemon adds on top of the models, and how fast they are.

Four measurements, in one process that shares one set of loaded engines:

1. Generation overhead. The real app serves on a free loopback port from a thread
   of this process. The same generation (512x512, 8 steps, n=1, one seed) is timed
   through `POST /v1/images/generations` (`b64_json`, decoded to PNG bytes) and
   directly (`engine.generate` + `encode_png`, what a user of the pipeline does to
   get a PNG), alternating A, B, A, B so load changes on a shared machine hit both
   alike. The first request after start is the warm-up, reported on its own.
2. Speech to text: the real-time factor of each Whisper engine on the same weights
   and the shipped spoken clips, with the word error rate against their known words.
3. Dictation end to end, as a client sees it: from the last byte of audio uploaded
   in `POST /v1/jobs` to the `done` event and the PNG fetched.
4. With CUDA, the full-size SD2 section (bench_gpu.py).

VOICEBRUSH_BENCH_QUICK=1 shrinks the work (tiny sizes, one clip) for the test
suite; the report says so and keeps the same keys.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import importlib.metadata
import io
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CLIPS_DIR = ROOT / "tests" / "fixtures" / "speech"
DICTATION_CLIP = "demo_prompt.wav"  # what `make demo` says: 5.2 s of speech

PROMPT = "a misty harbour at dawn, wide shot, oil painting"
SEED = 20240601
GENERATION_SIZE = 512  # the contract's overhead measurement: 512x512, 8 steps, n=1
GENERATION_STEPS = 8
DICTATION_STEPS = 25  # the daemon's default, what an artist gets

# Engines whose accuracy differs by no more than this are "equally accurate".
EQUAL_WER = 0.02

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


# ---- the entry point -----------------------------------------------------------------


def bench(args: argparse.Namespace) -> int:
    from .cli import settings_from_args
    from .models import ModelUnavailable

    quick = os.environ.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    work = workload_for(args.rounds, quick)
    settings = settings_from_args(args)
    report: dict[str, Any] = {
        "schema": 1,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preset": settings.preset,
        "config": {
            "rounds": work.rounds,
            "quick": work.quick,
            "asr_repeats": work.asr_repeats,
            "low_vram": settings.low_vram,
            "compile": settings.compile,
        },
        "machine": machine_info(),
        "versions": versions(),
    }
    say(f"voicebrush bench: preset {settings.preset}, {work.rounds} rounds{' (quick)' if work.quick else ''}")
    try:
        engines, load_s = load_engines(settings)
    except ModelUnavailable as exc:
        print(f"voicebrush: {exc}", file=sys.stderr)
        return 2
    plan = getattr(engines.image, "plan", None)
    report.update(
        device=engines.image.device,
        runtime_plan=plan.describe() if plan is not None else None,
        models={"image": engines.image.model_id, "speech": f"{engines.speech.model_id} ({engines.speech.engine})"},
        load_s=round(load_s, 3),
    )
    rc = 0
    try:
        with tempfile.TemporaryDirectory(prefix="voicebrush-bench-") as scratch:
            # The bench's jobs go to a throwaway history, not the user's.
            app_settings = replace(settings, host="127.0.0.1", port=0, token=None, data_dir=Path(scratch) / "data")
            with LoopbackServer(app_settings, engines) as server:
                generation = measure_generation(server, engines.image, work)
                dictation = measure_dictation(server, read_clip(DICTATION_CLIP), engines.image.native_size, work)
        asr = measure_asr(settings, engines.speech, work)
    finally:
        engines.image.close()
        engines.speech.close()
    report.update(
        overhead_ratio=generation["overhead_ratio"],
        first_request_s=generation["first_request_s"],
        gen_steps_per_s=generation["steps_per_s"],
        generation=generation,
        asr_rtf=asr["rtf"],
        asr_rtf_by_engine=asr["rtf_by_engine"],
        asr_wer_by_engine=asr["wer_by_engine"],
        asr_faster_engine=asr["faster_engine"],
        asr_verdict=asr["verdict"],
        asr_window_speedup=(asr["window"] or {}).get("speedup"),
        asr=asr,
        e2e_dictation_s=dictation["median_s"],
        e2e=dictation,
    )
    gpu_reason = gpu_skip_reason(settings.device)
    report["gpu"], report["gpu_reason"] = None, gpu_reason
    if gpu_reason is None:
        from .bench_gpu import run_gpu_section

        try:
            report["gpu"] = run_gpu_section(settings, rounds=work.rounds, quick=work.quick, plot_path=_plot_path(args.json))
        except Exception as exc:  # the CPU figures still get written
            report["gpu_reason"] = f"failed: {type(exc).__name__}: {exc}"
            print(f"voicebrush: the GPU section failed: {exc}", file=sys.stderr)
            rc = 1
    report["machine"]["load_average_end"] = _load_average()
    print(format_table(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        say(f"wrote {args.json}")
    return rc


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_engines(settings: Settings):
    from .server.app import load_real_engines

    say("loading models ...")
    started = time.perf_counter()
    engines = load_real_engines(settings)
    return engines, time.perf_counter() - started


def gpu_skip_reason(device: str) -> str | None:
    """None when the full-size GPU section should run, else why not."""
    if device not in ("auto", "cuda"):
        return f"--device {device} was chosen"
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        return f"no CUDA device (torch {torch.__version__}, {build}); GPU figures unmeasured"
    return None


def _plot_path(json_path: Path | None) -> Path | None:
    return json_path.with_name(json_path.stem + "-gpu-steps.png") if json_path is not None else None


# ---- the daemon on loopback, in this process --------------------------------------------


class LoopbackServer:
    """The real app on 127.0.0.1 at a free port, served by an aiohttp AppRunner from a
    thread of this process, with `engines` shared with the caller: the HTTP path and the
    direct calls run the very same model objects."""

    def __init__(self, settings: Settings, engines) -> None:
        self._settings = settings
        self._engines = engines
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop = None
        self._stop = None
        self._error: BaseException | None = None
        self.port: int | None = None
        self.app = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "LoopbackServer":
        self._thread = threading.Thread(target=self._serve_forever, name="voicebrush-bench-server", daemon=True)
        self._thread.start()
        if not self._started.wait(60) or self._error is not None:
            raise RuntimeError(f"the benchmark server did not start: {self._error}")
        self._wait_healthy()
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)

    def job_timings(self, job_id: str) -> dict[str, float]:
        """The worker's own timings of a job (queued, transcribe, generate, save)."""
        from .server.state import STORE

        job = self.app[STORE].get(job_id)
        return dict(job.timings) if job is not None else {}

    def _serve_forever(self) -> None:
        import asyncio

        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._started.set()

    async def _serve(self) -> None:
        import asyncio

        from aiohttp import web

        from .server.app import create_app

        engines = self._engines
        self.app = create_app(self._settings, load_engines=lambda: engines)
        runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def _wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=10) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the benchmark server did not become ready")


# ---- 1. generation: HTTP against direct, interleaved ----------------------------------------


def measure_generation(server: LoopbackServer, image, work: Workload) -> dict[str, Any]:
    from .imaging.base import GenerationRequest
    from .options import DEFAULT_GUIDANCE

    size, steps = work.generation_size, work.generation_steps
    request = GenerationRequest(PROMPT, "", size, size, 1, steps, SEED, DEFAULT_GUIDANCE, image.default_scheduler)
    body = json.dumps(
        {"prompt": PROMPT, "size": f"{size}x{size}", "steps": steps, "n": 1, "seed": SEED, "response_format": "b64_json"}
    ).encode()
    say(f"generation: {size}x{size}, {steps} steps, HTTP and direct interleaved, {work.rounds} rounds after a warm-up")

    def over_http() -> tuple[float, float, bytes, dict]:
        started, cpu = time.perf_counter(), time.process_time()
        post = urllib.request.Request(server.url + "/v1/images/generations", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(post, timeout=600) as response:
            answer = json.loads(response.read())
        png = base64.b64decode(answer["data"][0]["b64_json"])
        return time.perf_counter() - started, time.process_time() - cpu, png, server.job_timings(answer["id"])

    def direct() -> tuple[float, float, bytes, dict]:
        from .pngmeta import encode_png

        step_times: list[float] = []

        def on_step(step: int, total: int, make_preview) -> bool:
            step_times.append(time.perf_counter())  # only a timestamp: no previews, no work
            return False

        started, cpu = time.perf_counter(), time.process_time()
        picture = image.generate(request, on_step)[0]
        generated = time.perf_counter()
        png = encode_png(picture, _png_metadata(request, image.model_id))
        done = time.perf_counter()
        return done - started, time.process_time() - cpu, png, {"generate_s": generated - started, "encode_s": done - generated, "step_times": step_times}

    first_http_s, _, first_png, _ = over_http()
    first_direct_s, _, direct_png, _ = direct()
    http_s, direct_s, paired, step_intervals, added = [], [], [], [], []
    http_cpu, direct_cpu = [], []
    server_parts: dict[str, list[float]] = {}
    direct_parts: dict[str, list[float]] = {}
    for _ in _progress(range(work.rounds), "generation rounds"):
        a, a_cpu, _, timings = over_http()
        b, b_cpu, _, parts = direct()
        http_s.append(a)
        direct_s.append(b)
        http_cpu.append(a_cpu)
        direct_cpu.append(b_cpu)
        paired.append(a / b)
        if "generate_s" in timings:
            added.append(a - timings["generate_s"])
        for key in ("queued_s", "generate_s", "save_s"):
            if key in timings:
                server_parts.setdefault(key, []).append(timings[key])
        for key in ("generate_s", "encode_s"):
            direct_parts.setdefault(key, []).append(parts[key])
        times = parts["step_times"]
        # The first hook fires after text encoding and the first step together: skip it.
        step_intervals.extend(later - earlier for earlier, later in zip(times, times[1:]))
    http_median, direct_median = statistics.median(http_s), statistics.median(direct_s)
    step_s = statistics.median(step_intervals) if step_intervals else None
    return {
        "size": f"{size}x{size}",
        "steps": steps,
        "n": 1,
        "seed": SEED,
        "response_format": "b64_json",
        "rounds": work.rounds,
        "overhead_ratio": round(http_median / direct_median, 4),
        # The median of each round's own ratio: the pairs are adjacent in time.
        "overhead_ratio_paired": round(statistics.median(paired), 4),
        # CPU seconds of this whole process (server, worker and client threads): what each
        # path costs, much less moved than wall time by other programs on a shared machine.
        "overhead_ratio_cpu": round(statistics.median(http_cpu) / statistics.median(direct_cpu), 4),
        # Everything around the model call in the HTTP path (queue, PNG encode and save,
        # HTTP, JSON, base64), from the worker's own clock: free of generation-time noise.
        "daemon_added_s": round(statistics.median(added), 4) if added else None,
        "http_median_s": round(http_median, 4),
        "direct_median_s": round(direct_median, 4),
        "http_s": _rounded(http_s),
        "direct_s": _rounded(direct_s),
        "http_cpu_s": _rounded(http_cpu),
        "direct_cpu_s": _rounded(direct_cpu),
        "first_request_s": round(first_http_s, 4),
        "first_direct_s": round(first_direct_s, 4),
        "server_median_s": {key: round(statistics.median(values), 4) for key, values in server_parts.items()},
        "direct_parts_median_s": {key: round(statistics.median(values), 4) for key, values in direct_parts.items()},
        "step_s": round(step_s, 5) if step_s else None,
        "steps_per_s": round(1.0 / step_s, 3) if step_s else None,
        "http_matches_direct": same_pixels(first_png, direct_png),
        "png_bytes": len(direct_png),
    }


def _png_metadata(request, model_id: str) -> dict[str, Any]:
    # The same facts the daemon writes, so both PNGs cost the same to encode.
    return {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "seed": request.seed,
        "steps": request.steps,
        "width": request.width,
        "height": request.height,
        "scheduler": request.scheduler,
        "guidance_scale": request.guidance_scale,
        "model": model_id,
        "transcript": None,
        "job_id": uuid.uuid4().hex,
    }


def same_pixels(png_a: bytes, png_b: bytes) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(png_a)) as a, Image.open(io.BytesIO(png_b)) as b:
        return a.size == b.size and a.convert("RGB").tobytes() == b.convert("RGB").tobytes()


# ---- 2. speech to text, both engines on the same weights -----------------------------------------


def clip_texts(readme: Path = CLIPS_DIR / "README.md") -> dict[str, str]:
    """{file name: spoken words} from the clips' README table ("same" repeats the row above)."""
    texts: dict[str, str] = {}
    previous = None
    try:
        lines = readme.read_text(encoding="utf-8").splitlines()
    except OSError:
        return texts
    for line in lines:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.fullmatch(r"`[^`]+\.\w+`", cells[0]):
            continue
        words = cells[-1]
        if words == "same" and previous is not None:
            words = previous
        texts[cells[0].strip("`")] = words
        previous = words
    return texts


def speech_clips(max_clips: int | None = None) -> list[tuple[str, str | None]]:
    """One clip per distinct utterance, (file name, known words): the other shipped files
    are the same recordings re-encoded, which would only repeat the measurement."""
    texts = clip_texts()
    chosen: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for name, words in texts.items():
        if words not in seen and (CLIPS_DIR / name).is_file():
            seen.add(words)
            chosen.append((name, words))
    if not chosen:  # no README: every audio file, without known words
        chosen = [(p.name, None) for p in sorted(CLIPS_DIR.iterdir()) if p.suffix in {".wav", ".flac", ".ogg", ".mp3", ".webm", ".m4a"}]
    if not chosen:
        raise FileNotFoundError(f"no spoken clips in {CLIPS_DIR}; the benchmark runs from a clone of the repository")
    if max_clips is not None:
        chosen = sorted(chosen, key=lambda clip: (CLIPS_DIR / clip[0]).stat().st_size)[:max_clips]
    return chosen


def read_clip(name: str) -> bytes:
    path = CLIPS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the benchmark runs from a clone of the repository")
    return path.read_bytes()


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
    from .audio import decode_audio
    from .speech import ENGINES, load_transcriber

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
    from .speech.base import SAMPLE_RATE, TranscribeOptions

    say(f"speech: {transcriber.engine} {transcriber.model_id}, {len(clips)} clips x {repeats}")
    options = TranscribeOptions(language="en")
    started = time.perf_counter()
    transcriber.transcribe(clips[0][2], options)  # warm-up: lazy initialisation, caches
    first_s = time.perf_counter() - started
    rows, edits, words = [], 0, 0
    for name, expected, samples in _progress(clips, transcriber.engine):
        seconds, cpu_seconds, text = [], [], ""
        for _ in range(repeats):
            started, cpu = time.perf_counter(), time.process_time()
            text = transcriber.transcribe(samples, options).text
            seconds.append(time.perf_counter() - started)
            cpu_seconds.append(time.process_time() - cpu)
        row = {"file": name, "audio_s": round(len(samples) / SAMPLE_RATE, 3), "seconds": _rounded(seconds), "cpu_seconds": _rounded(cpu_seconds), "text": text, "expected": expected}
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
    from .speech.base import SAMPLE_RATE, TranscribeOptions

    say(f"speech: {transcriber.engine} {transcriber.model_id}, shorter vs 30 s encoder window, {len(clips)} clips x {repeats}")
    options = TranscribeOptions(language="en")
    kept, retries_before = transcriber.full_window, transcriber.full_window_retries
    seconds: dict[bool, float] = {False: 0.0, True: 0.0}  # full window? -> summed clip medians
    edits: dict[bool, int] = {False: 0, True: 0}
    same_words, words = 0, 0
    try:
        for _name, expected, samples in _progress(clips, "encoder windows"):
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


# ---- 3. dictation end to end, from the client's side ----------------------------------------------


def measure_dictation(server: LoopbackServer, audio: bytes, size: tuple[int, int], work: Workload, *, steps: int | None = None) -> dict[str, Any]:
    """Upload speech as a client does, follow the job's events, fetch the PNG.

    The clock starts when the last byte of the upload is handed to the socket and
    stops when the PNG's last byte has arrived. The size is pinned to the model's
    native one, so a spoken "wide shot" does not change the workload.
    """
    steps = steps or work.dictation_steps
    fields = {"seed": str(SEED), "steps": str(steps), "size": f"{size[0]}x{size[1]}", "language": "en"}
    say(f"dictation: {len(audio) // 1024} KiB of speech -> {size[0]}x{size[1]}, {steps} steps, {work.rounds} rounds after a warm-up")
    first = dictate_once(server, audio, fields)
    rounds = [dictate_once(server, audio, fields) for _ in _progress(range(work.rounds), "dictation rounds")]
    totals = [r["total_s"] for r in rounds]
    return {
        "size": fields["size"],
        "steps": steps,
        "audio_bytes": len(audio),
        "rounds": work.rounds,
        "median_s": round(statistics.median(totals), 4),
        "first_s": first["total_s"],
        "transcript": rounds[-1]["transcript"],
        "median_parts_s": {
            key: round(statistics.median(r[key] for r in rounds), 4)
            for key in ("accepted_s", "transcript_s", "done_s", "png_s")
        },
        "server_median_s": {
            key: round(statistics.median(r["server"][key] for r in rounds), 4)
            for key in rounds[0]["server"]
            if all(key in r["server"] for r in rounds)
        },
        "runs": rounds,
    }


def dictate_once(server: LoopbackServer, audio: bytes, fields: dict[str, str]) -> dict[str, Any]:
    body, content_type = multipart_body(fields, "file", "speech.wav", audio)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    try:
        connection.putrequest("POST", "/v1/jobs")
        connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        connection.send(body)
        uploaded = time.perf_counter()
        response = connection.getresponse()
        job = json.loads(response.read())
        if response.status != 202:
            raise RuntimeError(f"POST /v1/jobs answered {response.status}: {job}")
        accepted = time.perf_counter()
        marks: dict[str, float] = {}
        record = None
        events = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        try:
            events.request("GET", f"/v1/jobs/{job['id']}/events", headers={"Accept": "text/event-stream"})
            for event, data in read_events(events.getresponse()):
                marks.setdefault(event, time.perf_counter())
                if event in ("done", "failed", "cancelled"):
                    record = data
                    break
        finally:
            events.close()
        if record is None or record["status"] != "done":
            raise RuntimeError(f"the dictation job did not finish: {record}")
        path = urllib.parse.urlsplit(record["images"][0]).path
        connection.request("GET", path)
        image = connection.getresponse()
        png = image.read()
        fetched = time.perf_counter()
        if image.status != 200 or not png.startswith(b"\x89PNG"):
            raise RuntimeError(f"GET {path} answered {image.status}")
    finally:
        connection.close()
    return {
        "total_s": round(fetched - uploaded, 4),
        "accepted_s": round(accepted - uploaded, 4),
        "transcript_s": round(marks.get("transcript", accepted) - uploaded, 4),
        "done_s": round(marks["done"] - uploaded, 4),
        "png_s": round(fetched - marks["done"], 4),
        "transcript": record.get("transcript"),
        "server": {key: value for key, value in (record.get("timings") or {}).items()},
    }


def read_events(response):
    """(event, data) pairs from a Server-Sent Events response."""
    event, data = None, []
    while True:
        line = response.readline()
        if not line:
            return
        line = line.decode("utf-8").rstrip("\r\n")
        if not line:
            if event is not None:
                yield event, json.loads("\n".join(data)) if data else {}
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def multipart_body(fields: dict[str, str], file_field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = "voicebrush-bench-" + uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    parts.append(content)
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# ---- the machine and the report ------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": _memory_gb(),
        # A shared machine: the load when the run began and ended says how noisy it was.
        "load_average_start": _load_average(),
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def versions() -> dict[str, str | None]:
    names = ["torch", "diffusers", "transformers", "accelerate", "faster-whisper", "ctranslate2", "openai-whisper", "aiohttp", "numpy", "pillow"]
    found: dict[str, str | None] = {"voicebrush": __version__}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _rounded(values) -> list[float]:
    return [round(v, 4) for v in values]


def _progress(iterable, description: str):
    from tqdm import tqdm

    # disable=None: a bar on a terminal, nothing in logs and pipes.
    return tqdm(iterable, desc=description, leave=False, disable=None, file=sys.stderr)


def format_table(report: dict[str, Any]) -> str:
    """The figures as a plain table, with the issue's goals beside them."""
    gen, e2e, asr = report["generation"], report["e2e"], report["asr"]
    machine = report["machine"]
    rows: list[tuple[str, str, str]] = [
        ("overhead ratio (HTTP / direct)", f"{report['overhead_ratio']:.3f}x", "goal <= 1.05, bar 1.10"),
        ("  paired per-round ratio", f"{gen['overhead_ratio_paired']:.3f}x", f"{gen['rounds']} interleaved rounds"),
        ("  in CPU seconds", f"{gen['overhead_ratio_cpu']:.3f}x", "process CPU time, robust to other load"),
        ("  added around the model call", _fmt(gen["daemon_added_s"], ".3f", " s"), "HTTP time minus the worker's generate time"),
        ("  through HTTP (median)", f"{gen['http_median_s']:.3f} s", f"{gen['size']}, {gen['steps']} steps, n=1, b64_json"),
        ("  direct call (median)", f"{gen['direct_median_s']:.3f} s", "engine.generate + encode_png"),
        ("  first request after start", f"{report['first_request_s']:.3f} s", "warm-up, not in the medians"),
        ("  HTTP image == direct image", "yes" if gen["http_matches_direct"] else "NO", "same seed"),
        ("denoising steps per second", _fmt(report["gen_steps_per_s"], ".2f"), f"{gen['size']}, guided"),
        ("speech real-time factor", _fmt(report["asr_rtf"], ".3f"), f"{asr['engine']} {asr['model']}; goal <= 0.10, bar 0.15"),
    ]
    for engine, result in asr["by_engine"].items():
        if "error" in result:
            rows.append((f"  {engine}", "-", result["error"][:60]))
        else:
            wer = "" if result["wer"] is None else f"WER {result['wer']:.1%}, "
            rows.append((f"  {engine}", f"{result['rtf']:.3f}", f"{wer}{result['cpu_rtf']:.3f} CPU-s per s, {len(result['clips'])} clips, {result['audio_s']:.1f} s of speech"))
    rows.append(("  verdict", "", asr["verdict"]))
    window = asr.get("window")
    if window:
        rows.append((
            "  shorter encoder window",
            f"{window['speedup']:.2f}x",
            f"RTF {window['rtf_short_window']:.3f} vs {window['rtf_full_window']:.3f} with the 30 s window; "
            f"same words on {window['same_words_clips']}/{window['clips']} clips, {window['full_window_retries']} retried",
        ))
    parts = e2e["median_parts_s"]
    rows += [
        ("dictation end to end (median)", f"{report['e2e_dictation_s']:.3f} s", f"upload done -> PNG fetched, {e2e['size']}, {e2e['steps']} steps"),
        ("  upload done -> transcript", f"{parts['transcript_s']:.3f} s", ""),
        ("  upload done -> done event", f"{parts['done_s']:.3f} s", ""),
        ("  done event -> PNG fetched", f"{parts['png_s']:.3f} s", ""),
    ]
    gpu = report.get("gpu")
    if gpu:
        rows += [
            ("GPU guided step, stock", f"{gpu['step_ms_stock']:.1f} ms", f"{gpu['size']}, {gpu['stock_plan']}"),
            ("GPU guided step, optimised", f"{gpu['step_ms_optimised']:.1f} ms", gpu["optimised_plan"]),
            ("  speed-up", f"{gpu['speedup']:.2f}x", "goal >= 1.5x"),
            ("  UNet throughput", f"{gpu['tflops']:.0f} TFLOP/s", _peak_note(gpu)),
            ("GPU dictation end to end", _fmt(gpu.get("e2e_s"), ".3f", " s"), f"{gpu.get('e2e_steps')} steps + VAE + {gpu.get('asr_model')}; goal <= 1.0 s"),
            ("GPU low-VRAM peak", _fmt(gpu.get("low_vram_peak_gb"), ".2f", " GB"), "goal <= 3.5 GB"),
        ]
        if gpu.get("compile_warmup_s") is not None:
            rows.append(("  torch.compile warm-up", f"{gpu['compile_warmup_s']:.1f} s", "excluded from the step times"))
    else:
        rows.append(("GPU section", "unmeasured", report.get("gpu_reason") or ""))
    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    header = (
        f"voicebrush bench {report['date']}: preset {report['preset']} on {report['device']} ({report['runtime_plan']}), "
        f"{machine['cpu']}, {machine['cpus_usable']} CPUs, load {machine['load_average_start']}"
    )
    lines = [header, ""] + [f"{name:<{width}}  {value:>{value_width}}  {note}".rstrip() for name, value, note in rows]
    return "\n".join(lines)


def _peak_note(gpu: dict[str, Any]) -> str:
    if gpu.get("peak_fraction") is None:
        return "card's peak unknown"
    return f"{gpu['peak_fraction']:.0%} of {gpu['peak_tflops']:.0f} TFLOP/s peak; goal >= 20%"


def _fmt(value, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"

