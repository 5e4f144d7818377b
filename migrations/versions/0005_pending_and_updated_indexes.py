"""Index the two lookups that otherwise scan the whole memories table.

- The embedding worker's claim (`WHERE embedding IS NULL ORDER BY seq LIMIT n`) ran every poll as a
  sequential scan of every tenant's rows: 1.2 s at a million memories, every 5 s, reading the table
  through shared buffers and evicting the HNSW index's pages. A partial index holds only the pending
  rows, so a claim reads those.
- A tenant's change stamp (count, max(seq), max(updated_at); retrieval/scope_cache.py) took a
  parallel scan of the tenant's rows (1 s at a million, on every core). With (tenant_id, updated_at)
  each aggregate reads an index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX memories_pending_idx ON memories (seq) WHERE embedding IS NULL")
    op.execute("CREATE INDEX memories_updated_idx ON memories (tenant_id, updated_at)")


def downgrade() -> None:
    op.execute("DROP INDEX memories_updated_idx")
    op.execute("DROP INDEX memories_pending_idx")
