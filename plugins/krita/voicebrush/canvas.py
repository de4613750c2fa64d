"""Refine and fill: which part of the canvas a generation starts from, and what it is called.

Plain data and arithmetic, no Qt, no Krita (krita_glue reads the pixels):

- text (strength 100 %, no fill): a new picture, as before;
- refine (strength below 100 %): the visible canvas is the starting picture (img2img),
  within the selection's bounds padded a little for context, if there is a selection;
- fill (a selection): the selection is repainted (inpaint); the layer is transparent
  outside it.
"""

from .client import VoicebrushError, fit_generation_size
from .options import Rect, layer_name

TEXT, REFINE, FILL = "text", "img2img", "inpaint"  # the daemon's names for the modes
CONTEXT_FRACTION = 0.125  # of the selection's longer side, added around it for context
MIN_CONTEXT_PX = 16
DEFAULT_FEATHER_PX = 4  # for a hard-edged selection, so a fill has no jagged seam
SPOKEN_REFINE_STRENGTH = 0.6  # "from my sketch" with the docker at 100 %: keeps the layout


def canvas_mode(strength=1.0, fill=False):
    """The mode a request runs in, from the docker's (or the API's) two choices."""
    if fill:
        return FILL
    return REFINE if strength < 1.0 else TEXT


def check_strength(strength):
    """A strength as a float above 0 and at most 1, or a VoicebrushError saying so."""
    try:
        value = float(strength)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise VoicebrushError("The strength must be above 0 and at most 1 (1 = a new picture), not %r." % (strength,),
                              code="invalid_value", param="strength")
    return value


def padded_region(canvas_width, canvas_height, selection=None, multiple=8):
    """The canvas area a refine or fill reads: the whole canvas, or the selection's bounds
    with some context around them, clipped to the canvas and grown to multiples of 8 where
    the canvas has room (the model works in blocks of 8 pixels)."""
    if selection is None:
        return Rect(0, 0, canvas_width, canvas_height)
    x, y, width, height = selection
    pad = max(MIN_CONTEXT_PX, int(round(CONTEXT_FRACTION * max(width, height))))
    left, width = _snap_span(x - pad, width + 2 * pad, canvas_width, multiple)
    top, height = _snap_span(y - pad, height + 2 * pad, canvas_height, multiple)
    return Rect(left, top, width, height)


def _snap_span(start, length, limit, multiple):
    """[start, start + length) clipped to [0, limit), then grown to a multiple (right, then left)."""
    end = min(limit, start + length)
    start = max(0, start)
    length = end - start
    wanted = min(limit, -(-length // multiple) * multiple)
    grow = wanted - length
    right = min(grow, limit - end)
    return max(0, start - (grow - right)), wanted


def send_size(region, generation_size):
    """The size to scale the region's pixels to before sending: the generation size when the
    region is larger (never send an 8000x8000 canvas), else None (sent as they are; the
    daemon fits them to the generation size itself)."""
    width, height = generation_size
    if region.width > width or region.height > height:
        return (width, height)
    return None


def generation_size_for(region, native_side):
    return fit_generation_size(region.width, region.height, max_side=native_side)


def mode_label(mode, strength):
    """How the status line and the layer name say what ran: "refine 50%", "fill", "fill 60%"."""
    percent = int(round(strength * 100))
    if mode == REFINE:
        return "refine %d%%" % percent
    if mode == FILL:
        return "fill" if percent >= 100 else "fill %d%%" % percent
    return "new"


def result_name(prompt, mode, strength, seed=None, max_length=64):
    """A result layer's name: the prompt, and for refine and fill what made it, so the
    artist can see later ("stormy clouds (fill, seed 7)"). A new picture keeps the plain
    prompt, as before."""
    if mode == TEXT:
        return layer_name(prompt)
    details = mode_label(mode, strength) + ("" if seed is None else ", seed %d" % seed)
    suffix = " (%s)" % details
    return layer_name(prompt, max_length=max(16, max_length - len(suffix))) + suffix


def need_selection_message():
    return "Select an area first: fill repaints inside the selection (Select > Elliptical, Freehand, ...)."
