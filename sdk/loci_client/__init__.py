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
    ConnectionFailed,
    LociError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from .models import DeleteResult, History, Memory, MemoryEvent, MemoryPage, Scores, SearchResponse, SearchResult

__all__ = [
    "AsyncMemoryClient",
    "AuthenticationError",
    "ConnectionFailed",
    "DeleteResult",
    "History",
    "LociError",
    "Memory",
    "MemoryClient",
    "MemoryEvent",
    "MemoryPage",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitError",
    "Scores",
    "SearchResponse",
    "SearchResult",
    "ServerError",
    "ValidationError",
    "__version__",
]
