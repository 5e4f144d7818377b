"""What a search asks for, independent of how it arrived (REST, SDK, CLI, eval)."""

import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from retrieval.vector_param import BinaryVector


@dataclass(frozen=True)
class SearchQuery:
    tenant_id: uuid.UUID
    text: str
    vector: "np.ndarray | Future[np.ndarray]"
    k: int = 10
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    types: tuple[str, ...] = ()
    metadata_filters: dict[str, Any] = field(default_factory=dict)
    as_of: datetime | None = None
    include_superseded: bool = False
    min_trust: float | None = None
    exclude_flagged: bool = False
    asked_at: datetime | None = None  # relative periods in the text ("last week") count back from it
    event_after: datetime | None = None  # only events at or after it (a memory's stored time if it has none)
    event_before: datetime | None = None  # only events before it

    @property
    def embedding(self) -> np.ndarray:
        """The query vector, waiting for the model if it still runs: given as a future, the model call
        overlaps the search's work that needs only the text (the tenant wall, BM25)."""
        return self.vector.result() if isinstance(self.vector, Future) else self.vector

    @property
    def embedding_param(self) -> BinaryVector:
        """The vector as a statement parameter, packed once: several statements send it.

        Cached by hand: Python 3.11's functools.cached_property holds one lock for all instances
        while computing, and computing waits for the model, so concurrent searches queued on that
        lock for each other's query vectors (seen in a profile under `loci bench load`)."""
        packed = self.__dict__.get("_embedding_param")
        if packed is None:  # two threads may both pack it; either result is the same
            packed = BinaryVector(self.embedding)
            self.__dict__["_embedding_param"] = packed
        return packed


@dataclass(frozen=True)
class SearchParams:
    """Tuning knobs of the pipeline; the app fills them from settings."""

    overfetch: int = 4
    min_candidates: int = 50
    rrf_k: int = 60
    dense_weight: float = 1.0
    dense_min_spread: float = 0.05
    lexical_weight: float = 0.25
    context_weight: float = 1.0
    speaker_weight: float = 0.5
    time_weight: float = 1.0
    when_weight: float = 1.0
    length_weight: float = 0.5
    use_keys: bool = True
    key_weight: float = 0.2
    dense_exact_share: float = 0.05
