"""The worker's fair queue: round robin over requests, a storyboard being one."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import pytest

from voicebrush_daemon.jobs.scheduling import FairQueue


@dataclass
class Work:
    name: str
    lane: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


def board(name: str, shots: int) -> list[Work]:
    return [Work(f"{name}{i}", lane=name) for i in range(1, shots + 1)]


def drain(fair: FairQueue) -> list[str]:
    taken = []
    while True:
        try:
            taken.append(fair.get_nowait().name)
        except queue.Empty:
            return taken


def test_one_lane_is_first_in_first_out():
    fair = FairQueue(maxsize=4)
    for work in board("a", 5):
        fair.put_nowait(work)
    assert drain(fair) == ["a1", "a2", "a3", "a4", "a5"]


def test_plain_requests_keep_their_arrival_order():
    fair = FairQueue(maxsize=4)
    for name in ("x", "y", "z"):
        fair.put_nowait(Work(name))
    assert drain(fair) == ["x", "y", "z"]


def test_a_picture_behind_a_40_shot_board_waits_for_one_shot_not_forty():
    fair = FairQueue(maxsize=16)
    for work in board("b", 40):
        fair.put_nowait(work)
    fair.put_nowait(Work("picture"))
    order = drain(fair)
    assert order.index("picture") == 1  # b1 was first in line; then it is the picture's turn
    assert [name for name in order if name != "picture"] == [f"b{i}" for i in range(1, 41)]


def test_a_picture_arriving_while_a_board_runs_is_next():
    fair = FairQueue(maxsize=16)
    for work in board("b", 40):
        fair.put_nowait(work)
    assert fair.get_nowait().name == "b1"  # the worker is drawing shot 1
    assert fair.get_nowait().name == "b2"
    fair.put_nowait(Work("picture"))
    assert fair.get_nowait().name == "b3"  # the board was already in line ahead of it
    assert fair.get_nowait().name == "picture"


def test_two_boards_and_pictures_take_turns():
    fair = FairQueue(maxsize=16)
    for work in board("a", 3):
        fair.put_nowait(work)
    for work in board("b", 3):
        fair.put_nowait(work)
    fair.put_nowait(Work("x"))
    fair.put_nowait(Work("y"))
    assert drain(fair) == ["a1", "b1", "x", "y", "a2", "b2", "a3", "b3"]


def test_capacity_counts_requests_not_shots():
    fair = FairQueue(maxsize=2)
    for work in board("b", 64):
        fair.put_nowait(work)
    fair.put_nowait(Work("x"))
    assert fair.qsize() == 65 and fair.full()
    late = Work("late")
    assert fair.refuses(late)
    with pytest.raises(queue.Full):
        fair.put_nowait(late)
    more = Work("b65", lane="b")
    assert not fair.refuses(more)  # a board already waiting takes its remaining shots
    fair.put_nowait(more)
    assert fair.qsize() == 66


def test_a_drained_lane_frees_its_place():
    fair = FairQueue(maxsize=1)
    fair.put_nowait(Work("x"))
    assert fair.refuses(Work("y"))
    fair.get_nowait()
    assert not fair.full() and not fair.refuses(Work("y"))
    fair.put_nowait(Work("y"))


def test_cancelled_work_goes_first():
    fair = FairQueue(maxsize=16)
    fair.put_nowait(Work("picture"))
    shots = board("b", 5)
    for work in shots:
        fair.put_nowait(work)
    for work in shots[1:]:
        work.cancel.set()
    assert drain(fair) == ["b2", "b3", "b4", "b5", "picture", "b1"]
    assert fair.lanes() == 0


def test_get_waits_for_work_and_times_out():
    fair = FairQueue(maxsize=4)
    with pytest.raises(queue.Empty):
        fair.get(timeout=0.01)
    got = []
    taker = threading.Thread(target=lambda: got.append(fair.get().name))
    taker.start()
    fair.put_nowait(Work("x"))
    taker.join(10)
    assert got == ["x"]
