"""The daemon's lifecycle: bind, load the models, serve until told to stop, stop gracefully.

    await run_server(settings, on_ready=lambda daemon: print(daemon.url))

Binding comes first, so a port in use is reported at once instead of after the
models have loaded. `on_ready` is called once the models are loaded and requests
get answers, which is when "listening" is both true and useful. Anything that
stops the start (port, device, data dir, weights) raises StartupError with one
line for the operator and an exit code.

`voicebrush serve` runs it on the main thread; a one-shot command with no daemon to
talk to, and the benchmark, run it on a thread of their own (InProcessDaemon).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Callable

from aiohttp import web

from ..jobs.lock import DataDirInUse, hold_data_dir
from ..jobs.worker import Engines
from ..models import ModelUnavailable
from ..settings import Settings
from .access_log import PathOnlyAccessLogger
from .app import create_app
from .request_handler import DaemonRunner
from .shutdown import leave_if_worker_stuck
from .state import JOBS, STORE

log = logging.getLogger("voicebrush")

# An HTTP probe of whoever holds the port: long enough for a busy daemon, short enough to wait for.
PROBE_TIMEOUT_S = 2.0
SHUTDOWN_TIMEOUT_S = 5.0


class StartupError(Exception):
    """The daemon cannot start. The message is one line for the operator."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class RunningDaemon:
    """What `on_ready` is given: where the daemon answers, and its app (for in-process users)."""

    url: str
    port: int
    app: web.Application


def display_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address `host` resolves to, as aiohttp's own TCPSite
    would open them (IPv6 sockets IPv6-only), but before anything else starts."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # one free port for all of the host's addresses
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            # Listening now: a client that connects while the models load waits in the
            # backlog instead of being refused as if no daemon were there.
            sock.listen(128)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def voicebrush_at(url: str) -> str | None:
    """The version of the voicebrush daemon answering at `url`, or None if what answers
    (if anything) is not one."""
    import aiohttp

    try:
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url + "/v1/health") as response:
                body = await response.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None
    if isinstance(body, dict) and "status" in body and isinstance(body.get("version"), str):
        return body["version"]
    return None


async def _bind(settings: Settings) -> list[socket.socket]:
    where = f"{settings.host}:{settings.port}"
    try:
        return bind_sockets(settings.host, settings.port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise StartupError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    probe_host = "127.0.0.1" if settings.host in ("0.0.0.0", "", "::") else settings.host
    url = display_url(probe_host, settings.port)
    version = await voicebrush_at(url)
    if version is not None:
        raise StartupError(f"a voicebrush daemon (version {version}) already answers on {url}; use it, stop it first, or pick another port with --port")
    raise StartupError(f"cannot listen on {where}: the address is already in use by another program; pick another port with --port")


def check_device(requested: str) -> None:
    """A device that is not there stops the start in one line (rather than a traceback
    from the loader and a daemon answering 503)."""
    if requested in ("auto", "cpu"):
        return  # always there; no need to import torch for it
    import torch

    from ..imaging.device import available_devices, resolve_device

    cuda, mps = available_devices()
    try:
        resolve_device(requested, cuda_available=cuda, mps_available=mps)
    except ValueError as exc:
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise StartupError(f"{exc} (torch {torch.__version__}, {build}); start with --device auto or --device cpu", exit_code=2) from None


async def run_server(
    settings: Settings,
    *,
    load_engines: Callable[[], Engines] | None = None,
    on_ready: Callable[[RunningDaemon], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT on the main thread), then stop gracefully.

    `load_engines` replaces the real model loading (the benchmark shares its engines,
    a one-shot command loads only what it needs). Raises StartupError.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    sockets = await _bind(settings)
    try:
        with hold_data_dir(settings.data_dir):
            check_device(settings.device)
            if load_engines is None:
                log.info("loading the models (--preset %s, Whisper via %s) ...", settings.preset, settings.asr_engine)
            await _serve(settings, sockets, load_engines, on_ready, stop)
    except DataDirInUse as exc:
        raise StartupError(str(exc)) from None
    finally:
        for sock in sockets:
            sock.close()


async def _serve(settings: Settings, sockets: list[socket.socket], load_engines, on_ready, stop: asyncio.Event) -> None:
    app = create_app(settings, load_engines=load_engines)
    # The access log records paths and statuses; aiohttp never logs headers, so a token stays out.
    # DaemonRunner: even requests aiohttp cannot parse are answered in the error shape.
    runner = DaemonRunner(app, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log_class=PathOnlyAccessLogger)
    await runner.setup()  # opens the history and starts loading the models
    queue = app[JOBS]
    try:
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        # Polled rather than awaited in an executor, so a stop during a long load is
        # not held up by a thread waiting for the load to end.
        while not queue.ready.is_set() and not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.1)
            except asyncio.TimeoutError:
                pass
        if not stop.is_set():
            if queue.state == "error":
                error = queue.load_error
                if isinstance(error, ModelUnavailable):
                    raise StartupError(str(error), exit_code=2) from error
                raise StartupError(f"the models failed to load: {type(error).__name__}: {error}") from error
            port = sockets[0].getsockname()[1]  # the real one when --port 0
            log.info("models ready on %s; history in %s (%d jobs)", queue.engines.image.device, settings.data_dir, len(app[STORE]))
            if on_ready is not None:
                on_ready(RunningDaemon(display_url(settings.host, port), port, app))
            await stop.wait()
    finally:
        # Graceful: the worker goes first (the running job is cancelled within one step,
        # queued ones are marked, so terminal events end the open event streams), then
        # the server closes, leaving the data dir consistent.
        await asyncio.get_running_loop().run_in_executor(None, queue.close)
        await runner.cleanup()
        if stop.is_set():
            leave_if_worker_stuck(queue, 0)  # a step that outlasted the shutdown: exit without it


class InProcessDaemon:
    """The daemon on a free loopback port, served from a thread of this process:

        with InProcessDaemon(settings) as daemon:
            Client(daemon.url).run_job(...)

    Entering waits until the models are loaded (or raises StartupError); leaving stops it.
    """

    def __init__(self, settings: Settings, load_engines: Callable[[], Engines] | None = None, ready_timeout: float | None = None) -> None:
        from dataclasses import replace

        self.settings = replace(settings, host="127.0.0.1", port=0, token=None)
        self._load_engines = load_engines
        self._ready_timeout = ready_timeout
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.daemon: RunningDaemon | None = None

    @property
    def url(self) -> str:
        return self.daemon.url

    @property
    def port(self) -> int:
        return self.daemon.port

    @property
    def app(self) -> web.Application:
        return self.daemon.app

    def __enter__(self) -> "InProcessDaemon":
        self._thread = threading.Thread(target=self._run, name="voicebrush-in-process-daemon", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._ready_timeout):
            self.__exit__(None, None, None)
            raise StartupError("the daemon in this process did not get ready in time")
        if self._error is not None:
            self._thread.join(30)
            raise self._error
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(60)

    def _run(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await run_server(self.settings, load_engines=self._load_engines, on_ready=self._on_ready, stop=self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the thread that entered
            self._error = exc if isinstance(exc, StartupError) else StartupError(f"the daemon in this process failed: {type(exc).__name__}: {exc}")
            if not isinstance(exc, StartupError):
                log.debug("in-process daemon failed", exc_info=True)
        finally:
            self._ready.set()

    def _on_ready(self, daemon: RunningDaemon) -> None:
        self.daemon = daemon
        self._ready.set()
