"""Links between memories, written idempotently so a retried job adds nothing twice."""

import uuid

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.db.models import MemoryLink


def add_links(session: Session, tenant_id: uuid.UUID, links: list[tuple[uuid.UUID, uuid.UUID, str, float]]) -> int:
    """Insert (src, dst, kind, weight) links, skipping ones that exist; returns how many were new
    (counted from RETURNING: the rowcount of this multi-row insert came back as -1)."""
    if not links:
        return 0
    rows = [
        {"id": uuid.uuid4(), "tenant_id": tenant_id, "src_id": s, "dst_id": d, "kind": k, "weight": w}
        for s, d, k, w in links
    ]
    inserted = session.execute(
        insert(MemoryLink)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["src_id", "dst_id", "kind"])
        .returning(MemoryLink.id)
    )
    return len(inserted.all())
