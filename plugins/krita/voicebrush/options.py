"""What a generation asks for, and where its result goes: plain data, no Qt, no Krita."""

import random
import re
from collections import namedtuple

from .client import fit_generation_size

SEED_RANDOM = "random"
SEED_REUSE = "reuse"
SEED_FIXED = "fixed"
MAX_SEED = 2 ** 32 - 1
DEFAULT_NATIVE_SIDE = 768  # SD 2.1's; the daemon's health tells the loaded model's own

Rect = namedtuple("Rect", "x y width height")


class GenerationRequest(object):
    """The options of one generation as the docker or the scripting API gathered them."""

    def __init__(self, prompt="", negative_prompt="", steps=0, seed=None, variants=1, strength=1.0, fill=False):
        self.prompt = (prompt or "").strip()
        self.negative_prompt = (negative_prompt or "").strip()
        self.steps = int(steps or 0)
        self.seed = seed  # None: the daemon picks one
        self.variants = max(1, min(8, int(variants or 1)))
        self.strength = float(strength)  # 1.0: a new picture; below: refine the canvas
        self.fill = bool(fill)  # repaint inside the selection

    def job_options(self, size, strength=None):
        """Keyword options for Client.run_job / submit_job; `strength` for a picture-in job."""
        options = {"size": size, "n": self.variants}
        if strength is not None:
            options["strength"] = round(float(strength), 4)
        if self.negative_prompt:
            options["negative_prompt"] = self.negative_prompt
        if self.steps > 0:
            options["steps"] = self.steps
        if self.seed is not None:
            options["seed"] = int(self.seed)
        return options


def choose_seed(mode, last_seed=None, fixed_seed=None):
    """The seed to send: None lets the daemon choose (it reports it back)."""
    if mode == SEED_REUSE and last_seed is not None:
        return int(last_seed)
    if mode == SEED_FIXED and fixed_seed is not None:
        return int(fixed_seed) % (MAX_SEED + 1)
    return None


def random_seed():
    return random.randint(0, MAX_SEED)


def target_rect(canvas_width, canvas_height, selection=None):
    """Where the picture goes: the selection's bounds clipped to the canvas, else the whole canvas."""
    if selection is not None:
        x, y, width, height = selection
        left, top = max(0, x), max(0, y)
        right, bottom = min(canvas_width, x + width), min(canvas_height, y + height)
        if right > left and bottom > top:
            return Rect(left, top, right - left, bottom - top)
    return Rect(0, 0, canvas_width, canvas_height)


def generation_size(rect, native_side=DEFAULT_NATIVE_SIDE):
    """The size to ask the daemon for: the target's aspect at the model's native scale, multiples of 8."""
    return fit_generation_size(rect.width, rect.height, max_side=native_side)


def native_side_from_health(health, default=DEFAULT_NATIVE_SIDE):
    """The loaded image model's native side from a /v1/health record, wherever the daemon reports it."""
    found = []

    def visit(value, key=""):
        if isinstance(value, dict):
            for child_key, child in value.items():
                visit(child, child_key)
        elif isinstance(value, (list, tuple)) and key in ("native_size", "size") and len(value) == 2:
            if all(isinstance(v, int) for v in value):
                found.append(max(value))
        elif isinstance(value, str) and key in ("native_size", "size"):
            match = re.match(r"^(\d+)x(\d+)$", value)
            if match:
                found.append(max(int(match.group(1)), int(match.group(2))))
        elif isinstance(value, int) and key in ("native_size", "native_side", "resolution"):
            found.append(value)

    visit(health or {})
    return found[0] if found else default


def layer_name(prompt, max_length=48):
    """A layer name from the prompt: one line, cut at a word boundary."""
    text = re.sub(r"\s+", " ", prompt or "").strip()
    if not text:
        return "Voicebrush"
    if len(text) <= max_length:
        return text
    cut = text[:max_length].rsplit(" ", 1)[0].rstrip(",;:. ")
    return (cut or text[:max_length]) + "\u2026"


def variant_name(prompt, index, seed):
    """Name of variant `index` (0-based) inside a variants group."""
    suffix = " #%d" % (index + 1)
    if seed is not None:
        suffix += " (seed %d)" % seed
    return layer_name(prompt, max_length=48 - len(suffix)) + suffix
