"""Python client for Loci, the long-term memory service for AI agents.

from loci_client import MemoryClient
with MemoryClient(api_key="...") as memory:
    memory.add("Alice prefers window seats", user_id="alice")
    hits = memory.search("where does Alice like to sit?", user_id="alice").results
"""

from ._version import __version__
from .client import AsyncMemoryClient, MemoryClient
from .errors import (
    AuthenticationError,
    ConflictError,
    ConnectionFailed,
    JobFailed,
    LociError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from .models import (
    DeleteResult,
    History,
    Job,
    Memory,
    MemoryEvent,
    MemoryPage,
    Scores,
    SearchResponse,
    SearchResult,
    Stats,
)

__all__ = [
    "AsyncMemoryClient",
    "AuthenticationError",
    "ConflictError",
    "ConnectionFailed",
    "DeleteResult",
    "History",
    "Job",
    "JobFailed",
    "LociError",
    "Memory",
    "MemoryClient",
    "MemoryEvent",
    "MemoryPage",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "Scores",
    "SearchResponse",
    "SearchResult",
    "Stats",
    "ServerError",
    "ValidationError",
    "__version__",
]
