"""Principals of recently used API keys, so a request need not look its key up before its work.

Safe because the lookup is not skipped but moved: every request transaction re-checks its key in
its first statement (app.db.tenancy), so a key revoked in any process fails at once.
"""

import uuid

from app.lru import Lru
from app.services.tenants import Principal


class KeyCache(Lru[str, Principal]):
    """Key hash -> principal."""

    def forget(self, key_id: uuid.UUID) -> None:
        """Drop a key found revoked."""
        self.discard(lambda principal: principal.key_id == key_id)
