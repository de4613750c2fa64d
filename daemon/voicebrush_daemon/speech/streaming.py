"""The policies of live transcription, as plain functions over plain data.

While a take is recorded, its growing audio is decoded again and again. Three rules
decide what the artist sees and when:

- `StableText`: which words will not change any more. LocalAgreement-2 (the policy
  of ufal/whisper_streaming): a word is stable once two consecutive partial
  decodes agree on it and on everything before it. Stable text only ever grows,
  so it can be sent as append-only deltas.
- `Cadence`: when the next partial decode may start. Never sooner than
  `min_interval_s` after the last one started, and never sooner than the last
  decode's own duration allows (`busy_share`), so a slow device gets fewer
  partials instead of a growing backlog. Each decode takes the newest audio.

Nothing here touches a model, a clock or a thread; the callers pass time in.
(Turn detection for the Realtime API's server_vad is in turns.py.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# ---- stable words ---------------------------------------------------------------


@dataclass(frozen=True)
class Partial:
    """What a partial decode shows: all the words heard so far, and the stable prefix."""

    text: str
    stable: str


def _key(word: str) -> str:
    # "Dawn," and "dawn" are the same word for agreement; the shown word keeps its form.
    return re.sub(r"[^\w']", "", word.lower())


def _agreed(a: list[str], b: list[str]) -> int:
    """How many leading words two hypotheses share."""
    count = 0
    for left, right in zip(a, b):
        if _key(left) != _key(right):
            break
        count += 1
    return count


@dataclass
class StableText:
    """LocalAgreement-2 over consecutive partial hypotheses of one growing take.

    A hypothesis's words join the stable text when the previous hypothesis agrees
    with it on them and on all the stable words before them. A hypothesis that now
    disagrees with what is already stable adds nothing (stable text never shrinks
    and is never rewritten); the final transcript is decoded on its own anyway.
    """

    _stable: list[str] = field(default_factory=list)
    _previous: list[str] | None = None

    @property
    def stable(self) -> str:
        return " ".join(self._stable)

    def update(self, hypothesis: str) -> Partial:
        words = hypothesis.split()
        if self._previous is not None:
            agreed = _agreed(self._previous, words)
            if agreed > len(self._stable) and _agreed(self._stable, words) == len(self._stable):
                self._stable.extend(words[len(self._stable) : agreed])
        self._previous = words
        text = " ".join(self._stable + words[len(self._stable) :])
        return Partial(text=text, stable=self.stable)


def appended(sent: str, stable: str) -> str:
    """The delta that turns the text already sent into `stable` (which starts with it)."""
    if not sent:
        return stable
    return stable[len(sent) :]


def completion_delta(sent: str, final: str) -> str:
    """The last delta of an item: the rest of the final transcript when the deltas sent
    so far are its beginning, else nothing (deltas are append-only; the completed
    event carries the whole transcript)."""
    return final[len(sent) :] if final.startswith(sent) else ""


# ---- when to decode -------------------------------------------------------------

MIN_INTERVAL_S = 0.5
# Partials may keep the speech thread busy at most this share of the time: a decode
# that took 0.4 s is followed by the next one 0.8 s after it started, not at once.
BUSY_SHARE = 0.5


@dataclass(frozen=True)
class Cadence:
    min_interval_s: float = MIN_INTERVAL_S
    busy_share: float = BUSY_SHARE

    def next_start(self, started: float, decode_s: float) -> float:
        """When the next partial may start, given when the last one started and how long it took."""
        return started + max(self.min_interval_s, decode_s / self.busy_share)
