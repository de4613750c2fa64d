"""Leaving the process when the worker is stuck inside a model call at shutdown.

JobQueue.close() waits a while for the running step to end, then records the cut-off
jobs itself. The worker thread may still be inside torch (a first step of minutes on a
CPU, a model load). Python's normal exit would then run the C++ libraries' static
destructors under it, which ends in std::terminate: "terminate called without an
active exception", SIGABRT, after everything was already saved. So the serving process
leaves at once instead, with its own exit code, once the server has closed.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from ..jobs.worker import JobQueue

log = logging.getLogger(__name__)


def leave_if_worker_stuck(queue: JobQueue, rc: int) -> None:
    """Call last, after the runner's cleanup. Only ever ends the process from the main
    thread (`voicebrush serve`), never a test's or an in-process daemon's thread."""
    if not queue.stuck or threading.current_thread() is not threading.main_thread():
        return
    log.warning("the worker is still inside a model call; leaving without waiting for it (everything is saved)")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
