"""The storyboard flow's pure parts and the live words, without Blender."""

import pytest

from test_blender_logic import load

boards, progress = load("boards"), load("progress")


def test_shot_names_lead_with_the_number():
    assert boards.shot_name(2, "the keeper climbing the stairs") == "Shot 2 The keeper climbing the stairs"
    assert boards.shot_name(3, "   ") == "Shot 3"
    long = boards.shot_name(64, "a very long description of a scene " * 5)
    assert long.startswith("Shot 64 ") and len(long.encode("utf-8")) <= 63


def test_storyboard_request_sends_what_differs_from_the_defaults():
    request = boards.StoryboardRequest(script="a\nb", style=" ink ", seed=4, steps=3, size="344x192",
                                       seed_mode="SEQUENCE")
    assert request.options() == {"seed_mode": "sequence", "style": "ink", "seed": 4, "steps": 3, "size": "344x192"}
    assert boards.StoryboardRequest(script="a").options() == {"seed_mode": "same"}
    with pytest.raises(boards.VoicebrushError):
        boards.StoryboardRequest(script="  ").check()
    with pytest.raises(boards.VoicebrushError, match="does not exist"):
        boards.StoryboardRequest(audio_path="/no/such/take.wav").check()


def test_a_board_that_drew_nothing_fails_readably():
    class NoShots(object):
        server = "http://daemon"

        def create_storyboard(self, **options):
            return {"id": "b1", "shots": [{"index": 1}]}

        def follow_storyboard(self, board_id, on_event=None, cancelled=None):
            on_event("failed", {"index": 1, "id": "j1"})
            return {"id": board_id, "status": "failed",
                    "shots": [{"index": 1, "text": "a fox", "status": "failed", "error": {"message": "out of memory"}}]}

    job = boards.StoryboardJob(boards.StoryboardRequest(script="a fox"), client=NoShots()).run()
    assert job.stage == "failed" and "out of memory" in str(job.error)
    assert job.ended == 1


@pytest.mark.parametrize("text, stable, shown", [
    ("a misty harbour at", "a misty", ("a misty", "harbour at")),
    ("a misty harbour", "", ("", "a misty harbour")),
    (" a misty ", "a misty", ("a misty", "")),
    ("another text", "a misty", ("", "another text")),  # a stable prefix that no longer matches: all of it may change
])
def test_live_words_split_settled_from_changing(text, stable, shown):
    assert progress.live_words(text, stable) == shown
