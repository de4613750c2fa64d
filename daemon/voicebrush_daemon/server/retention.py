"""The daemon's retention policy at work: once at start, then once a day.

Registered after the app's lifecycle context, so the history is open (and jobs cut
off by a crash are already marked) when the first pruning runs.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..jobs.retention import DAY_S, Retention, prune
from ..jobs.store import StorageError
from .state import SETTINGS, STORE

log = logging.getLogger(__name__)


def retention_of(app: web.Application) -> Retention:
    settings = app[SETTINGS]
    return Retention(keep_days=settings.keep_days, max_jobs=settings.max_jobs)


async def apply_retention(app: web.Application) -> None:
    retention, store = retention_of(app), app[STORE]
    try:
        # File deletions are disk work: off the event loop.
        deleted = await asyncio.get_running_loop().run_in_executor(None, lambda: prune(store, retention))
    except StorageError as exc:
        log.error("history retention: %s", exc)
        return
    if deleted:
        log.info("history retention (%s): deleted %d old jobs and their images", retention.describe(), len(deleted))


async def retention_ctx(app: web.Application):
    if not retention_of(app).active:
        yield
        return
    await apply_retention(app)

    async def daily() -> None:
        while True:
            await asyncio.sleep(DAY_S)
            await apply_retention(app)

    task = asyncio.ensure_future(daily())
    yield
    task.cancel()
