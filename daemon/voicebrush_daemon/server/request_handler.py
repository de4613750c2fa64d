"""The daemon's AppRunner: the errors aiohttp answers on its own, in the contract's shape.

A request aiohttp cannot parse (a bad request line or method, a bad Content-Length,
Content-Length with chunked, a bad chunk size, a NUL in a header, a duplicate Host, a
20 KB header) never reaches a middleware: aiohttp's RequestHandler.handle_error answers
it in plain text. No public hook changes that answer (aio-libs/aiohttp#3287), so the
runner's server hands out request handlers whose handle_error speaks JSON.

Use DaemonRunner wherever the app is served (server/runner.py, tests) instead of
web.AppRunner; everything else about it is AppRunner's.
"""

from __future__ import annotations

import logging
import re

from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from ..errors import ApiError

log = logging.getLogger(__name__)


# aiohttp's own messages quote the offending bytes (an Authorization header with a NUL
# in it would be quoted whole), so each kind gets a sentence of ours instead. Subclasses
# come before their bases.
PARSE_ERRORS = (
    (http_exceptions.LineTooLong, "a request line or header is longer than the daemon reads"),
    (http_exceptions.BadHttpMethod, "the method is not a valid HTTP method"),
    (http_exceptions.BadStatusLine, "the request line is malformed"),
    (http_exceptions.InvalidURLError, "the request target is not a valid URL"),
    (http_exceptions.InvalidHeader, "a header is malformed"),
    (http_exceptions.ContentEncodingError, "the body's Content-Encoding is not one the daemon decodes (gzip and deflate are)"),
    (http_exceptions.ContentLengthError, "the body is shorter than its Content-Length"),
    (http_exceptions.TransferEncodingError, "the body's chunked framing is malformed"),
)


def describe_parse_error(exc: BaseException | None, message: str | None) -> str:
    for kind, sentence in PARSE_ERRORS:
        if isinstance(exc, kind):
            return sentence
    # A plain BadHttpMessage: its first line says what ("Duplicate 'Host' header found.",
    # "Invalid character in chunk size:"), later lines or a repr quote the bytes.
    text = (message or "").strip().split("\n", 1)[0]
    text = re.split(r":?\s*(?:bytearray\()?b['\"]", text, maxsplit=1)[0]
    return text.rstrip(" :.")[:160] or "malformed request"


class ContractErrorHandler(RequestHandler):
    __slots__ = ()  # the same layout as RequestHandler, so a built handler can take this class

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was already being sent; the connection is closed instead")
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            error = ApiError(status, "Internal error; the daemon log has the details.", "internal_error")
        else:
            # The client's mistake, reported to it: one line in our log, without aiohttp's
            # message (it quotes request bytes, which may hold a token).
            log.info("unparsable request from %s: %s", request.remote, type(exc).__name__ if exc else status)
            error = ApiError(status, f"The request is not valid HTTP: {describe_parse_error(exc, message)}.", "invalid_http")
        response = web.json_response(error.body(), status=status)
        response.force_close()
        return response

    def log_exception(self, *args, **kwargs) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, web.RequestPayloadError):
            # A body that broke off (bad gzip, short chunked body), met again when aiohttp
            # reads what is left of it after the answer: the route has already said 400.
            log.info("request body from a client broke off: %s", type(exc.__cause__ or exc).__name__)
            return
        super().log_exception(*args, **kwargs)


class _ContractErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        handler = super().__call__()
        handler.__class__ = ContractErrorHandler
        return handler


class DaemonRunner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _ContractErrorServer
        return server
