"""The app factory: the whole server is create_app(settings), buildable in a test."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from aiohttp import web

from ..jobs.events import EventHub
from ..jobs.listening import Listening, TakeLimits
from ..jobs.store import JobStore
from ..jobs.worker import Engines, JobQueue
from ..settings import Settings
from . import realtime, routes_a1111, routes_audio, routes_history, routes_images, routes_jobs, routes_meta, routes_storyboards, routes_stream
from .middleware import error_shape, make_access_middleware, make_cors_headers
from .retention import retention_ctx
from .state import HUB, JOBS, SETTINGS, STORE

log = logging.getLogger(__name__)


def load_real_engines(settings: Settings) -> Engines:
    # Imported here: torch and the model libraries take seconds to import, and a
    # test that brings its own engines should not pay for them.
    from ..imaging import load_image_generator
    from ..speech import load_transcriber

    return Engines(image=load_image_generator(settings), speech=load_transcriber(settings))


def create_app(settings: Settings, load_engines: Callable[[], Engines] | None = None) -> web.Application:
    # Bodies are read and limited by the handlers (uploads.py), which can drain an
    # oversized upload and answer 413 in the contract's shape.
    app = web.Application(
        client_max_size=settings.max_upload_bytes + 1024 * 1024,
        # a1111_detail outermost: it adds A1111's `detail` to /sdapi/ errors, every one of
        # which error_shape has already put in the contract's shape.
        middlewares=[routes_a1111.a1111_detail, error_shape, make_access_middleware(settings)],
    )
    store = JobStore(settings.data_dir)
    hub = EventHub()
    queue = JobQueue(
        store,
        hub,
        load_engines or (lambda: load_real_engines(settings)),
        max_waiting=settings.queue_size,
        preview_every=settings.preview_every,
        work_budget=settings.work_budget,
    )
    app[SETTINGS], app[STORE], app[HUB], app[JOBS] = settings, store, hub, queue
    limits = TakeLimits(settings.max_listening, settings.max_take_seconds, settings.audio_timeout_s)
    app[routes_stream.LISTENING] = listening = Listening(queue, hub, store, limits)
    app.on_response_prepare.append(make_cors_headers(settings))

    async def lifecycle(app: web.Application):
        interrupted = store.open()
        for job in interrupted:
            log.warning("job %s was cut off by a stop; marked failed (interrupted)", job.id)
        queue.start(asyncio.get_running_loop())
        listening.start()
        yield
        await listening.close()
        await asyncio.get_running_loop().run_in_executor(None, queue.close)

    app.cleanup_ctx.append(lifecycle)
    app.cleanup_ctx.append(retention_ctx)  # after lifecycle: the history is open by then
    for module in (routes_meta, routes_audio, routes_images, routes_jobs, routes_stream, realtime, routes_history, routes_a1111):
        app.add_routes(module.routes)
    routes_storyboards.install(app, settings, store, hub, queue)
    return app
