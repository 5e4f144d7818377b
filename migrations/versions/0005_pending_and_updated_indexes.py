"""Index the lookups that otherwise read every row of a table or a scope.

- The embedding worker's claim (`WHERE embedding IS NULL ORDER BY seq LIMIT n`) ran every poll as a
  sequential scan of every tenant's rows: 1.2 s at a million memories, every 5 s, reading the table
  through shared buffers and evicting the HNSW index's pages. A partial index holds only the pending
  rows, so a claim reads those.
- A scope's change stamp (count, max(seq), max(updated_at); retrieval/scope_cache.py) read every
  row of the scope: for a tenant a parallel scan (1 s at a million, on every core), for a user's
  10k memories 9 ms, paid by the first search after each write (the refresh that follows, `seq >`
  or `updated_at >` its last, read them all again: 7 ms). With these indexes each aggregate and
  the refresh read index entries.

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
    op.execute("CREATE INDEX IF NOT EXISTS memories_pending_idx ON memories (seq) WHERE embedding IS NULL")
    op.execute("CREATE INDEX IF NOT EXISTS memories_updated_idx ON memories (tenant_id, updated_at)")
    op.execute("CREATE INDEX IF NOT EXISTS memories_user_seq_idx ON memories (tenant_id, user_id, seq)")
    op.execute("CREATE INDEX IF NOT EXISTS memories_user_updated_idx ON memories (tenant_id, user_id, updated_at)")


def downgrade() -> None:
    op.execute("DROP INDEX memories_user_updated_idx")
    op.execute("DROP INDEX memories_user_seq_idx")
    op.execute("DROP INDEX memories_updated_idx")
    op.execute("DROP INDEX memories_pending_idx")
