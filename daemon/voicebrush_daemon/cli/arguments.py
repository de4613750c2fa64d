"""Option groups several commands share, and the Settings they make."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..settings import Settings, default_data_dir

DEFAULT_SERVER = "http://127.0.0.1:7860"
SERVER_ENV = "VOICEBRUSH_SERVER"
TOKEN_ENV = "VOICEBRUSH_TOKEN"


def add_model_options(parser: argparse.ArgumentParser, *, default_preset: str = "sd2") -> None:
    presets = {"sd2": "768x768", "sd2-base": "512x512", "tiny": "offline stand-in"}
    choices = ", ".join(f"{name} ({what}, default)" if name == default_preset else f"{name} ({what})" for name, what in presets.items())
    parser.add_argument("--preset", default=default_preset, help=f"image model: {choices}, or a path to a diffusers folder or .safetensors file")
    parser.add_argument("--model-config", type=Path, default=None, metavar="FOLDER", help="with a single .safetensors checkpoint that is not plain SD 2.x (768-v) or SD 1.x: a diffusers model folder whose configs describe it (e.g. SD 2 base's, which predicts epsilon)")
    parser.add_argument("--asr-engine", default="faster-whisper", choices=["faster-whisper", "openai-whisper"], help="speech recogniser (default: faster-whisper)")
    parser.add_argument("--asr-model", default=None, metavar="NAME_OR_PATH", help="Whisper model name (tiny.en, small.en, ...) or local path; default: the preset's")
    parser.add_argument("--asr-full-window", action="store_true", help="faster-whisper: encode the whole 30 s window for every prompt (slower; by default a short prompt is encoded in a 10 s window)")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu", "mps"], help="where the models run (default: the best available)")
    parser.add_argument("--data-dir", type=Path, default=None, help=f"history, images and built models (default: {default_data_dir()})")
    parser.add_argument("--low-vram", action="store_true", help="for 4-6 GB cards: CPU offload, attention slicing, VAE tiling (slower)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet on CUDA (slow first start, faster steps)")


def add_client_options(parser: argparse.ArgumentParser, *, in_process: str = "the models run in this process for this one command") -> None:
    parser.add_argument(
        "--server",
        default=None,
        metavar="URL",
        help=f"the daemon to talk to (default: ${SERVER_ENV}); a daemon named here or there must answer. "
        f"With neither, the daemon at {DEFAULT_SERVER}, and when none answers there, {in_process}",
    )
    parser.add_argument("--in-process", action="store_true", help=f"do not look for a daemon: {in_process}")
    parser.add_argument("--token", default=None, help=f"the daemon's token (default: ${TOKEN_ENV})")


def add_generation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG file to write (several images: NAME-1.png, NAME-2.png, ...)")
    parser.add_argument("--negative-prompt", default="", help="what the picture should not have")
    parser.add_argument("--size", default=None, metavar="WxH", help="e.g. 768x512 (multiples of 8); default: the model's native size, or the aspect the prompt names")
    parser.add_argument("--n", type=int, default=1, help="how many images (1-8)")
    parser.add_argument("--steps", type=int, default=0, help="denoising steps (default 25)")
    parser.add_argument("--seed", type=int, default=-1, help="seed for a repeatable picture (default: random); image i gets seed + i")
    parser.add_argument("--guidance-scale", type=float, default=None, help="how closely to follow the prompt (default 7.5)")
    parser.add_argument("--scheduler", default=None, help="dpmpp_2m (default), ddim, euler, ...")


def generation_options(args: argparse.Namespace) -> dict:
    options = {"negative_prompt": args.negative_prompt, "n": args.n, "steps": args.steps, "seed": args.seed}
    if args.size:
        options["size"] = args.size
    if args.guidance_scale is not None:
        options["guidance_scale"] = args.guidance_scale
    if args.scheduler:
        options["scheduler"] = args.scheduler
    return options


def data_dir_of(args: argparse.Namespace) -> Path:
    return (args.data_dir or default_data_dir()).expanduser().resolve()


def settings_from_args(args: argparse.Namespace, **overrides) -> Settings:
    values = dict(
        preset=args.preset,
        model_config=args.model_config.expanduser().resolve() if args.model_config else None,
        asr_engine=args.asr_engine,
        asr_model=args.asr_model,
        asr_full_window=args.asr_full_window,
        device=args.device,
        low_vram=args.low_vram,
        compile=args.compile,
        data_dir=data_dir_of(args),
    )
    values.update(overrides)
    return Settings(**values)


def token_of(args: argparse.Namespace) -> str:
    token = getattr(args, "token", None)
    return token if token is not None else os.environ.get(TOKEN_ENV, "")
