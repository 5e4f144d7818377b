"""An LRU cache of query embeddings in front of the shared embedder.

Agents repeat themselves (the same question every turn, retries, eval runs), and a cached query
skips the model call that otherwise dominates search latency.
"""

from concurrent.futures import Future

import numpy as np

from app.embedder import Embedder
from app.lru import Lru


class QueryEmbeddings:
    """Thread-safe: searches run in the server's thread pool."""

    def __init__(self, embedder: Embedder, size: int) -> None:
        self._embedder = embedder
        self._cache: Lru[str, np.ndarray] = Lru(size)

    @property
    def hits(self) -> int:
        return self._cache.hits

    @property
    def misses(self) -> int:
        return self._cache.misses

    def embed(self, query: str) -> np.ndarray:
        """The query's vector (read-only: it is shared by every caller asking the same)."""
        return self.submit(query).result()

    def submit(self, query: str) -> Future[np.ndarray]:
        """The query's vector as a future: a search reads its lexical side while the model runs."""
        vector = self._cache.get(query)
        if vector is not None:
            done: Future[np.ndarray] = Future()
            done.set_result(vector)
            return done
        batch = self._embedder.submit([query])
        answer: Future[np.ndarray] = Future()
        batch.add_done_callback(lambda finished: self._settle(query, finished, answer))
        return answer

    def _settle(self, query: str, batch: Future[np.ndarray], answer: Future[np.ndarray]) -> None:
        """Runs in the embedder's thread once the model call ends: cache the vector, then hand it over."""
        error = batch.exception()
        if error is not None:
            answer.set_exception(error)
            return
        vector = batch.result()[0]
        vector.flags.writeable = False
        self._cache.put(query, vector)
        answer.set_result(vector)
