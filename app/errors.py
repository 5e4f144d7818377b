"""Expected failures, raised by services and turned into the one error body by app.api.errors."""

from typing import Any

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """An expected failure with its HTTP status and machine-readable code."""

    def __init__(self, status: int, message: str, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.details = details


class UnknownKey(ApiError):
    """401 for an API key that does not exist or was revoked (found at lookup or at a transaction's start)."""

    def __init__(self) -> None:
        super().__init__(401, "unknown or revoked API key")


def not_found(what: str = "memory") -> ApiError:
    return ApiError(404, f"{what} not found")
