"""Typed exceptions built from the server's one error body: {"error": {"code", "message", "details"}}.

Callers catch by class for the common cases (a missing memory, a bad key, too much content) and can
still branch on the server's machine-readable `code`, which stays stable when messages change.
Everything the SDK raises for a failed call derives from LociError, so one `except LociError`
covers HTTP errors, transport failures and failed jobs alike. The one exception is the built-in
TimeoutError of `wait_for_job`: nothing failed there, the job may still finish, so it is not a LociError.
"""

from typing import Any

import httpx

from .models import Job


class LociError(Exception):
    """A failed call. `status_code` is None when no HTTP answer arrived at all.

    `retry_after` is the server's Retry-After hint in seconds (sent with 429 and 503), else None.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str = "error",
        details: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def __str__(self) -> str:
        status = f"{self.status_code} " if self.status_code is not None else ""
        return f"{status}{self.code}: {self.message}"


class AuthenticationError(LociError):
    """401: the API key is missing, malformed or unknown."""


class PermissionDeniedError(LociError):
    """403: the key is valid but lacks the permission the route needs (read, write or admin)."""


class NotFoundError(LociError):
    """404: no such memory or job for this tenant (ids of other tenants look the same, on purpose)."""


class ConflictError(LociError):
    """409: the memory's state forbids the change; `code` says which state.

    `memory_deleted` (changing a soft-deleted memory), `memory_inactive`, `not_a_procedure`
    (feedback on another type), `not_restorable` (restoring a memory that is not archived or deleted).
    """


class PayloadTooLargeError(LociError):
    """413: content, metadata, query, batch or body over the server's limit."""


class ValidationError(LociError):
    """422: a field is invalid; `details` lists `{"loc", "msg", "type"}` per problem."""


class RateLimitError(LociError):
    """429: too many requests; wait `retry_after` seconds if the server said how long."""


class ServerError(LociError):
    """5xx: the server failed (503 `unavailable`: its database cannot be reached)."""


class ConnectionFailed(LociError):
    """No HTTP answer: the connection could not be made (after retries) or broke mid-request."""


class JobFailed(LociError):
    """A lifecycle job the client waited for ended as failed; `job` holds its final state.

    Every HTTP call succeeded, so `status_code` is None; the server's reason is in `job.error`.
    """

    def __init__(self, job: Job) -> None:
        super().__init__(
            f"{job.kind} job {job.job_id} failed: {job.error or 'no reason given'}",
            code="job_failed",
            details=job.error,
        )
        self.job = job


_BY_STATUS: dict[int, type[LociError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitError,
}


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a numeric Retry-After header; the HTTP-date form is ignored (the server never sends it)."""
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def error_from_response(response: httpx.Response) -> LociError:
    """The exception for an error response.

    A body that is not the documented error shape (a proxy's HTML page, a readiness report) still
    yields the right class by status; its parsed JSON, if any, goes to `details` so nothing is lost.
    """
    status = response.status_code
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else LociError)
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or "error")
        message = str(error.get("message") or response.reason_phrase)
        details = error.get("details")
    else:
        code = f"http_{status}"
        message = response.text[:500] or response.reason_phrase
        details = body
    return cls(message, status_code=status, code=code, details=details, retry_after=_retry_after(response))
