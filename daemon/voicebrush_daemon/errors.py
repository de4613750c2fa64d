"""The one error type that crosses from the daemon's core to its HTTP edge.

Every 4xx/5xx the daemon sends is an ApiError rendered by the error middleware in
the contract's shape: {"error": {"message", "type", "code", "param"}}.
"""

from __future__ import annotations


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        *,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _default_type(status)
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}


def _default_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


class InvalidAudio(ValueError):
    """Bytes that do not decode as audio, or decode to no samples."""


class GenerationCancelled(Exception):
    """Raised by an image engine when its step callback asked it to stop."""


class EngineOutOfMemory(Exception):
    """Raised by an engine when the device ran out of memory; memory is already released."""
