"""Record when an episode's index keys were derived, so episodes consolidated while keys were off get
them once keys are on.

Consolidation writes keys only where they are searched (`Settings.memory_keys_searched`: by default
where an LLM writes them). An episode consolidated before an LLM was configured is never
consolidated again, so it needs a mark of its own: `keyed_at`, set when consolidation derived its
keys (even none). Episodes consolidated earlier are not backfilled here: rewriting every such row
would enter a new version of each into the memories' HNSW graph. Consolidation instead treats an
episode with keys as keyed (app/jobs/consolidate.py), so only the unmarked episodes without keys,
and only where keys are searched, are ever keyed later. Adding a nullable column rewrites nothing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE memories ADD COLUMN keyed_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE memories DROP COLUMN keyed_at")
