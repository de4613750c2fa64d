"""The order the one worker takes work in, so nobody waits behind a long storyboard.

The rule, round robin over requests:
- every request waits in a lane of its own: a picture, a dictation, a transcription,
  a redone shot. A storyboard's shots share one lane: the board is one request;
- the worker takes the first item of the first lane, and that lane (if it still holds
  work) goes to the back of the line; a new lane joins at the back.
So a picture queued while a 40-shot board waits runs after at most one shot of each
board ahead of it (plus the requests that were already waiting), never after the whole
board; and two boards take turns shot by shot.

Cancelled work goes first: it ends at once (the worker only marks it cancelled), so a
cancelled board is over within one denoising step instead of waiting its turns.

Capacity counts requests, not shots, with the same meaning as before: at most
`maxsize` lanes wait; a new one beyond that is refused with queue.Full (the worker
answers 429 with Retry-After), while a lane already waiting takes more items.

A drop-in for the queue.Queue the worker used (put_nowait, get, get_nowait, qsize,
full, maxsize). Items say where they belong through two optional attributes: `lane`
(a hashable key; None or absent: a lane of its own) and `cancel` (a threading.Event).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Hashable


class FairQueue:
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        # Lanes in turn order: the first is served next. Keys are the items' lanes, or a
        # fresh object for an item that has a lane of its own.
        self._lanes: OrderedDict[Hashable, deque] = OrderedDict()
        self._count = 0
        self._changed = threading.Condition()

    # ---- putting ---------------------------------------------------------------

    @staticmethod
    def _lane_of(item: Any) -> Hashable | None:
        return getattr(item, "lane", None)

    def refuses(self, item: Any) -> bool:
        """Whether put_nowait(item) would raise queue.Full right now."""
        lane = self._lane_of(item)
        with self._changed:
            return (lane is None or lane not in self._lanes) and len(self._lanes) >= self.maxsize

    def put_nowait(self, item: Any) -> None:
        lane = self._lane_of(item)
        with self._changed:
            if lane is None or lane not in self._lanes:
                if len(self._lanes) >= self.maxsize:
                    raise queue.Full
                key = object() if lane is None else lane
                self._lanes[key] = deque()
            else:
                key = lane
            self._lanes[key].append(item)
            self._count += 1
            self._changed.notify()

    # ---- taking ----------------------------------------------------------------

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        with self._changed:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._count:
                if not block:
                    raise queue.Empty
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                self._changed.wait(remaining)
            return self._take()

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def _take(self) -> Any:
        for key, lane in self._lanes.items():
            for item in lane:
                if _is_cancelled(item):
                    lane.remove(item)
                    self._count -= 1
                    if not lane:
                        del self._lanes[key]
                    return item
        key, lane = next(iter(self._lanes.items()))
        item = lane.popleft()
        self._count -= 1
        if lane:
            self._lanes.move_to_end(key)
        else:
            del self._lanes[key]
        return item

    # ---- looking ---------------------------------------------------------------

    def qsize(self) -> int:
        """Items waiting (shots count one each): what health reports as waiting."""
        with self._changed:
            return self._count

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        """No new request can join; a lane already waiting still takes items."""
        with self._changed:
            return len(self._lanes) >= self.maxsize

    def lanes(self) -> int:
        with self._changed:
            return len(self._lanes)


def _is_cancelled(item: Any) -> bool:
    cancel = getattr(item, "cancel", None)
    return cancel is not None and cancel.is_set()
