"""An LRU cache of query embeddings in front of the shared embedder.

Agents repeat themselves (the same question every turn, retries, eval runs), and a cached query
skips the model call that otherwise dominates search latency.
"""

import threading
from collections import OrderedDict

import numpy as np

from app.embedder import Embedder


class QueryEmbeddings:
    """Thread-safe: searches run in the server's thread pool."""

    def __init__(self, embedder: Embedder, size: int) -> None:
        self._embedder = embedder
        self._size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def embed(self, query: str) -> np.ndarray:
        """The query's vector (read-only: it is shared by every caller asking the same)."""
        with self._lock:
            vector = self._cache.get(query)
            if vector is not None:
                self._cache.move_to_end(query)
                self.hits += 1
                return vector
            self.misses += 1
        vector = self._embedder.embed([query])[0]
        vector.flags.writeable = False
        if self._size:
            with self._lock:
                self._cache[query] = vector
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return vector
