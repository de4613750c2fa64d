"""/openapi.json, built from the routes the app really has and the models they declare.

Nothing here is written twice: each route's @endpoint declaration (server/endpoint.py)
names its request model, answers and errors; request and answer schemas are the pydantic
models' own JSON schemas (server/schemas.py). A route without a declaration is a bug, and
the document says so rather than leaving it out. OpenAPI 3.1, whose schemas are JSON
Schema 2020-12, as pydantic writes them.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..budget import WorkBudget, describe_operation
from .endpoint import Endpoint, declaration, upload_fields
from .schemas import IMAGE_NAME_PATTERN, JOB_ID_PATTERN, ErrorResponse

REF = "#/components/schemas/{model}"

ERROR_DESCRIPTIONS = {
    400: "Invalid input (the error's param names the field)",
    401: "Missing or wrong token",
    403: "Request from a web page on a foreign Origin or another site, or (without a token) naming a Host that is not the daemon's",
    404: "No such job, image, storyboard or shot",
    408: "No audio arrived for 30 s (audio_timeout)",
    409: "Cancelled before it finished, or not in the state this needs",
    412: "The image is not the version If-Match / If-Unmodified-Since names",
    413: "Body, upload or form larger than its limit",
    415: "A body of a content type this route does not take, or in a content coding the daemon does not read",
    416: "A Range that is malformed or past the image's end",
    426: "This route speaks WebSocket: send an Upgrade request",
    429: "Queue full; retry after Retry-After seconds",
    500: "The model failed on this request (engine_error)",
    503: "Models loading or failed to load, out of memory, or shutting down",
    507: "The data dir is full or unwritable (storage_error)",
}

DESCRIPTION = (
    "Speak a picture: Whisper speech to text and Stable Diffusion 2 text to image, for the Krita and "
    "Blender plugins and OpenAI-compatible clients. Every error is {\"error\": {\"message\", \"type\", "
    "\"code\", \"param\"}}. Optional fields also accept null, meaning their default; unknown fields are ignored."
)


def openapi_document(app: web.Application, schedulers: Iterable[str], *, auth: bool, budget: WorkBudget | None = None) -> dict[str, Any]:
    operations = list(_declared_operations(app))
    models = _models_of(operations)
    refs, defs = models_json_schema([(model, mode) for model, mode in models], ref_template=REF)
    components = _with_choices(defs.get("$defs", {}), {"schedulers": list(schedulers)})

    paths: dict[str, dict[str, Any]] = {}
    for method, path, declared in operations:
        operation = _operation(declared, path, refs, auth=auth)
        if declared.generates:
            describe_operation(operation, budget)  # the work one request may ask of this device
        paths.setdefault(path, {})[method] = operation

    document = {
        "openapi": "3.1.0",
        "info": {"title": "voicebrush", "version": __version__, "description": DESCRIPTION},
        "paths": paths,
        "components": {"schemas": components},
    }
    if auth:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document


def _declared_operations(app: web.Application):
    for route in app.router.routes():
        method = route.method.lower()
        if method in ("head", "*"):
            continue  # aiohttp's automatic HEAD for every GET; nothing to describe twice
        path = route.resource.canonical if route.resource is not None else None
        declared = declaration(route.handler)
        if path is None:
            continue
        if declared is None:
            raise RuntimeError(f"route {route.method} {path} has no @endpoint declaration")
        yield method, path, declared


def _models_of(operations) -> list[tuple[type[BaseModel], str]]:
    seen: dict[tuple[type[BaseModel], str], None] = {(ErrorResponse, "serialization"): None}
    for _, _, declared in operations:
        for model in (declared.json, declared.form, declared.query):
            if model is not None:
                seen[(model, "validation")] = None
        for spec in declared.responses.values():
            for schema in _contents(spec).values():
                if isinstance(schema, type) and issubclass(schema, BaseModel):
                    seen[(schema, "serialization")] = None
    return list(seen)


def _contents(spec) -> dict[str, Any]:
    """{content type: schema or model} of a declared answer."""
    _, body = spec if isinstance(spec, tuple) else (None, spec)
    if body is None:
        return {}
    if isinstance(body, dict) and all("/" in key for key in body):
        return body
    return {"application/json": body}


def _schema(value, refs) -> dict[str, Any]:
    if isinstance(value, type) and issubclass(value, BaseModel):
        return refs[(value, "serialization")]
    return value


def _operation(declared: Endpoint, path: str, refs, *, auth: bool) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": declared.summary}
    if declared.description:
        operation["description"] = declared.description
    parameters = [
        {"name": name, "in": "path", "required": True, **_path_parameter(name)}
        for name in _path_names(path)
    ]
    if declared.query is not None:
        schema = declared.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            parameters.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    if parameters:
        operation["parameters"] = parameters
    content = {}
    if declared.json is not None:
        content["application/json"] = {"schema": refs[(declared.json, "validation")]}
    for kind, schema in (declared.raw or {}).items():
        content[kind] = {"schema": schema}
    if declared.form is not None:
        content["multipart/form-data"] = {"schema": refs[(declared.form, "validation")]}
        uploads = upload_fields(declared.form)
        if uploads:
            content["multipart/form-data"]["encoding"] = {name: {"contentType": "application/octet-stream, */*"} for name in uploads}
    if content:
        operation["requestBody"] = {"required": True, "content": content}
    responses: dict[str, Any] = {}
    for status, spec in sorted(declared.responses.items()):
        description = spec[0] if isinstance(spec, tuple) else "OK"
        entry: dict[str, Any] = {"description": description}
        bodies = _contents(spec)
        if bodies:
            entry["content"] = {kind: {"schema": _schema(schema, refs)} for kind, schema in bodies.items()}
        responses[str(status)] = entry
    needs_token = auth and not declared.public
    # 403 (a foreign Origin, site or Host) applies everywhere; 415 wherever a body is read.
    implied = {403} | ({401} if needs_token else set()) | ({415} if content else set())
    for status in sorted(set(declared.errors) | implied):
        if str(status) in responses:
            continue
        entry = {"description": ERROR_DESCRIPTIONS[status], "content": {"application/json": {"schema": refs[(ErrorResponse, "serialization")]}}}
        if status == 429:
            entry["headers"] = {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}, "description": "Seconds to wait."}}
        responses[str(status)] = entry
    operation["responses"] = responses
    if declared.public:
        operation["security"] = []
    return operation


# Path parameters: the one shape the daemon makes for each, so a fuzzer tries real ones.
PATH_PARAMETERS = {
    "job_id": {"schema": {"type": "string", "pattern": JOB_ID_PATTERN}, "description": "A job's id, as POST /v1/jobs returned it."},
    "name": {"schema": {"type": "string", "pattern": IMAGE_NAME_PATTERN}, "description": "As in a job's image URLs: JOBID-INDEX."},
    "board_id": {"schema": {"type": "string", "pattern": JOB_ID_PATTERN}, "description": "A storyboard's id, as POST /v1/storyboards returned it."},
    "index": {"schema": {"type": "integer", "minimum": 1, "maximum": 64}, "description": "A shot's index, from 1."},
}


def _path_parameter(name: str) -> dict[str, Any]:
    return PATH_PARAMETERS.get(name, {"schema": {"type": "string"}})


def _path_names(path: str) -> list[str]:
    names, rest = [], path
    while "{" in rest:
        start = rest.index("{")
        end = rest.index("}", start)
        names.append(rest[start + 1 : end].split(":")[0])
        rest = rest[end + 1 :]
    return names


def _with_choices(defs: dict[str, Any], choices: dict[str, list[str]]) -> dict[str, Any]:
    """Fill in enums that depend on what is loaded (fields marked x-voicebrush-choices)."""
    defs = copy.deepcopy(defs)

    def visit(node):
        if isinstance(node, dict):
            key = node.pop("x-voicebrush-choices", None)
            if key is not None:
                node["enum"] = choices[key]
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(defs)
    return defs
