"""From a script (typed, pasted or dictated) to the list of shots it describes.

    split_script("1. a lighthouse at dusk\\n2. the keeper on the stairs")
    == ["a lighthouse at dusk", "the keeper on the stairs"]

The rules, in order (tests/daemon/test_storyboard_script.py has a table of examples):

1. Every non-empty line is at least one shot; blank lines separate nothing more.
2. A line may start with a list number: "1.", "2)", "3:", "#4", "5 -". It is a marker.
3. A shot also starts at a spoken or written marker inside a line, which is how one
   run-on dictation becomes several shots:
   - "shot two", "panel 3", "scene number four", "frame 5" (a number in digits or
     words): at the start of a clause (line start, or after , . ; : ! ? or a dash), or
     when a ":" "," "." follows it ("... at dusk shot 2: the keeper"), or anywhere when
     it is the next number after the previous numbered marker ("shot one ... shot two");
   - "first shot", "opening panel", "last scene", "final shot": at the start of a clause;
   - "next shot" / "next panel" / "next scene", "cut to" (also "smash cut to", "we cut
     to"), "then" / "and then": anywhere ("back then", "by then", "until then", "since
     then", "now and then" stay words); "after that": at the start of a clause.
4. The marker words are not drawn: they are removed, with the punctuation around them;
   what is left of each shot is trimmed, and a marker with nothing after it is no shot.
5. Words before a marker numbered 1 ("shot one", "panel 1", "1." on a line, "first
   shot") are an introduction, not a shot: "Okay, the script. Shot one, a lighthouse..."

Splitting is all this module does: what a shot's words mean to the image model (spoken
controls such as "without people") is decided per shot by spoken.interpret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SHOTS = 64


class ScriptError(ValueError):
    """A script that holds no shot, or too many. `code` is the API's error code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_NUMBER_WORDS = {word: value for value, word in enumerate(_UNITS)}

NUMBER = (
    r"(?:\d{1,3}"
    r"|(?:" + "|".join(_TENS) + r")(?:[\s-](?:" + "|".join(_UNITS[1:10]) + r"))?"
    r"|" + "|".join(sorted(_UNITS[1:], key=len, reverse=True)) + r")"
)
_KIND = r"(?:shot|panel|scene|frame)"
MARKER = re.compile(
    rf"\b(?:(?P<numbered>{_KIND}\s+(?:number\s+|\#\s*)?(?P<number>{NUMBER}))"
    rf"|(?P<ordinal>(?P<which>first|opening|last|final)\s+{_KIND})"
    rf"|(?P<next>next\s+{_KIND})"
    r"|(?P<cut>(?:(?:smash|hard|we)\s+)?cut\s+to)"
    r"|(?P<then>(?:and\s+)?then|after\s+that))\b",
    re.IGNORECASE,
)
LIST_NUMBER = re.compile(r"^\s*(?:#\s*(?P<hashed>\d{1,3})\s*[.):]?|(?P<number>\d{1,3})\s*(?:[.):](?=\s|$)|\s[-–—]))\s*")
CLAUSE_END = ",.;:!?-–—"
# Words that make a following "then" part of the picture, not a marker.
THEN_KEPT_AFTER = {"back", "by", "until", "till", "since", "now"}
TRIM = " \t,.;:!?-–—"


def number_value(words: str) -> int | None:
    """12 for "12" or "twelve", 21 for "twenty one" / "twenty-one"."""
    words = words.lower().strip()
    if words.isdigit():
        return int(words)
    if words in _NUMBER_WORDS:
        return _NUMBER_WORDS[words]
    tens, _, unit = re.sub(r"[\s-]+", " ", words).partition(" ")
    if tens in _TENS:
        return _TENS[tens] + (_NUMBER_WORDS.get(unit, 0) if unit else 0)
    return None


@dataclass(frozen=True)
class _Cut:
    start: int  # where the marker's words begin
    end: int  # where the shot's own words begin
    first: bool  # numbered 1: what comes before it is an introduction


def _clause_start(text: str, at: int) -> bool:
    before = text[:at].rstrip()
    return not before or before[-1] in CLAUSE_END


def _cuts(line: str, previous_number: list[int | None]) -> list[_Cut]:
    cuts = []
    listed = LIST_NUMBER.match(line)
    if listed:
        value = int(listed.group("number") or listed.group("hashed"))
        cuts.append(_Cut(0, listed.end(), value == 1))
        previous_number[0] = value
    for match in MARKER.finditer(line, listed.end() if listed else 0):
        start, end = match.span()
        after = line[end:]
        if match.group("numbered"):
            value = number_value(match.group("number"))
            followed = bool(re.match(r"\s*[:,.]", after))
            expected = previous_number[0] is not None and value == previous_number[0] + 1
            if not (_clause_start(line, start) or followed or expected):
                continue
            previous_number[0] = value
            cuts.append(_Cut(start, end, value == 1))
        elif match.group("ordinal"):
            if not _clause_start(line, start):
                continue
            cuts.append(_Cut(start, end, match.group("which").lower() in ("first", "opening")))
        elif match.group("then"):
            said = match.group("then").lower()
            word_before = re.search(r"(\w+)\W*$", line[:start])
            if said.startswith("after") and not _clause_start(line, start):
                continue
            if not said.startswith("after") and word_before and word_before.group(1).lower() in THEN_KEPT_AFTER:
                continue
            cuts.append(_Cut(start, end, False))
        else:
            cuts.append(_Cut(start, end, False))
    return cuts


def split_script(script: str) -> list[str]:
    """The shots of a script, in order, marker words removed (rules in the module's docstring)."""
    pieces: list[tuple[str, bool]] = []  # (text, starts at a marker numbered 1)
    previous_number: list[int | None] = [None]
    for line in script.splitlines():
        if not line.strip():
            continue
        position, first = 0, False
        for cut in _cuts(line, previous_number):
            pieces.append((line[position:cut.start], first))
            position, first = cut.end, cut.first
        pieces.append((line[position:], first))
    starts = [i for i, (_, first) in enumerate(pieces) if first]
    if starts:
        pieces = pieces[starts[0]:]  # rule 5: the introduction is not drawn
    shots = []
    for text, _ in pieces:
        text = re.sub(r"\s+", " ", text).strip(TRIM)
        if text:
            shots.append(text)
    return shots


def strip_marker(shot: str) -> str:
    """One shot of an explicit list, with a leading marker ("Shot 3:", "2.") removed."""
    cuts = _cuts(shot, [None])
    if cuts and not shot[: cuts[0].start].strip(TRIM):
        shot = shot[cuts[0].end:]
    return re.sub(r"\s+", " ", shot).strip(TRIM)


def shots_of(script: str | None = None, shots: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The board's shot texts from a script or an explicit list; ScriptError when there
    is none (empty, or only markers) or more than MAX_SHOTS."""
    texts = split_script(script or "") if shots is None else [strip_marker(shot) for shot in shots]
    texts = [text for text in texts if text]
    if not texts:
        raise ScriptError("The script holds no shot to draw (it is empty, or only shot markers).", "no_shots")
    if len(texts) > MAX_SHOTS:
        raise ScriptError(f"The script has {len(texts)} shots; a storyboard holds at most {MAX_SHOTS}.", "too_many_shots")
    return texts
