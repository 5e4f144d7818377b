"""Principals of recently used API keys, so a request need not look its key up before its work.

Safe because the lookup is not skipped but moved: every request transaction re-checks its key in
its first statement (app.db.tenancy), so a key revoked in any process fails at once.
"""

import threading
import uuid
from collections import OrderedDict

from app.services.tenants import Principal


class KeyCache:
    """Thread-safe LRU from key hash to principal; size 0 keeps nothing."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._principals: OrderedDict[str, Principal] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> Principal | None:
        with self._lock:
            principal = self._principals.get(key_hash)
            if principal is not None:
                self._principals.move_to_end(key_hash)
            return principal

    def put(self, key_hash: str, principal: Principal) -> None:
        if not self._size:
            return
        with self._lock:
            self._principals[key_hash] = principal
            while len(self._principals) > self._size:
                self._principals.popitem(last=False)

    def forget(self, key_id: uuid.UUID) -> None:
        """Drop a key found revoked (rare: a scan is fine)."""
        with self._lock:
            for key_hash in [h for h, p in self._principals.items() if p.key_id == key_id]:
                del self._principals[key_hash]
