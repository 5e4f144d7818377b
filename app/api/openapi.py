"""What the OpenAPI schema promises beyond each route's success: the one error body, on every
status a /v1 route can answer with, so generated clients and schema fuzzers can rely on it."""

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field


class ErrorInfo(BaseModel):
    code: str = Field(description="Machine-readable: validation_error, unauthorized, rate_limited, ...")
    message: str
    details: Any = Field(
        default=None, description="Per code: the invalid fields for validation_error, else mostly null."
    )


class ErrorBody(BaseModel):
    error: ErrorInfo


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description, **({"headers": _RETRY_AFTER} if retry else {})}
    for status, description, retry in (
        (400, "The body could not be read as JSON.", False),
        (401, "Missing, malformed, unknown or revoked API key.", False),
        (403, "The key lacks the permission this route needs.", False),
        (404, "Not found, or owned by another tenant.", False),
        (409, "The resource's state does not allow this change.", False),
        (413, "Body, field or batch over its size limit.", False),
        (422, "Invalid field, unknown type or bad attributes.", False),
        (429, "The key exceeded its request rate.", True),
        (503, "The database is unavailable or the request ran out of time.", True),
    )
}


def hoist_inline_definitions(app: FastAPI) -> None:
    """Move `$defs` of hand-written request schemas (openapi_extra) into components.schemas.

    Such a schema refers to its models as `#/components/schemas/<Model>`, but FastAPI registers
    only the models its routes declare, so those references would dangle for clients and fuzzers.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        spec = generate()  # FastAPI builds it once and caches it on the app
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        for item in spec.get("paths", {}).values():
            for operation in item.values():
                for media in operation.get("requestBody", {}).get("content", {}).values():
                    for name, definition in media.get("schema", {}).pop("$defs", {}).items():
                        components.setdefault(name, definition)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
