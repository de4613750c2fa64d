"""Spoken controls the plugin acts on itself (the daemon handles "without ...", "portrait", ...).

"from my sketch", "keep the layout", "based on this" ask to refine the canvas instead
of painting a new picture. They are taken out of the prompt, as the daemon takes out
its own controls, so the model is not asked to draw a sketch.
"""

import re

_OBJECTS = r"(?:sketch|drawing|canvas|layout|composition|picture|image)"
REFINE_CONTROL = re.compile(
    r"(?:^|(?<=[\s,;.]))(?:and\s+|but\s+)?(?:"
    r"(?:from|based\s+on|using|use|following|follow)\s+(?:my|the|this)\s+" + _OBJECTS + r"|"
    r"keep(?:ing)?\s+(?:my|the|this)\s+" + _OBJECTS + r"|"
    r"based\s+on\s+(?:this|that|it)"
    r")\b[\s,;.!]*",
    re.IGNORECASE,
)


def spoken_refine(text):
    """(the prompt without the refine words, True) when they were said, else (text, False)."""
    text = text or ""
    cleaned, count = REFINE_CONTROL.subn(" ", text)
    if not count:
        return text, False
    cleaned = re.sub(r"\s+", " ", cleaned)
    cleaned = re.sub(r"\s+([,.;!?])", r"\1", cleaned)
    cleaned = re.sub(r"([,;])(?:\s*[,;])+", r"\1", cleaned)
    return cleaned.strip(" ,;.!?"), True
