"""Size limits on what callers send, answered with 413 before anything is written."""

import json
from collections.abc import Sequence
from typing import Any

from app.errors import ApiError
from app.settings import Settings


def _too_large(field: str, size: int, limit: int, index: int | None = None) -> ApiError:
    where = f"memories[{index}].{field}" if index is not None else field
    return ApiError(
        413, f"{where} is {size} bytes; the limit is {limit}", details={"field": where, "size": size, "limit": limit}
    )


def check_batch_size(count: int, settings: Settings) -> None:
    if count > settings.max_batch:
        raise ApiError(
            413,
            f"batch of {count} items; the limit is {settings.max_batch}",
            details={"field": "memories", "size": count, "limit": settings.max_batch},
        )


def check_memory_sizes(
    items: Sequence[tuple[str | None, dict[str, Any] | None]], settings: Settings, batched: bool
) -> None:
    """Check (content, metadata) pairs against the byte limits."""
    for i, (content, metadata) in enumerate(items):
        index = i if batched else None
        if content is not None and (size := len(content.encode("utf-8"))) > settings.max_content_bytes:
            raise _too_large("content", size, settings.max_content_bytes, index)
        if metadata is not None and (size := len(json.dumps(metadata).encode("utf-8"))) > settings.max_metadata_bytes:
            raise _too_large("metadata", size, settings.max_metadata_bytes, index)


def check_query_size(query: str, settings: Settings) -> None:
    if (size := len(query.encode("utf-8"))) > settings.max_query_bytes:
        raise _too_large("query", size, settings.max_query_bytes)
