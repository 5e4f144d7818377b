"""A small thread-safe least-recently-used map: the query-embedding cache and the API key cache."""

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """At most `size` entries, the least recently used dropped first; size 0 keeps nothing.
    `hits` and `misses` count the lookups."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        if not self._size:
            return
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def discard(self, matches: Callable[[V], bool]) -> None:
        """Drop every entry whose value matches (a scan: for rare events)."""
        with self._lock:
            for key in [k for k, v in self._entries.items() if matches(v)]:
                del self._entries[key]
