"""Splitting a script into shots, and what each shot asks of the model: a table of examples."""

from __future__ import annotations

import pytest

from voicebrush_daemon.storyboards.plan import board_size, plan_shot, shot_seed
from voicebrush_daemon.storyboards.script import MAX_SHOTS, ScriptError, shots_of, split_script, strip_marker

SPLITS = [
    # numbered lines, in the ways people number them
    ("1. a lighthouse on a cliff\n2. the keeper on the stairs\n3. a ship in the storm",
     ["a lighthouse on a cliff", "the keeper on the stairs", "a ship in the storm"]),
    ("1) a door\n2: a hall\n#3 a window\n4 - a roof", ["a door", "a hall", "a window", "a roof"]),
    # one shot per line; blank lines and stray spaces are nothing
    ("a lighthouse\n\n\n   \nthe keeper\n", ["a lighthouse", "the keeper"]),
    ("a lighthouse\r\nthe keeper\r\n", ["a lighthouse", "the keeper"]),
    # spoken and written markers inside a line
    ("Shot one, a lighthouse. Shot two, the keeper.", ["a lighthouse", "the keeper"]),
    ("shot 1: a cat; shot 2: a dog", ["a cat", "a dog"]),
    ("Panel 3: a rooftop at night", ["a rooftop at night"]),
    ("Panel 1: a cat. Panel 2: a dog", ["a cat", "a dog"]),
    ("scene number four, a market", ["a market"]),
    ("a lighthouse, next shot, the keeper", ["a lighthouse", "the keeper"]),
    ("a lighthouse. Next panel: the keeper", ["a lighthouse", "the keeper"]),
    ("a quiet harbour cut to a ship in the storm", ["a quiet harbour", "a ship in the storm"]),
    ("a quiet harbour. Smash cut to: lightning", ["a quiet harbour", "lightning"]),
    ("a lighthouse then the keeper and then a ship", ["a lighthouse", "the keeper", "a ship"]),
    ("First shot, a door. Last shot, a window", ["a door", "a window"]),
    ("a harbour. After that, the storm", ["a harbour", "the storm"]),
    # the example, punctuated as Whisper writes it, and as one run-on dictation
    ("Shot one, a lighthouse on a cliff at dusk, wide shot; next shot, the keeper climbing the stairs; cut to, a ship in the storm",
     ["a lighthouse on a cliff at dusk, wide shot", "the keeper climbing the stairs", "a ship in the storm"]),
    ("shot one a lighthouse on a cliff at dusk wide shot next shot the keeper climbing the stairs cut to a ship in the storm",
     ["a lighthouse on a cliff at dusk wide shot", "the keeper climbing the stairs", "a ship in the storm"]),
    ("shot one a lighthouse shot two the keeper shot three a ship", ["a lighthouse", "the keeper", "a ship"]),
    ("shot twenty-one, a cat. shot twenty two a dog", ["a cat", "a dog"]),
    # an introduction before shot one is not drawn
    ("Okay, here is the script. Shot one. A lighthouse. Shot two. The keeper.", ["A lighthouse", "The keeper"]),
    ("The Lighthouse, a storyboard\n1. a cliff\n2. a lamp", ["a cliff", "a lamp"]),
    # words that only look like markers stay words
    ("the sheriff shot two outlaws", ["the sheriff shot two outlaws"]),
    ("a wide shot of two men talking", ["a wide shot of two men talking"]),
    ("a street back then, now and then a car", ["a street back then, now and then a car"]),
    ("the keeper looks after that lamp", ["the keeper looks after that lamp"]),
    ("2.5 metre robot\n3 men on a raft", ["2.5 metre robot", "3 men on a raft"]),
    ("a single run-on dictation with no markers in it at all and a lot of words about a harbour at dawn",
     ["a single run-on dictation with no markers in it at all and a lot of words about a harbour at dawn"]),
    # only markers: no shot
    ("shot one, next shot, cut to", []),
    ("1.\n2.\n\n", []),
    ("", []),
]


@pytest.mark.parametrize("script,shots", SPLITS, ids=[script[:40] for script, _ in SPLITS])
def test_split(script, shots):
    assert split_script(script) == shots


def test_the_marker_words_are_not_drawn():
    shots = split_script("Shot one, a lighthouse. Next shot, a cliff. Cut to the sea. Then the moon. Panel 5: a fish")
    assert shots == ["a lighthouse", "a cliff", "the sea", "the moon", "a fish"]
    for word in ("shot", "next", "cut to", "then", "panel"):
        assert not any(word in shot.lower() for shot in shots), word


def test_a_64_shot_script_is_a_board_and_65_is_too_many():
    script = "\n".join(f"{i}. a panel of a comic, number {i}" for i in range(1, 66))
    assert len(split_script(script)) == 65
    assert len(shots_of("\n".join(script.splitlines()[:MAX_SHOTS]))) == 64
    with pytest.raises(ScriptError) as caught:
        shots_of(script)
    assert caught.value.code == "too_many_shots"
    with pytest.raises(ScriptError) as caught:
        shots_of(shots=["a cat"] * 65)
    assert caught.value.code == "too_many_shots"


@pytest.mark.parametrize("script", ["", "   \n\n", "shot one. next shot. cut to", "1.\n2."])
def test_no_shot_is_an_error(script):
    with pytest.raises(ScriptError) as caught:
        shots_of(script)
    assert caught.value.code == "no_shots"


def test_an_explicit_list_is_kept_shot_for_shot_without_leading_markers():
    assert shots_of(shots=["Shot 1: a cat, then a dog", "2. a bird", "a fish"]) == ["a cat, then a dog", "a bird", "a fish"]
    assert strip_marker("a wide shot") == "a wide shot"


PLANS = [
    # (text, style, board negative) -> (prompt, negative)
    (("a rainy street without people", "", ""), ("a rainy street", "people")),
    (("a rainy street without people", "ink wash", "blurry"), ("a rainy street, ink wash", "blurry, people")),
    (("um can you draw me a lighthouse please", "", ""), ("a lighthouse", "")),
    # format words describe the picture here: the board's frame size does not change
    (("a desert road, landscape", "", ""), ("a desert road, landscape", "")),
    (("a tall tower, portrait", "pencil", ""), ("a tall tower, portrait, pencil", "")),
    (("a lighthouse, wide shot", "", ""), ("a lighthouse, wide shot", "")),
]


@pytest.mark.parametrize("given,expected", PLANS)
def test_spoken_controls_apply_per_shot(given, expected):
    text, style, negative = given
    plan = plan_shot(1, text, style, negative)
    assert (plan.prompt, plan.negative_prompt) == expected
    assert plan.text == text  # the caption is what the script said


def test_a_shot_with_nothing_to_draw_is_an_error():
    with pytest.raises(ScriptError) as caught:
        plan_shot(2, "without people")
    assert caught.value.code == "empty_shot" and "Shot 2" in str(caught.value)


def test_seeds_same_and_sequence():
    assert [shot_seed(i, 100, "same") for i in (1, 2, 3)] == [100, 100, 100]
    assert [shot_seed(i, 100, "sequence") for i in (1, 2, 3)] == [100, 101, 102]
    assert shot_seed(2, 2**32 - 1, "sequence") == 0


def test_the_board_frame_is_16_9_at_the_native_area_unless_given():
    width, height = board_size(None, (768, 768))
    assert (width, height) == (1024, 576)
    assert width % 8 == 0 and height % 8 == 0
    assert board_size((512, 512), (768, 768)) == (512, 512)
