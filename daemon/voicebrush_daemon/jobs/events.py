"""Per-job event logs and their live subscribers, for the SSE route.

Lives on the event loop; the worker thread publishes through
loop.call_soon_threadsafe. A subscriber that arrives late first gets the job's
events so far, then the live ones, and its stream ends after the terminal event.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

TERMINAL_EVENTS = frozenset({"done", "failed", "cancelled"})
KEPT_LOGS = 64  # finished jobs whose full logs (with previews) stay in memory


class EventHub:
    def __init__(self) -> None:
        self._logs: OrderedDict[str, list[tuple[str, dict[str, Any]]]] = OrderedDict()
        self._subscribers: dict[str, set[asyncio.Queue]] = {}

    def publish(self, job_id: str, event: str, data: dict[str, Any]) -> None:
        log = self._logs.setdefault(job_id, [])
        log.append((event, data))
        for queue in self._subscribers.get(job_id, ()):
            queue.put_nowait((event, data))
        if event in TERMINAL_EVENTS:
            self._logs.move_to_end(job_id)
            self._forget_old()

    def _forget_old(self) -> None:
        finished = [jid for jid, log in self._logs.items() if log and log[-1][0] in TERMINAL_EVENTS]
        for job_id in finished[: max(0, len(finished) - KEPT_LOGS)]:
            if not self._subscribers.get(job_id):
                del self._logs[job_id]

    def has_log(self, job_id: str) -> bool:
        return job_id in self._logs

    def subscribe(self, job_id: str, backlog: list[tuple[str, dict[str, Any]]] | None = None) -> "Subscription":
        """Past events (or `backlog` when no log is kept), then live ones, until terminal."""
        queue: asyncio.Queue = asyncio.Queue()
        # Subscribing and copying the log happen with no await between them, so every
        # event is either in the copy or arrives live, never both.
        for item in self._logs.get(job_id, backlog or []):
            queue.put_nowait(item)
        self._subscribers.setdefault(job_id, set()).add(queue)
        return Subscription(self, job_id, queue)

    def _unsubscribe(self, job_id: str, queue: asyncio.Queue) -> None:
        subscribers = self._subscribers.get(job_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[job_id]


class Subscription:
    def __init__(self, hub: EventHub, job_id: str, queue: asyncio.Queue) -> None:
        self._hub, self._job_id, self._queue = hub, job_id, queue
        self.ended = False

    async def next(self, timeout: float | None = None) -> tuple[str, dict[str, Any]] | None:
        """The next event; None on timeout or once the terminal event was delivered."""
        if self.ended:
            return None
        try:
            event, data = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if event in TERMINAL_EVENTS:
            self.ended = True
            self.close()
        return event, data

    def close(self) -> None:
        self._hub._unsubscribe(self._job_id, self._queue)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
