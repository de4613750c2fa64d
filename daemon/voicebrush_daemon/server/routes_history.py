"""Pruning the history on demand: POST /v1/history/prune (what `voicebrush history prune` calls).

Listing and reading the history are GET /v1/jobs and GET /v1/jobs/{id}.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..errors import ApiError
from ..jobs.retention import prune
from ..jobs.store import StorageError
from .endpoint import endpoint
from .schemas import PruneRequest, PruneResult
from .state import STORE

routes = web.RouteTableDef()


@routes.post("/v1/history/prune")
@endpoint(
    "Delete old finished jobs now (what `voicebrush history prune` calls); queued and running jobs are never deleted",
    json=PruneRequest,
    needs_models=False,
    responses={200: ("What was deleted", PruneResult)},
    errors=(400, 413, 507),
)
async def prune_history(request: web.Request, body: PruneRequest) -> web.Response:
    retention, dry_run = body.to_options()
    store = request.app[STORE]
    try:
        jobs = await asyncio.get_running_loop().run_in_executor(None, lambda: prune(store, retention, dry_run=dry_run))
    except StorageError as exc:
        raise ApiError(507, f"Could not delete from the history: {exc}", "storage_error", type="server_error") from None
    return web.json_response(
        {
            "object": "voicebrush.prune",
            "dry_run": dry_run,
            "policy": retention.describe(),
            "deleted": [job.id for job in jobs],
            "kept": len(store) - (len(jobs) if dry_run else 0),
        }
    )
