"""Conditional and partial requests for stored files, refused in the contract's shape.

web.FileResponse answers a malformed or unsatisfiable Range with an empty 416 (and a
failed If-Match with an empty 412), after every middleware has run, under whatever
Content-Type the route set. check_file_request makes the same decisions first, by the
same rules, and raises them as ApiErrors; what it lets through FileResponse serves
(200, 206 or 304) exactly as before.
"""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import hdrs, web

from ..errors import ApiError


def _etag(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns:x}-{st.st_size:x}"  # FileResponse's


def _matches(etag: str, etags) -> bool:
    # If-Match compares strongly; "*" matches any stored file.
    if len(etags) == 1 and etags[0].value == "*":
        return True
    return any(e.value == etag for e in etags if not e.is_weak)


def check_file_request(request: web.Request, path: Path) -> None:
    headers = request.headers
    if not any(name in headers for name in (hdrs.RANGE, hdrs.IF_MATCH, hdrs.IF_UNMODIFIED_SINCE)):
        return
    st = path.stat()
    size = st.st_size
    if_match = request.if_match
    unmodified_since = request.if_unmodified_since
    if (if_match is not None and not _matches(_etag(st), if_match)) or (
        unmodified_since is not None and if_match is None and st.st_mtime > unmodified_since.timestamp()
    ):
        raise ApiError(412, "The image is not the version the request's If-Match / If-Unmodified-Since names.", "precondition_failed")
    if hdrs.RANGE not in headers:
        return
    if_range = request.if_range
    if if_range is not None and st.st_mtime > if_range.timestamp():
        return  # the whole file goes out instead: the range was for another version
    unsatisfiable = ApiError(
        416,
        f"The Range must be one byte range within the image's {size} bytes, e.g. 'bytes=0-1023'.",
        "range_not_satisfiable",
        param="Range",
        headers={hdrs.CONTENT_RANGE: f"bytes */{size}"},
    )
    try:
        byte_range = request.http_range
    except ValueError:
        raise unsatisfiable from None
    start, end = byte_range.start, byte_range.stop
    if start is None or (start < 0 and end is None):
        return  # no range, or a suffix: always satisfiable
    if start >= size:
        raise unsatisfiable
