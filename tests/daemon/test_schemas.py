"""The served OpenAPI and the request validators agree, field by field, on a fixed corpus.

A deterministic differential check (no fuzzing luck involved): every JSON request body
the app declares is validated twice, by the JSON schema the daemon serves (jsonschema,
Draft 2020-12 via jsonschema_rs, which schemathesis uses, on the document's own $refs) and by the route's pydantic model, for each
field set to each value of a corpus of edge cases. They must agree, except where the
validator applies a rule the description states in words and a JSON schema cannot (a
size's sides being multiples of 8): there the validator may only be stricter.
"""

from __future__ import annotations

import math

import pytest
import jsonschema_rs

from voicebrush_daemon.errors import ApiError
from voicebrush_daemon.server.endpoint import declaration, validate

SCHEDULERS = ("dpmpp_2m", "ddim", "euler")

CORPUS = [
    None, True, False, 0, 1, -1, 2, 7, 8, 9, 25, 500, 501, 1000, 1001, 2**32 - 1, 2**32, -2,
    0.0, 2.0, 2.5, -0.1, 7.5, 30, 30.5, math.inf, "", " ", "   ", "x", "a fox", "2", "true",
    "768x768", "64x64", "auto", "65x64", "56x64", "4096x64", "512X512", " 512x512", "big", "0008x0008",
    "url", "b64_json", "jpeg", "dpmpp_2m", "warp_drive", "en", "english", [], ["a"], {}, {"a": 1},
]
# Fields whose after-validator checks what the schema can only describe.
WORDS_ONLY = {"size"}
# The smallest valid body of each route that does not start from a prompt alone.
PICTURE = "iVBORw0KGgo="  # any string is schema-valid; decoding it is the route's work
MINIMAL_BODIES = {
    "POST /v1/storyboards": {"script": "a fox"},
    "POST /v1/storyboards/{board_id}/shots/{index}": {},
    "POST /v1/history/prune": {"keep_days": 30, "max_jobs": 100},
    "POST /sdapi/v1/img2img": {"prompt": "a fox", "init_images": [PICTURE]},
    "POST /sdapi/v1/extra-single-image": {"image": PICTURE},
    "POST /sdapi/v1/options": {},
}


def minimal_body(label: str) -> dict:
    return MINIMAL_BODIES.get(label, {"prompt": "a fox"})


def as_options(body):
    # Generation bodies compare by the options they become; the others by their fields.
    return body.to_options() if hasattr(body, "to_options") else body


@pytest.fixture(scope="module")
def served(make_app):
    return make_app()


@pytest.fixture
async def document(client):
    return await (await client.get("/openapi.json")).json()


def json_bodies(app):
    for route in app.router.routes():
        declared = declaration(route.handler)
        if declared is not None and declared.json is not None:
            yield f"{route.method} {route.resource.canonical}", declared.json


def schema_validator(document, model):
    # The document's own components beside a $ref into them: refs resolve as the client's would.
    return jsonschema_rs.Draft202012Validator({"$ref": f"#/components/schemas/{model.__name__}", "components": document["components"]})


def pydantic_accepts(model, body) -> bool:
    try:
        validate(model, body, strings=False, context={"schedulers": SCHEDULERS})
    except ApiError as error:
        assert error.status == 400 and error.param, error.body()
        return False
    return True


async def test_every_json_body_agrees_with_its_served_schema(client, document):
    bodies = dict(json_bodies(client.server.app))
    assert {"POST /v1/images/generations", "POST /v1/jobs", "POST /v1/storyboards", "POST /sdapi/v1/txt2img", "POST /sdapi/v1/img2img"} <= set(bodies)
    disagreements = []
    for label, model in bodies.items():
        checker = schema_validator(document, model)
        base = minimal_body(label)
        assert checker.is_valid(base) and pydantic_accepts(model, base), label
        for name in model.model_fields:
            for value in CORPUS:
                body = {**base, name: value}
                by_schema, by_model = checker.is_valid(body), pydantic_accepts(model, body)
                if by_schema == by_model or (name in WORDS_ONLY and by_schema and not by_model):
                    continue
                disagreements.append((label, name, value, "schema" if by_schema else "validator"))
    assert not disagreements, "accepted by only one side:\n" + "\n".join(map(repr, disagreements))


def outcome(model, body):
    """The options a body gives, or how it is refused."""
    try:
        return as_options(validate(model, body, strings=False, context={"schedulers": SCHEDULERS}))
    except ApiError as error:
        return ("refused", error.code, error.param)


async def test_null_means_the_default_for_every_optional_field(client, document):
    base = {"prompt": "a fox"}
    for label, model in json_bodies(client.server.app):
        base = minimal_body(label)
        checker = schema_validator(document, model)
        for name, info in model.model_fields.items():
            if info.is_required() or name in base:
                continue
            # A null field is the field left out: the same options, or the same refusal
            # (a null prompt where a prompt is needed, as for a JobRequest without stream_audio).
            absent = {key: value for key, value in base.items() if key != name}
            assert outcome(model, {**base, name: None}) == outcome(model, absent), (label, name)
            assert checker.is_valid({**base, name: None}) == checker.is_valid(absent), (label, name)
            if name not in base:
                assert checker.is_valid({**base, name: None}), (label, name)


async def test_a_streamed_job_is_the_one_json_job_without_a_prompt(client, document):
    from voicebrush_daemon.server.schemas import JobRequest

    checker = schema_validator(document, JobRequest)
    for body, valid in [({"stream_audio": True}, True), ({"stream_audio": True, "prompt": None}, True), ({}, False), ({"stream_audio": False}, False), ({"stream_audio": None}, False)]:
        assert checker.is_valid(body) == valid, body
        assert (not isinstance(outcome(JobRequest, body), tuple)) == valid, body


async def test_size_null_generates_at_the_native_size(client):
    response = await client.post("/v1/images/generations", json={"prompt": "a fox", "size": None, "steps": 1, "n": None, "seed": None, "response_format": "b64_json"})
    body = await response.json()
    assert response.status == 200, body


async def test_every_route_is_declared_and_documented(client, document):
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    routed = {(r.method, r.resource.canonical) for r in client.server.app.router.routes() if r.method != "HEAD"}
    assert routed == documented


@pytest.mark.parametrize(
    "body,param,words",
    [
        ({"prompt": "   "}, "prompt", "not blank"),
        ({"prompt": "x", "n": 9}, "n", "from 1 to 8"),
        ({"prompt": "x", "steps": 2.5}, "steps", "integer from 0 to 500"),
        ({"prompt": "x", "seed": -2}, "seed", "-1 picks one at random"),
        ({"prompt": "x", "size": "65x64"}, "size", "multiple of 8"),
        ({"prompt": "x", "size": "big"}, "size", "'768x768'"),
        ({"prompt": "x", "scheduler": "warp_drive"}, "scheduler", "choose one of: dpmpp_2m, ddim, euler"),
        ({"prompt": "x", "response_format": "jpeg"}, "response_format", "one of: url, b64_json"),
        ({"prompt": "x", "guidance_scale": math.nan}, "guidance_scale", "finite number from 0 to 30"),
        ({"n": 1}, "prompt", "is required"),
    ],
)
def test_messages_say_what_the_field_takes(body, param, words):
    from voicebrush_daemon.server.schemas import ImageGenerationRequest

    with pytest.raises(ApiError) as caught:
        validate(ImageGenerationRequest, body, strings=False, context={"schedulers": SCHEDULERS})
    assert caught.value.param == param
    assert words in caught.value.message, caught.value.message
