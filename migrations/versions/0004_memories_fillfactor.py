"""Leave room on memory pages for in-place (HOT) updates.

Every search hit bumps access_count and last_accessed_at. On full pages those updates are not HOT,
so each one writes new entries into every index of the table, HNSW included; with 15 % free space
per page they stay on the page and touch no index (measured on a copy of a 10k-memory scope:
a 10-row access update went from 9.5 ms to 0.85 ms; docs/performance.md). Applies to pages written
from now on; `VACUUM FULL memories` repacks an existing table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE memories SET (fillfactor = 85)")


def downgrade() -> None:
    op.execute("ALTER TABLE memories RESET (fillfactor)")
