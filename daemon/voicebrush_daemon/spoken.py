"""From what an artist said (or typed) to what the image model is asked.

Speech carries noise a typed prompt does not ("um", "please", "can you draw me"):
`interpret` drops it, then reads the controls. Both speech and a prompt typed for
our own routes (POST /v1/jobs: the plugins, the CLI, the web page) carry the same
controls, read by `read_controls`, so typing and saying the same words draw the
same picture:
- "without X" / "no X"  -> X goes to the negative prompt;
- "landscape", "portrait", "square", "wide shot" -> the aspect, when no size was given.
The OpenAI and AUTOMATIC1111 routes take a prompt literally, as those APIs do.
The job record keeps both the transcript and the result, so nothing is hidden.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

FILLERS = re.compile(r"\b(?:um+|uh+|erm+|er|ah+|hmm+|mm+|uh-huh|you know|i mean)\b[,.]?\s*", re.IGNORECASE)
# Polite or conversational openers that carry no picture ("okay so can you draw me ...").
LEADING_NOISE = re.compile(
    r"^(?:(?:ok(?:ay)?|so|well|right|hey|alright|please)[,.]?\s+)*"
    r"(?:(?:can|could|would) you\s+)?(?:please\s+)?"
    r"(?:(?:draw|paint|generate|create|make|render|show|give|sketch)\s+(?:me\s+|us\s+)?)?"
    r"(?:(?:a|an)\s+(?:picture|image|painting|drawing|sketch|illustration)\s+of\s+)?",
    re.IGNORECASE,
)
TRAILING_NOISE = re.compile(r"[\s,.;!]*(?:\b(?:please|thanks|thank you|that's it|that is all)\b[\s,.;!]*)+$", re.IGNORECASE)
# "without people", "no text, no watermark": up to the next clause boundary.
NEGATION = re.compile(r"(?:^|(?<=[\s,;]))(?:and\s+|but\s+|with\s+)?(?:without|no)\s+(?P<what>[^,.;!?]+)", re.IGNORECASE)

# Aspect words, as width:height. "wide shot" stays in the prompt (it is also framing
# the model understands); a bare "landscape"/"portrait"/"square" clause is only format.
ASPECTS = (
    ("wide shot", 16 / 9, False),
    ("widescreen", 16 / 9, True),
    ("landscape", 3 / 2, None),
    ("portrait", 2 / 3, None),
    ("square", 1.0, None),
)
FORMAT_CLAUSE = re.compile(
    r"^(?:in\s+)?(?:a\s+)?(?P<word>landscape|portrait|square|widescreen)(?:\s+(?:format|orientation|mode|aspect|ratio|shot|image|picture))?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SpokenPrompt:
    prompt: str
    negative_prompt: str
    aspect: float | None  # width / height, when the speaker named one


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.;!?])", r"\1", text)
    text = re.sub(r"([,;])(?:\s*[,;])+", r"\1", text)
    return text.strip(" ,;.!?")


def interpret(transcript: str, keep_format_words: bool = False) -> SpokenPrompt:
    """Speech: drop the fillers and the politeness around the picture, then read the controls.

    keep_format_words: a bare "landscape" / "portrait" clause stays in the prompt (a
    storyboard's frame size is the board's, so such words can only describe the picture);
    the aspect is still reported."""
    text = FILLERS.sub("", transcript)
    text = _tidy(text)
    text = LEADING_NOISE.sub("", text, count=1)
    text = TRAILING_NOISE.sub("", text)
    return read_controls(text, keep_format_words=keep_format_words)


def read_controls(text: str, keep_format_words: bool = False) -> SpokenPrompt:
    """The negative clauses and format words of a prompt, typed or already cleaned speech.
    Nothing else is changed: "paint splatter" stays, where speech would lose a "paint me"."""
    negatives: list[str] = []

    def take_negative(match: re.Match) -> str:
        what = _tidy(match.group("what"))
        if what:
            negatives.append(what)
        return ""

    text = NEGATION.sub(take_negative, text)

    aspect = None
    kept_clauses = []
    for clause in re.split(r"\s*[,;]\s*", _tidy(text)):
        format_only = FORMAT_CLAUSE.match(clause)
        if format_only:
            word = format_only.group("word").lower()
            aspect = aspect or next(a for w, a, _ in ASPECTS if w == word)
            if not keep_format_words:
                continue
        kept_clauses.append(clause)
    text = ", ".join(c for c in kept_clauses if c)
    if aspect is None:
        lowered = text.lower()
        for word, ratio, _ in ASPECTS:
            if re.search(rf"\b{word}\b", lowered):
                aspect = ratio
                break

    return SpokenPrompt(prompt=_tidy(text), negative_prompt=", ".join(negatives), aspect=aspect)


def size_for_aspect(aspect: float, native: tuple[int, int]) -> tuple[int, int]:
    """Width and height near the native pixel count at the given aspect, multiples of 8."""
    area = native[0] * native[1]
    width = math.sqrt(area * aspect)
    height = width / aspect

    def snap(side: float) -> int:
        return int(min(2048, max(64, round(side / 8) * 8)))

    return snap(width), snap(height)
