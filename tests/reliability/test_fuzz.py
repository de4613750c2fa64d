"""Hostile input: schemathesis fuzzes every route of the daemon's own /openapi.json.

The real app with the real tiny engines, over a real loopback port. Each operation gets
schema-valid (positive) and schema-violating (negative) cases. For every answer:
no 5xx, the status, content type, headers and body conform to the document, every
error has the contract's shape exactly, and schema-violating input is refused.

Generation cost is kept honest rather than hidden: the document's bounds stay the real
ones (n up to 8, steps up to 500), the two generating routes get a smaller budget,
a synchronous generation that takes longer than the client's timeout is dropped by
the client (which cancels its job, see test_clients), and each accepted job is
cancelled with DELETE right away, as an impatient user would. A storyboard is many jobs:
each accepted board (and each redone shot) is cancelled at once with DELETE on the board,
so what the fuzzer's boards cost is at most one denoising step each.
"""

from __future__ import annotations

import collections
import time

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from reliability_support import assert_error_shape, served_app  # noqa: F401 (fixture)

CASES = 30  # per operation and mode
GENERATING = {
    "POST /v1/images/generations": 20, "POST /v1/jobs": 20, "POST /v1/images/edits": 15,
    "POST /v1/storyboards": 12, "POST /v1/storyboards/{board_id}/shots/{index}": 12,
    "POST /sdapi/v1/txt2img": 15, "POST /sdapi/v1/img2img": 15, "POST /sdapi/v1/extra-single-image": 15,
}
# The routes that answer only when the picture is made: a client gives up on them.
SYNCHRONOUS = {"POST /v1/images/generations", "POST /v1/images/edits", "POST /sdapi/v1/txt2img", "POST /sdapi/v1/img2img"}
GENERATION_TIMEOUT_S = 2.0
# Schema-valid but refused, by rules a JSON schema cannot state: bytes that do not
# decode as audio, sizes that are not multiples of 8, a form with neither file nor prompt,
# a script of only shot markers or of more than 64 shots, a shot with nothing to draw,
# strings that are no picture's base64, A1111 sampler and model names the daemon lacks,
# raw PCM for a job that is not listening (or of an odd length), a WebSocket route asked
# over plain HTTP (426: it cannot be fuzzed this way; tests/daemon/test_realtime.py drives it).
STREAM_AUDIO = "POST /v1/jobs/{job_id}/audio"
SEMANTIC_RULES = {
    "POST /v1/audio/transcriptions", "POST /v1/images/generations", "POST /v1/jobs", "POST /v1/images/edits",
    "POST /v1/storyboards", "POST /v1/storyboards/{board_id}/shots/{index}",
    "POST /sdapi/v1/txt2img", "POST /sdapi/v1/img2img", "POST /sdapi/v1/extra-single-image", "POST /sdapi/v1/options",
    STREAM_AUDIO, "GET /v1/realtime",
}


@schemathesis.serializer("audio/L16", "audio/pcm")
def raw_pcm(ctx, value) -> bytes:
    """The streamed take's body is raw bytes; whatever the fuzzer made becomes bytes."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return repr(value).encode()


def assert_answer_error_shape(label: str, body) -> None:
    """The contract's shape; on A1111's routes with its `detail` string beside it."""
    if " /sdapi/" in label:
        assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"], body
        body = {key: value for key, value in body.items() if key != "detail"}
    assert_error_shape(body)


def fuzz_operation(operation, mode, examples, url, session, tally, failures, **fixed):
    label = operation.label

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: a failure here reproduces
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def run(case):
        timeout = GENERATION_TIMEOUT_S if label in SYNCHRONOUS else 30
        if label == STREAM_AUDIO and mode == GenerationMode.POSITIVE and not fixed:
            # Schema-valid audio goes to a job that is really listening: a fresh one per case.
            opened = session.post(f"{url}/v1/jobs", json={"stream_audio": True, "steps": 1, "size": "64x64"}, timeout=30)
            assert opened.status_code == 202, opened.text
            case.path_parameters = {**(case.path_parameters or {}), "job_id": opened.json()["id"]}
            tally["listening takes fuzzed"] += 1
        try:
            response = case.call(base_url=url, session=session, timeout=timeout)
        except requests.exceptions.ReadTimeout:
            tally["dropped by the client (timeout)"] += 1
            return
        tally[response.status_code] += 1
        tally["cases"] += 1
        problems = []
        try:
            excluded = [positive_data_acceptance] if label in SEMANTIC_RULES else []
            if response.status_code == 413:
                # Too large is a refusal too (schemathesis counts only 4xx it lists), and
                # a schema-violating form with a field over 64 KB is refused before it is read.
                excluded.append(negative_data_rejection)
            case.validate_response(response, excluded_checks=excluded, transport_kwargs={"base_url": url, "session": session})
        except Exception as exc:  # schemathesis' FailureGroup: collected, all reported at the end
            problems.append(str(exc)[:3000])
        if response.status_code >= 400:
            try:
                assert_answer_error_shape(label, response.json())
            except Exception as exc:
                problems.append(f"error shape: {exc!r}: {response.text[:300]}")
        if problems:
            failures.append((label, mode.value, response.status_code, case.as_curl_command(), problems))
        if label in ("POST /v1/jobs", STREAM_AUDIO) and response.status_code in (200, 202):
            session.delete(f"{url}/v1/jobs/{response.json()['id']}", timeout=30)
        if label.startswith("POST /v1/storyboards") and response.status_code == 202:
            session.delete(f"{url}/v1/storyboards/{response.json()['id']}", timeout=30)

    try:
        run()
    except Unsatisfiable:
        pass  # e.g. no schema-violating request exists for GET /v1/health


def test_fuzz_every_route_from_openapi(served_app):
    served = served_app()
    session = requests.Session()
    # One finished job with an image, so the id routes are also fuzzed with ids that exist.
    done = session.post(served.url + "/v1/images/generations", json={"prompt": "a fox", "size": "64x64", "steps": 1}, timeout=60).json()
    job_id = done["id"]
    # And a finished two-shot storyboard, for the storyboard id routes.
    board = session.post(served.url + "/v1/storyboards", json={"shots": ["a fox", "a hare"], "size": "64x64", "steps": 1}, timeout=60).json()
    board_id = board["id"]
    served.wait_idle(timeout=60)

    schema = schemathesis.openapi.from_url(served.url + "/openapi.json")
    tally: collections.Counter = collections.Counter()
    per_operation: dict[str, int] = {}
    failures: list = []
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "GET /v1/health", "GET /v1/models", "POST /v1/audio/transcriptions", "POST /v1/images/generations",
        "POST /v1/jobs", "GET /v1/jobs", "GET /v1/jobs/{job_id}", "DELETE /v1/jobs/{job_id}",
        "GET /v1/jobs/{job_id}/events", "GET /v1/images/{name}.png", "POST /v1/images/edits", STREAM_AUDIO, "GET /v1/realtime",
        "POST /v1/storyboards", "GET /v1/storyboards", "GET /v1/storyboards/{board_id}", "DELETE /v1/storyboards/{board_id}",
        "GET /v1/storyboards/{board_id}/events", "POST /v1/storyboards/{board_id}/shots/{index}",
        "GET /v1/storyboards/{board_id}/sheet.png", "GET /v1/storyboards/{board_id}/sheet.pdf",
        "POST /sdapi/v1/txt2img", "POST /sdapi/v1/img2img", "POST /sdapi/v1/extra-single-image", "GET /sdapi/v1/samplers",
        "GET /sdapi/v1/schedulers", "GET /sdapi/v1/sd-models", "GET /sdapi/v1/upscalers", "GET /sdapi/v1/scripts",
        "GET /sdapi/v1/progress", "GET /sdapi/v1/options", "POST /sdapi/v1/options", "POST /sdapi/v1/interrupt",
    }  # schemathesis leaves out the document's own route; it is loaded above
    for operation in operations:
        before = tally["cases"] + tally["dropped by the client (timeout)"]
        examples = GENERATING.get(operation.label, CASES)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz_operation(operation, mode, examples, served.url, session, tally, failures)
        # Ids that exist: the job's own routes, and its image.
        path_names = {p.name for p in operation.path_parameters}
        if path_names == {"job_id"} and operation.method.upper() != "DELETE":
            fuzz_operation(operation, GenerationMode.POSITIVE, 5, served.url, session, tally, failures, path_parameters={"job_id": job_id})
        if "board_id" in path_names and operation.method.upper() != "DELETE":
            fuzz_operation(operation, GenerationMode.POSITIVE, 5, served.url, session, tally, failures, path_parameters={"board_id": board_id})
        if path_names == {"name"}:
            fuzz_operation(operation, GenerationMode.POSITIVE, 5, served.url, session, tally, failures, path_parameters={"name": f"{job_id}-0"})
        per_operation[operation.label] = tally["cases"] + tally["dropped by the client (timeout)"] - before
    seconds = time.monotonic() - started

    print(f"\nfuzz: {sum(per_operation.values())} cases in {seconds:.0f} s; statuses {dict(sorted((k, v) for k, v in tally.items() if isinstance(k, int)))}")
    for label, count in per_operation.items():
        print(f"  {label}: {count}")
    print(f"  dropped by the client after {GENERATION_TIMEOUT_S} s: {tally['dropped by the client (timeout)']}")
    print(f"  listening takes fuzzed with schema-valid audio: {tally['listening takes fuzzed']}")
    report = "\n\n".join(f"{label} [{mode}] -> {status}\n{curl}\n" + "\n".join(problems) for label, mode, status, curl, problems in failures[:8])
    assert not failures, f"{len(failures)} failing cases; the first:\n{report}"
    assert not any(isinstance(k, int) and k >= 500 for k in tally)
    assert sum(per_operation.values()) >= 300
    # Every route answered something other than errors at least once.
    assert tally[200] and tally[202] and tally[400] and tally[404]
    assert tally["listening takes fuzzed"] and tally[426]  # the streaming routes were reached
    # The daemon is still whole: idle (dropped generations were cancelled), and serving.
    served.wait_idle(timeout=60)
    assert session.get(served.url + "/v1/health", timeout=10).json()["status"] == "ok"
