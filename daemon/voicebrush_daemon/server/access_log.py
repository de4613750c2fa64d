"""The daemon's access log: who asked for what, how it went, how long it took.

aiohttp's default format logs the request line with its query string. The daemon
takes its token only from the Authorization header, but a misconfigured client
may still put one (or a prompt) in the URL, so only the path is logged.
"""

from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger


class PathOnlyAccessLogger(AbstractAccessLogger):
    def log(self, request, response, time: float) -> None:
        remote = request.remote or "-"
        self.logger.info(
            '%s "%s %s" %s %s %.3fs',
            remote,
            request.method,
            request.path,
            response.status,
            response.body_length,
            time,
        )
