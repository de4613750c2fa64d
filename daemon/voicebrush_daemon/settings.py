"""Everything an operator chooses when starting the daemon, in one frozen value.

Built once by the CLI (or a test) and handed down; nothing below reads the
environment or argv on its own.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def is_loopback_host(host: str) -> bool:
    """localhost, or an IP literal in 127.0.0.0/8 or ::1. Not "127.0.0.1.evil.example"."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token_file(path: Path) -> str:
    """The token in a file (its first line, trimmed), for --token-file. Unlike --token,
    which every local user can read in `ps`, a file can be readable by its owner only."""
    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the token file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not lines or not lines[0].strip():
        raise ValueError(f"the token file {path} is empty")
    return lines[0].strip()


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "voicebrush"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 7860
    # "sd2", "sd2-base", "tiny", or a path to a diffusers folder / .safetensors file.
    preset: str = "sd2"
    # A diffusers folder whose configs describe a single-file checkpoint named by preset
    # (None: SD 2.x's own, or the family's from the HF cache).
    model_config: Path | None = None
    asr_engine: str = "faster-whisper"  # or "openai-whisper"
    asr_model: str | None = None  # None: the preset's default
    # faster-whisper: encode Whisper's whole 30 s window even for a short prompt (slower;
    # see speech/faster_whisper_engine.py for the shorter window used otherwise).
    asr_full_window: bool = False
    device: str = "auto"  # auto, cuda, cpu, mps
    # repr=False: a Settings printed or logged must not carry the secret with it.
    token: str | None = field(default=None, repr=False)
    data_dir: Path = field(default_factory=default_data_dir)
    queue_size: int = 16  # waiting jobs beyond this get 429
    low_vram: bool = False  # model CPU offload, attention slicing, VAE tiling
    compile: bool = False  # torch.compile the UNet (CUDA only; warm-up on load)
    # Extra origins (scheme://host:port) allowed besides loopback and our own address.
    allowed_origins: tuple[str, ...] = ()
    # The address clients use, when it is not --host:--port (a proxy, a DNS name, a
    # tunnel): image URLs are built from it, and its host is accepted in Host headers.
    public_url: str | None = None
    # Work one generation may ask for: (pixels x images per step, pixels x images x
    # steps); None: the device's own budget (budget.py).
    work_budget: tuple[int, int] | None = None
    max_upload_bytes: int = 25 * 1024 * 1024
    preview_every: int = 2  # a JPEG preview every N steps
    # History retention (serve --keep-days / --max-jobs), applied at start and once a
    # day; None keeps everything (see jobs/retention.py).
    keep_days: float | None = None
    max_jobs: int | None = None
    # Streamed dictation (jobs/listening.py): takes (listening jobs and Realtime sessions)
    # at once, the longest take, and how long a take may go without audio.
    max_listening: int = 4
    max_take_seconds: float = 120.0
    audio_timeout_s: float = 30.0

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"
