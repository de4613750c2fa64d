"""Names for images and objects, made from what the artist asked for."""

import re

FALLBACK_NAME = "Voicebrush"

# Blender names hold 63 bytes; leave room for the ".001" it appends to duplicates.
MAX_NAME_BYTES = 48


def name_from_prompt(prompt, max_bytes=MAX_NAME_BYTES):
    """A short readable datablock name: the prompt's first words, cut at a word boundary.

    "a ruined temple in a jungle clearing, overcast" -> "A ruined temple in a jungle clearing overcast".
    """
    words = re.findall(r"[^\W_]+(?:['\-][^\W_]+)*", prompt or "")
    if not words:
        return FALLBACK_NAME
    name = ""
    for word in words:
        candidate = (name + " " + word) if name else word
        if len(candidate.encode("utf-8")) > max_bytes:
            break
        name = candidate
    if not name:
        # One word longer than the limit: cut it on a character boundary.
        name = words[0].encode("utf-8")[:max_bytes].decode("utf-8", "ignore")
    return name[:1].upper() + name[1:]
