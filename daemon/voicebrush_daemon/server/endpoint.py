"""One declaration per route: what it takes (a pydantic model), what it answers, and its docs.

    @routes.post("/v1/images/generations")
    @endpoint(summary="Text to image", json=ImageGenerationRequest, responses={200: ...}, errors=(400, 429))
    async def create_images(request, body: ImageGenerationRequest): ...

The decorator reads the body within the upload limits, validates it with the declared
model and hands the handler the validated instance, so a route cannot check one model and
document another. server/openapi.py builds /openapi.json from these declarations and the
app's router, so every registered route is described. A validation failure becomes the
contract's 400, naming the field, with a sentence derived from the same schema.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..errors import ApiError
from .state import JOBS, SETTINGS
from .uploads import is_multipart, read_form, read_json

# What a response is: a pydantic model, a JSON schema, or (description, {content type: schema}).
ResponseSpec = Any


@dataclass(frozen=True)
class Endpoint:
    summary: str
    json: type[BaseModel] | None = None  # an application/json body
    form: type[BaseModel] | None = None  # a multipart/form-data body (fields typed Upload are file parts)
    query: type[BaseModel] | None = None  # the query string
    # A body that is not JSON or a form ({content type: JSON schema}), e.g. a raw audio
    # stream: documented here, read and checked by the handler itself.
    raw: dict[str, Any] | None = None
    responses: dict[int, ResponseSpec] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    public: bool = False  # True: no token needed (health)
    generates: bool = False  # True: queues image work, bounded by the device's budget (budget.py)
    needs_models: bool = True  # False: answers while the models load (the body is still validated)
    description: str | None = None
    json_limit: int | None = None  # bytes a JSON body may have (None: uploads.MAX_JSON_BYTES); pictures as base64 need more

    @property
    def takes_input(self) -> bool:
        return bool(self.json or self.form or self.query)


ENDPOINT_ATTR = "__voicebrush_endpoint__"


def endpoint(summary: str, **spec: Any) -> Callable:
    """Attach the route's declaration; with a body or query model, validate it and pass it on."""
    declared = Endpoint(summary=summary, **spec)

    def decorate(handler: Callable[..., Awaitable[web.StreamResponse]]):
        if declared.takes_input:

            @functools.wraps(handler)
            async def validated(request: web.Request) -> web.StreamResponse:
                return await handler(request, await read_input(request, declared))

            wrapped = validated
        else:
            wrapped = handler
        setattr(wrapped, ENDPOINT_ATTR, declared)
        return wrapped

    return decorate


def declaration(handler: Callable) -> Endpoint | None:
    return getattr(handler, ENDPOINT_ATTR, None)


def validation_context(request: web.Request) -> dict[str, Any]:
    """What rules beyond the schema need: the loaded engine's scheduler names."""
    queue = request.app[JOBS]
    engines = queue.engines
    return {"schedulers": tuple(engines.image.schedulers) if engines else ()}


async def read_input(request: web.Request, declared: Endpoint) -> BaseModel:
    if declared.query is not None:
        return validate(declared.query, dict(request.query), strings=True, context=validation_context(request))
    if declared.form is not None and (declared.json is None or is_multipart(request)):
        if not is_multipart(request):
            raise ApiError(400, "Send this as multipart/form-data.", "invalid_form", param=_first_upload(declared.form))
        # Readiness first: a client should not upload 25 MB to hear the models are loading.
        if declared.needs_models:
            request.app[JOBS]._require_ready()
        form = await read_form(request, request.app[SETTINGS].max_upload_bytes, files=upload_fields(declared.form))
        fields: dict[str, Any] = {k: v.strip() for k, v in form.fields.items()}
        # A form field left blank means its default, as a browser submits an empty input.
        fields = {k: v for k, v in fields.items() if v != ""}
        fields.update(form.files)
        return validate(declared.form, fields, strings=True, context=validation_context(request))
    if declared.needs_models:
        request.app[JOBS]._require_ready()
    data = await read_json(request, declared.json_limit) if declared.json_limit else await read_json(request)
    return validate(declared.json, data, strings=False, context=validation_context(request))


def upload_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a form model that are file parts (declared with schemas.Upload)."""
    schema = model.model_json_schema()
    return tuple(name for name, prop in schema.get("properties", {}).items() if _is_binary(prop))


def _first_upload(model: type[BaseModel]) -> str | None:
    uploads = upload_fields(model)
    return uploads[0] if uploads else None


def _is_binary(prop: dict) -> bool:
    if prop.get("format") == "binary":
        return True
    return any(option.get("format") == "binary" for option in prop.get("anyOf", ()))


def validate(model: type[BaseModel], data: Any, *, strings: bool, context: dict[str, Any] | None = None) -> BaseModel:
    """The model instance, or the contract's 400 for the first problem, naming its field.

    strings: the values are text (a form or a query, plus the bytes of file parts) and
    are parsed as the schema says ("3" is 3); otherwise (JSON) types must match exactly."""
    try:
        # Lax mode is pydantic's parsing from text; strict keeps JSON's types honest.
        return model.model_validate(data, strict=not strings, context=context)
    except ValidationError as exc:
        raise api_error(model, exc) from None


def api_error(model: type[BaseModel], exc: ValidationError) -> ApiError:
    error = exc.errors(include_url=False)[0]
    context = error.get("ctx") or {}
    location = error.get("loc") or ()
    param = context.get("param") or (str(location[0]) if location else None)
    kind = error["type"]
    if kind == "missing":
        return ApiError(400, f"'{param}' is required.", "missing_field", param=param)
    if kind == "value_error":  # a rule of ours (an after-validator): its sentence as written
        return ApiError(400, str(context.get("error", error["msg"])), "invalid_value", param=param)
    if kind in _OUR_CODES:  # a PydanticCustomError raised by a model validator
        return ApiError(400, error["msg"], kind, param=param)
    return ApiError(400, field_rule(model, param), "invalid_value", param=param)


_OUR_CODES = frozenset({"missing_field", "invalid_value", "no_shots", "too_many_shots"})


def field_rule(model: type[BaseModel], param: str | None) -> str:
    """A sentence saying what a field takes, derived from its JSON schema."""
    if param is None:
        return "The request is not valid."
    prop = model.model_json_schema().get("properties", {}).get(param)
    if prop is None:
        return f"'{param}' is not valid."
    options = [option for option in prop.get("anyOf", [prop]) if option.get("type") != "null"]
    rule = options[0] if len(options) == 1 else {}
    kind = rule.get("type")
    bounds = ""
    if "minimum" in rule and "maximum" in rule:
        bounds = f" from {rule['minimum']:g} to {rule['maximum']:g}" if isinstance(rule["minimum"], float) else f" from {rule['minimum']} to {rule['maximum']}"
    if "enum" in rule:
        sentence = f"'{param}' must be one of: {', '.join(map(str, rule['enum']))}."
    elif kind == "integer":
        sentence = f"'{param}' must be an integer{bounds}."
    elif kind == "number":
        sentence = f"'{param}' must be a finite number{bounds}."
    elif kind == "string" and rule.get("format") == "binary":
        sentence = f"'{param}' must be a file part of the multipart form."
    elif kind == "string" and rule.get("pattern") == r"\S":
        sentence = f"'{param}' must be a string that is not blank."
    elif kind == "string" and (rule.get("examples") or prop.get("examples")):
        sentence = f"'{param}' must be a string like {(rule.get('examples') or prop['examples'])[0]!r}."
    elif kind == "string":
        sentence = f"'{param}' must be a string."
    else:
        sentence = f"'{param}' is not valid."
    description = prop.get("description") or rule.get("description")
    return f"{sentence} {description}" if description and "enum" not in rule else sentence
